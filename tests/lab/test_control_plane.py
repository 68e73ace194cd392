"""Lab tier: the real control planes behave as the orchestrator relies on.

Covers workload controllers with kwok (a StatefulSet with three volume claim templates scales 0 -> 1 -> 0; a pod
marked not ready by the controller manager becomes ready again, as a kubelet makes it),
the status subresource and generation, optimistic concurrency (409 on a stale resourceVersion) and the
independence of the two clusters.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client

from sandbox.cluster import LabCluster
from sandbox.processes import wait_until

CSI = ("replication.storage.openshift.io", "v1alpha1")


def statefulset(name: str, replicas: int) -> dict[str, Any]:
    def claim(volume: str) -> dict[str, Any]:
        return {
            "metadata": {"name": volume},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }

    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "postgres",
                            "image": "postgres:16",
                            "volumeMounts": [
                                {"name": v, "mountPath": f"/var/lib/{v}"} for v in ("data", "wal", "config")
                            ],
                        }
                    ]
                },
            },
            "volumeClaimTemplates": [claim(v) for v in ("data", "wal", "config")],
        },
    }


def test_statefulset_with_three_volumes_scales_up_and_down(dc1_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(dc1_client)
    core = client.CoreV1Api(dc1_client)
    apps.create_namespaced_stateful_set(namespace, statefulset("postgres", 0))

    apps.patch_namespaced_stateful_set_scale("postgres", namespace, {"spec": {"replicas": 1}})

    def pod_ready() -> bool:
        pod = core.read_namespaced_pod("postgres-0", namespace)
        return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])

    wait_until(pod_ready, "postgres-0 Ready", timeout=90)
    pvcs = core.list_namespaced_persistent_volume_claim(namespace).items
    assert sorted(p.metadata.name for p in pvcs) == ["config-postgres-0", "data-postgres-0", "wal-postgres-0"]
    assert all(p.status.phase == "Bound" for p in pvcs)
    wait_until(
        lambda: apps.read_namespaced_stateful_set("postgres", namespace).status.ready_replicas == 1,
        "statefulset ready_replicas == 1",
        timeout=30,
    )

    apps.patch_namespaced_stateful_set_scale("postgres", namespace, {"spec": {"replicas": 0}})
    wait_until(lambda: not core.list_namespaced_pod(namespace).items, "postgres-0 gone", timeout=90)
    # The controller manager updates the StatefulSet's status after the pod is gone, not with it.
    wait_until(
        lambda: not apps.read_namespaced_stateful_set("postgres", namespace).status.ready_replicas,
        "statefulset ready_replicas back to 0",
        timeout=30,
    )


def test_a_pod_marked_not_ready_by_the_controller_manager_becomes_ready_again(dc1_client: Any, namespace: str) -> None:
    """What a kubelet does after its node was marked not ready, which kwok's shipped stages do not (sandbox/kwok)."""
    apps = client.AppsV1Api(dc1_client)
    core = client.CoreV1Api(dc1_client)
    apps.create_namespaced_stateful_set(namespace, statefulset("postgres", 1))

    def ready_replicas() -> int:
        return apps.read_namespaced_stateful_set("postgres", namespace).status.ready_replicas or 0

    wait_until(lambda: ready_replicas() == 1, "statefulset ready_replicas == 1", timeout=90)
    # What the node lifecycle controller's MarkPodsNotReady writes ("Node is not ready").
    not_ready = {"type": "Ready", "status": "False", "reason": "NodeNotReady", "lastTransitionTime": None}
    marked = core.patch_namespaced_pod_status("postgres-0", namespace, {"status": {"conditions": [not_ready]}})
    assert next(c for c in marked.status.conditions if c.type == "Ready").status == "False"

    def pod_ready_again() -> bool:
        pod = core.read_namespaced_pod("postgres-0", namespace)
        ready = next(c for c in pod.status.conditions if c.type == "Ready")
        return bool(ready.status == "True" and ready.reason != "NodeNotReady")

    wait_until(pod_ready_again, "postgres-0 Ready again", timeout=30)
    wait_until(lambda: ready_replicas() == 1, "statefulset ready", timeout=30)
    pod = core.read_namespaced_pod("postgres-0", namespace)
    assert pod.status.phase == "Running"


def vgr(name: str, state: str = "primary") -> dict[str, Any]:
    return {
        "apiVersion": "/".join(CSI),
        "kind": "VolumeGroupReplication",
        "metadata": {"name": name},
        "spec": {
            "volumeGroupReplicationClassName": "rbd-group",
            "replicationState": state,
            "source": {"selector": {"matchLabels": {"app": "postgres"}}},
        },
    }


def test_status_write_keeps_generation_and_spec_change_bumps_it(dc1_client: Any, namespace: str) -> None:
    custom = client.CustomObjectsApi(dc1_client)
    created = custom.create_namespaced_custom_object(*CSI, namespace, "volumegroupreplications", vgr("pg"))
    assert created["metadata"]["generation"] == 1

    status = {
        "state": "Primary",
        "observedGeneration": 1,
        "message": "volume group is promoted",
        "conditions": [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Promoted",
                "message": "promoted",
                "observedGeneration": 1,
                "lastTransitionTime": "2026-11-26T10:00:00Z",
            }
        ],
    }
    after_status = custom.patch_namespaced_custom_object_status(
        *CSI, namespace, "volumegroupreplications", "pg", {"status": status}
    )
    assert after_status["metadata"]["generation"] == 1
    assert after_status["status"]["state"] == "Primary"

    # A status write through the main resource is ignored: status belongs to the subresource.
    ignored = custom.patch_namespaced_custom_object(
        *CSI, namespace, "volumegroupreplications", "pg", {"status": {"state": "Secondary"}}
    )
    assert ignored["status"]["state"] == "Primary"
    assert ignored["metadata"]["generation"] == 1

    after_spec = custom.patch_namespaced_custom_object(
        *CSI, namespace, "volumegroupreplications", "pg", {"spec": {"replicationState": "secondary"}}
    )
    assert after_spec["metadata"]["generation"] == 2
    assert after_spec["status"]["observedGeneration"] == 1


def test_stale_resource_version_is_a_conflict(dc1_client: Any, namespace: str) -> None:
    custom = client.CustomObjectsApi(dc1_client)
    created = custom.create_namespaced_custom_object(*CSI, namespace, "volumegroupreplications", vgr("pg"))
    stale_version = created["metadata"]["resourceVersion"]
    custom.patch_namespaced_custom_object(
        *CSI, namespace, "volumegroupreplications", "pg", {"spec": {"replicationState": "secondary"}}
    )

    stale = {**created, "spec": {**created["spec"], "replicationState": "resync"}}
    stale["metadata"] = {**created["metadata"], "resourceVersion": stale_version}
    with pytest.raises(client.ApiException) as conflict:
        custom.replace_namespaced_custom_object(*CSI, namespace, "volumegroupreplications", "pg", stale)
    assert conflict.value.status == 409
    current = custom.get_namespaced_custom_object(*CSI, namespace, "volumegroupreplications", "pg")
    assert current["spec"]["replicationState"] == "secondary"


def test_clusters_hold_independent_state(
    dc1: LabCluster, dc2: LabCluster, dc1_client: Any, dc2_client: Any, namespace: str
) -> None:
    marker = f"only-dc1-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(dc1_client).create_namespaced_config_map(namespace, {"metadata": {"name": marker}})

    assert client.CoreV1Api(dc1_client).read_namespaced_config_map(marker, namespace).metadata.name == marker
    with pytest.raises(client.ApiException) as missing:
        client.CoreV1Api(dc2_client).read_namespaced_config_map(marker, namespace)
    assert missing.value.status == 404
    assert dc1.server != dc2.server
    dc1_nodes = [n.metadata.name for n in client.CoreV1Api(dc1_client).list_node().items]
    dc2_nodes = [n.metadata.name for n in client.CoreV1Api(dc2_client).list_node().items]
    assert dc1_nodes == ["dc1-node-1"]
    assert dc2_nodes == ["dc2-node-1"]


def test_immutable_fields_cannot_change(dc1_client: Any, namespace: str) -> None:
    custom = client.CustomObjectsApi(dc1_client)
    custom.create_namespaced_custom_object(*CSI, namespace, "volumegroupreplications", vgr("pg"))
    with pytest.raises(client.ApiException) as rejected:
        custom.patch_namespaced_custom_object(
            *CSI, namespace, "volumegroupreplications", "pg", {"spec": {"volumeGroupReplicationClassName": "other"}}
        )
    assert rejected.value.status == 422
    assert "immutable" in str(rejected.value.body)
