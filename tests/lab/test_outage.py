"""Lab tier: a site outage. With dc1's apiserver stopped, dc1 fails fast while dc2 keeps working; after a
restart dc1 answers again with its state intact (etcd kept it)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from sandbox.cluster import LabCluster

FAST_FAILURE_SECONDS = 10.0
"""The reachability contract: a dead cluster costs seconds, not minutes."""


def test_stopped_apiserver_fails_fast_and_restarts_with_state(
    dc1: LabCluster, dc1_client: Any, dc2_client: Any, namespace: str
) -> None:
    client.CoreV1Api(dc1_client).create_namespaced_config_map(
        namespace, {"metadata": {"name": "survivor"}, "data": {"written": "before the outage"}}
    )

    dc1.stop_apiserver()
    try:
        assert not dc1.running_components()["kube-apiserver"]
        started = time.monotonic()
        with pytest.raises(Exception) as failure:
            client.CoreV1Api(dc1_client).read_namespaced_config_map("survivor", namespace, _request_timeout=(2, 2))
        elapsed = time.monotonic() - started
        assert elapsed < FAST_FAILURE_SECONDS, f"a call to a stopped apiserver took {elapsed:.1f}s"
        assert "Connection refused" in str(failure.value) or "Max retries" in str(failure.value)

        # dc2 is unaffected.
        client.CoreV1Api(dc2_client).create_namespaced_config_map(namespace, {"metadata": {"name": "dc2-alive"}})
        assert client.CoreV1Api(dc2_client).read_namespaced_config_map("dc2-alive", namespace).metadata.name
    finally:
        dc1.start_apiserver()

    assert dc1.running_components()["kube-apiserver"]
    survivor = client.CoreV1Api(dc1_client).read_namespaced_config_map("survivor", namespace)
    assert survivor.data == {"written": "before the outage"}
