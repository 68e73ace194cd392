"""Lab-tier fixtures: one two-cluster lab (dc1, dc2) of real control planes for the tests/lab package."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from clusters.api import ClusterApi
from clusters.kubeclient import close_api_client
from sandbox.cluster import LabCluster
from sandbox.lab import Lab
from sandbox.simulator.config import SimulatorConfig
from sandbox.simulator.server import SimulatorService
from tests.e2e.diagnosis import keep_logs


@pytest.fixture(scope="package")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root: Path = tmp_path_factory.mktemp("lab")
    # The tests here run the simulator in-process (see the `simulator` fixture): the lab starts none of its own.
    lab = Lab.create(root, with_temporal=False, with_simulator=False, with_demo=False)
    try:
        lab.up()
        yield lab
    finally:
        with contextlib.suppress(OSError):
            keep_logs(root)  # the control planes' logs outlive the lab, for whoever reads a failure
        lab.down(purge=True)


@pytest.fixture(scope="package")
def dc1(lab: Lab) -> LabCluster:
    return lab.cluster("dc1")


@pytest.fixture(scope="package")
def dc2(lab: Lab) -> LabCluster:
    return lab.cluster("dc2")


@pytest.fixture()
def dc1_client(dc1: LabCluster) -> Iterator[Any]:
    api_client = dc1.api_client()
    yield api_client
    close_api_client(api_client)


@pytest.fixture()
def dc2_client(dc2: LabCluster) -> Iterator[Any]:
    api_client = dc2.api_client()
    yield api_client
    close_api_client(api_client)


@pytest.fixture()
def namespace(request: pytest.FixtureRequest, dc1_client: Any, dc2_client: Any) -> Iterator[str]:
    """A fresh namespace of the same name in both clusters, deleted afterwards."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.originalname.lower().removeprefix("test_"))[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    for api_client in (dc1_client, dc2_client):
        client.CoreV1Api(api_client).create_namespace({"metadata": {"name": name}})
    yield name
    for api_client in (dc1_client, dc2_client):
        with contextlib.suppress(client.ApiException):
            client.CoreV1Api(api_client).delete_namespace(name)


@pytest.fixture()
def simulator(lab: Lab) -> Iterator[SimulatorService]:
    """The storage simulator, in-process, playing dc1 and dc2 with fast timings; its control API on a free port.

    ``simulator.simulator.api("dc1")`` is a ClusterApi of the lab cluster; ``simulator.client()`` a control client.
    The `lab` fixture starts no simulator process of its own, so this one is alone on the clusters.
    """
    assert lab.simulator is None
    api_clients = {name: lab.cluster(name).api_client() for name in ("dc1", "dc2")}
    apis = {name: ClusterApi(name, api_client) for name, api_client in api_clients.items()}
    service = SimulatorService(apis, SimulatorConfig(tick=0.1, idle_poll_interval=0.3)).start()
    try:
        yield service
    finally:
        service.stop()
        for api_client in api_clients.values():
            close_api_client(api_client)
