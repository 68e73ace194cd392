"""Lab-tier fixtures: one two-cluster lab (dc1, dc2) of real control planes for the whole test session."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from clusters.kubeclient import close_api_client
from sandbox.cluster import LabCluster
from sandbox.lab import Lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root: Path = tmp_path_factory.mktemp("lab")
    lab = Lab.create(root, with_temporal=False)
    try:
        lab.up()
        yield lab
    finally:
        lab.down(purge=True)


@pytest.fixture(scope="session")
def dc1(lab: Lab) -> LabCluster:
    return lab.cluster("dc1")


@pytest.fixture(scope="session")
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
