"""Lab tier: clusters/ against real apiservers.

Covers ClusterApi's error mapping (404, 409, 422 to the domain hierarchy) and write counting, reachability of a
stopped cluster (a typed, fast failure), workload scaling through the scale subresource (idempotent), and the
"volumes in use" check (pods referencing the PVCs, VolumeAttachments of their PVs).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clusters.api import PVCS, VOLUME_ATTACHMENTS, ClusterApi, Resource
from clusters.errors import ClusterUnreachableError, ConflictError, InvalidSpecError, ObjectMissingError
from clusters.registry import ClusterConfig, ClusterRegistry
from clusters.workloads import (
    WorkloadRef,
    pvc_names_by_selector,
    read_workload,
    running_pods,
    scale_workload,
    volumes_in_use,
)
from sandbox.cluster import LabCluster
from sandbox.lab import Lab
from sandbox.processes import wait_until
from tests.lab.test_control_plane import statefulset, vgr

VGR = Resource("replication.storage.openshift.io", "v1alpha1", "volumegroupreplications", "VolumeGroupReplication")
POSTGRES = WorkloadRef(kind="StatefulSet", name="postgres")


@pytest.fixture()
def registry(lab: Lab) -> Iterator[ClusterRegistry]:
    registry = ClusterRegistry(ClusterConfig(name=name, site=name, kubeconfig=lab.kubeconfig) for name in lab.clusters)
    yield registry
    registry.close()


def test_unknown_cluster_lists_the_known_ones(registry: ClusterRegistry) -> None:
    with pytest.raises(InvalidSpecError, match="unknown cluster 'dc9'; known clusters: dc1, dc2"):
        registry.api("dc9")


def test_api_errors_map_to_the_domain_hierarchy(registry: ClusterRegistry, namespace: str) -> None:
    api = registry.api("dc1")
    with pytest.raises(ObjectMissingError) as missing:
        api.get(VGR, "absent", namespace)
    assert missing.value.cluster == "dc1"
    assert f"VolumeGroupReplication {namespace}/absent" in str(missing.value)
    assert api.find(VGR, "absent", namespace) is None

    created = api.create(VGR, {k: v for k, v in vgr("pg").items() if k not in ("apiVersion", "kind")}, namespace)
    with pytest.raises(ConflictError):
        api.create(VGR, {"metadata": {"name": "pg"}, "spec": created["spec"]}, namespace)

    stale = {**created, "spec": {**created["spec"], "replicationState": "secondary"}}
    api.patch(VGR, "pg", {"spec": {"replicationState": "resync"}}, namespace)
    with pytest.raises(ConflictError) as conflict:
        api.replace(VGR, stale)
    assert conflict.value.retryable

    with pytest.raises(InvalidSpecError) as invalid:
        api.patch(VGR, "pg", {"spec": {"replicationState": "sideways"}}, namespace)
    assert not invalid.value.retryable
    assert "Unsupported value" in str(invalid.value)


def test_writes_are_counted_and_reads_are_not(registry: ClusterRegistry, namespace: str) -> None:
    api = ClusterApi("dc1", registry.api("dc1").api_client)
    api.create(VGR, {"metadata": {"name": "pg"}, "spec": vgr("pg")["spec"]}, namespace)
    api.get(VGR, "pg", namespace)
    api.list(VGR, namespace)
    api.patch(VGR, "pg", {"spec": {"replicationState": "secondary"}}, namespace)
    assert api.writes == 2


def test_stopped_cluster_is_unreachable_quickly_and_typed(dc1: LabCluster, registry: ClusterRegistry) -> None:
    api = registry.api("dc1")
    api.ping()
    dc1.stop_apiserver()
    try:
        with pytest.raises(ClusterUnreachableError) as unreachable:
            api.ping(timeout=2.0)
        assert unreachable.value.retryable
        assert unreachable.value.cluster == "dc1"
        registry.api("dc2").ping()
    finally:
        dc1.start_apiserver()
    api.ping()


def test_scale_is_idempotent_and_volumes_in_use_follow_the_pods(registry: ClusterRegistry, namespace: str) -> None:
    api = registry.api("dc1")
    body = statefulset("postgres", 0)
    api.create(
        Resource("apps", "v1", "statefulsets", "StatefulSet"),
        {k: v for k, v in body.items() if k not in ("apiVersion", "kind")},
        namespace,
    )

    assert scale_workload(api, namespace, POSTGRES, 1) is True
    writes = api.writes
    assert scale_workload(api, namespace, POSTGRES, 1) is False
    assert api.writes == writes
    wait_until(lambda: read_workload(api, namespace, POSTGRES).settled, "postgres ready", timeout=90)
    assert running_pods(api, namespace, POSTGRES) == ["postgres-0"]

    pvcs = pvc_names_by_selector(api, namespace, "app=postgres")
    assert sorted(pvcs) == ["config-postgres-0", "data-postgres-0", "wal-postgres-0"]
    in_use = volumes_in_use(api, namespace, pvcs)
    assert not in_use.idle
    assert in_use.pods == {"postgres-0": ("config-postgres-0", "data-postgres-0", "wal-postgres-0")}
    # Running and not condemned: what a quiesce that does not end reports about it.
    assert in_use.stalled == {"postgres-0": "not being deleted"}

    # A VolumeAttachment of one of the PVs keeps the volumes busy after the pod is gone.
    pv = api.get(PVCS, "data-postgres-0", namespace)["spec"]["volumeName"]
    attachment = f"csi-{namespace}"[:60]
    api.create(
        VOLUME_ATTACHMENTS,
        {
            "metadata": {"name": attachment},
            "spec": {
                "attacher": "volume.kwok.x-k8s.io",
                "nodeName": "dc1-node-1",
                "source": {"persistentVolumeName": pv},
            },
        },
    )
    try:
        scale_workload(api, namespace, POSTGRES, 0)
        wait_until(lambda: not volumes_in_use(api, namespace, pvcs).pods, "pods gone", timeout=90)
        remaining = volumes_in_use(api, namespace, pvcs)
        assert remaining.attachments == (attachment,)
        assert "VolumeAttachment" in remaining.describe()
    finally:
        api.delete(VOLUME_ATTACHMENTS, attachment)
    assert volumes_in_use(api, namespace, pvcs).idle
