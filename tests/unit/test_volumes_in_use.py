"""Unit tier: ``clusters.workloads.volumes_in_use`` on an in-memory API server: which pods and attachments hold a
group's volumes, and why a pod that holds them may not go away by itself (what a stuck quiesce tells the operator).
"""

from __future__ import annotations

from typing import Any

from clusters.api import JsonObject
from clusters.workloads import volumes_in_use
from tests.unit.fake_cluster import FakeClusterApi

NAMESPACE = "pg-prod"


def pod(name: str, *, ready: bool, deleting: bool = False, phase: str = "Running", claim: str = "data-0") -> JsonObject:
    metadata: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-01T03:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_pods_that_may_not_go_away_say_why_and_a_normal_termination_says_nothing() -> None:
    api = FakeClusterApi(
        "dc1",
        [
            pod("terminating", ready=True, deleting=True),
            pod("kept", ready=True),
            pod("kept-unready", ready=False),
            pod("stuck-on-a-dead-node", ready=False, deleting=True),
            pod("finished", ready=False, phase="Succeeded"),
            pod("other-volume", ready=True, claim="elsewhere"),
        ],
    )
    in_use = volumes_in_use(api, NAMESPACE, ["data-0"], volume_names=set())
    assert sorted(in_use.pods) == ["kept", "kept-unready", "stuck-on-a-dead-node", "terminating"]
    assert in_use.stalled == {
        "kept": "not being deleted",
        "kept-unready": "not being deleted, not ready",
        "stuck-on-a-dead-node": "deleted, not finished, not ready (is its node down?)",
    }
    assert in_use.describe() == (
        "4 pod(s) still use the volumes (kept [not being deleted], kept-unready [not being deleted, not ready], "
        "stuck-on-a-dead-node [deleted, not finished, not ready (is its node down?)], terminating)"
    )


def test_nothing_left_is_idle() -> None:
    in_use = volumes_in_use(FakeClusterApi("dc1", []), NAMESPACE, ["data-0"], volume_names=set())
    assert in_use.idle
    assert in_use.describe() == "no pod uses the volumes and no VolumeAttachment remains"
