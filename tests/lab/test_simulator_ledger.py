"""Lab tier: the simulator's writer, attacher and ledger with a real (kwok) application pod.

Covers the writer (acknowledged writes only while a Running and Ready pod mounts the PVC and only on the writable
side), the attacher (a VolumeAttachment per PV of a scheduled pod, gone after the pod), the proof that a planned
failover loses no acknowledged write, and the proof that an unplanned one loses exactly the writes acknowledged
after the last shipment, followed by split-brain writes on the returning old primary and their discard by the
fence-on-return resync (``autoResync: true``).
"""

from __future__ import annotations

import time

from clusters.api import PODS, VOLUME_ATTACHMENTS, ClusterApi, JsonObject
from sandbox.simulator.kube import CSI_VGR, nested
from sandbox.simulator.server import SimulatorService
from sandbox.simulator.testing import (
    conditions_summary,
    create_pvc,
    create_writer_pod,
    csi_vgr,
    force_delete,
    observed,
    pod_ready,
    set_spec,
    wait_bound,
    wait_for,
)
from sandbox.simulator.view import ATTACHER

LABELS = {"app": "pg"}
KWOK_TIMEOUT = 90.0
"""kwok (the lab's kubelet) binds PVCs and starts pods with delays of up to tens of seconds."""
HEALTHY = {"Completed": "True/Demoted", "Degraded": "False/Healthy", "Resyncing": "False/NotResyncing"}


def protected_group_with_writer(simulator: SimulatorService, namespace: str) -> tuple[ClusterApi, ClusterApi]:
    """PVCs ``data`` and ``wal`` on both sites, the VGR primary on dc1, and a Ready pod on dc1 writing to them."""
    dc1, dc2 = simulator.simulator.api("dc1"), simulator.simulator.api("dc2")
    for api in (dc1, dc2):
        for pvc in ("data", "wal"):
            create_pvc(api, namespace, pvc, LABELS)
    dc1.create(CSI_VGR, csi_vgr("pg", LABELS, "primary"), namespace)
    dc2.create(CSI_VGR, csi_vgr("pg", LABELS, "secondary"), namespace)
    for pvc in ("data", "wal"):
        wait_bound(dc1, namespace, pvc, KWOK_TIMEOUT)
    create_writer_pod(dc1, namespace, "pg-0", ["data", "wal"])
    wait_for(lambda: pod_ready(dc1, namespace, "pg-0"), "writer pod Ready", KWOK_TIMEOUT, interval=0.5)
    client = simulator.client()
    wait_for(lambda: client.volume(namespace, "data").acknowledged > 0, "acknowledged writes")
    return dc1, dc2


def wait_vgr(api: ClusterApi, namespace: str, state: str, conditions: dict[str, str]) -> JsonObject:
    def reached() -> JsonObject | None:
        obj = api.get(CSI_VGR, "pg", namespace)
        summary = conditions_summary(obj)
        ok = observed(obj) and obj["status"].get("state") == state
        return obj if ok and all(summary.get(k) == v for k, v in conditions.items()) else None

    return wait_for(reached, f"{api.cluster} VGR {state} {conditions}", 15)


def test_writer_and_attacher_follow_the_pod_and_planned_failover_loses_nothing(
    simulator: SimulatorService, namespace: str
) -> None:
    client = simulator.client()
    dc1, dc2 = protected_group_with_writer(simulator, namespace)

    volumes = {wait_bound(dc1, namespace, pvc) for pvc in ("data", "wal")}
    attachments = wait_for(
        lambda: (
            [
                va
                for va in dc1.list(VOLUME_ATTACHMENTS)
                if nested(va, "spec", "source", "persistentVolumeName") in volumes
            ]
            if all(nested(va, "status", "attached") for va in dc1.list(VOLUME_ATTACHMENTS))
            else None
        ),
        "VolumeAttachments attached",
    )
    assert len(attachments) == 2
    assert {va["spec"]["attacher"] for va in attachments} == {ATTACHER}
    assert {va["spec"]["nodeName"] for va in attachments} == {"dc1-node-1"}

    before = client.volume(namespace, "data").acknowledged
    time.sleep(1.0)
    data = client.volume(namespace, "data")
    assert data.acknowledged > before, "the pod keeps writing"
    assert data.sides["dc2"].held <= data.sides["dc1"].held == data.acknowledged

    # Planned failover (the pod stays up: the demote alone makes the storage read-only).
    set_spec(dc1, CSI_VGR, "pg", {"replicationState": "secondary"}, namespace)
    wait_vgr(dc1, namespace, "Secondary", HEALTHY)
    frozen = client.volume(namespace, "data").acknowledged
    time.sleep(0.5)
    assert client.volume(namespace, "data").acknowledged == frozen, "no writes on a read-only side"
    set_spec(dc2, CSI_VGR, "pg", {"replicationState": "primary"}, namespace)
    wait_vgr(dc2, namespace, "Primary", {"Completed": "True/Promoted"})
    for pvc in ("data", "wal"):
        volume = client.volume(namespace, pvc)
        assert volume.lost_at_promotion == 0, "a planned failover loses no acknowledged write"
        assert volume.sides["dc2"].held == volume.acknowledged
        assert volume.writable == ["dc2"] and not volume.dual_writable

    force_delete(dc1, PODS, "pg-0", namespace)
    wait_for(
        lambda: (
            not [va for va in dc1.list(VOLUME_ATTACHMENTS) if va["spec"]["source"]["persistentVolumeName"] in volumes]
        ),
        "VolumeAttachments detached",
    )


def test_unplanned_failover_loses_exactly_the_writes_after_the_last_shipment(
    simulator: SimulatorService, namespace: str
) -> None:
    client = simulator.client()
    client.configure(sync_interval=2.0)
    dc1, dc2 = protected_group_with_writer(simulator, namespace)
    wait_for(
        lambda: (v := client.volume(namespace, "data")).last_shipment and v.acknowledged > v.last_shipped_count,
        "writes acknowledged after a shipment",
    )

    client.site_down("dc1")  # dc1's storage and writer stop (its API server stays up here)
    at_outage = client.volume(namespace, "data")
    set_spec(dc2, CSI_VGR, "pg", {"replicationState": "primary"}, namespace)
    wait_vgr(dc2, namespace, "Primary", {"Completed": "True/Promoted"})
    data = client.volume(namespace, "data")
    assert data.acknowledged == at_outage.acknowledged, "no writes while the site is down"
    assert data.lost_at_promotion == data.acknowledged - data.last_shipped_count > 0
    assert data.promotions[-1].forced and not data.promotions[-1].peer_up
    assert data.writable == ["dc1", "dc2"] and data.dual_writable

    # The old primary returns still writable, with the application running: split-brain writes.
    client.site_up("dc1")
    wait_for(lambda: client.volume(namespace, "data").split_brain_writes > 0, "split-brain writes")
    # Fence on return: demote with autoResync (resync from the new primary).
    set_spec(dc1, CSI_VGR, "pg", {"replicationState": "secondary", "autoResync": True}, namespace)
    wait_vgr(dc1, namespace, "Secondary", HEALTHY)
    data = client.volume(namespace, "data")
    assert data.writable == ["dc2"]
    assert data.sides["dc1"].held == data.sides["dc2"].held
    assert data.discarded_at_resync == data.lost_at_promotion + data.split_brain_writes
    assert data.acknowledged == data.sides["dc2"].held + data.lost_at_promotion + data.split_brain_writes
