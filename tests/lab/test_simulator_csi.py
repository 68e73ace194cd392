"""Lab tier: the simulator plays the csi-addons replication controller (and the unified operator) on dc1 and dc2.

Covers the status the simulator writes for csi-addons VolumeGroupReplication and VolumeReplication and for the
unified VolumeGroupReplication: primary and secondary conditions with ``observedGeneration`` everywhere,
``lastSyncTime`` on the primary only, the planned demote's sequence (first pass, final sync running, final sync
done) with a stalled final sync, and the faults: fail-demote N times then success, fail-promote forever, the
"peer is still primary" precondition and its forced variant, and refuse-demote-in-use.
"""

from __future__ import annotations

import time

from clusters.api import PODS, ClusterApi, JsonObject, Resource
from sandbox.simulator.kube import CSI_VGR, CSI_VR, UNIFIED_VGR
from sandbox.simulator.server import SimulatorService
from sandbox.simulator.testing import (
    StatusHistory,
    condition,
    conditions_summary,
    create_pvc,
    csi_vgr,
    force_delete,
    observed,
    set_spec,
    unified_vgr,
    wait_for,
    wait_until_known,
)

LABELS = {"app": "pg"}
PVCS = ("data", "wal")
PRIMARY = {
    "Completed": "True/Promoted",
    "Degraded": "False/Healthy",
    "Resyncing": "False/NotResyncing",
    "Replicating": "True/Replicating",
    "Validated": "True/PrerequisiteMet",
}
FIRST_PASS = {"Completed": "True/Demoted", "Degraded": "True/VolumeDegraded", "Resyncing": "False/NotResyncing"}
SYNCING = {"Completed": "True/Demoted", "Degraded": "True/VolumeDegraded", "Resyncing": "True/ResyncTriggered"}
HEALTHY = {"Completed": "True/Demoted", "Degraded": "False/Healthy", "Resyncing": "False/NotResyncing"}


def apis(simulator: SimulatorService) -> tuple[ClusterApi, ClusterApi]:
    return simulator.simulator.api("dc1"), simulator.simulator.api("dc2")


def group(simulator: SimulatorService, namespace: str, resource: Resource = CSI_VGR) -> tuple[ClusterApi, ClusterApi]:
    """PVCs on both sites, the group primary on dc1 and secondary on dc2, both reconciled."""
    dc1, dc2 = apis(simulator)
    for api in (dc1, dc2):
        for pvc in PVCS:
            create_pvc(api, namespace, pvc, LABELS)
    body = csi_vgr if resource == CSI_VGR else unified_vgr
    dc1.create(resource, body("pg", LABELS, "primary"), namespace)
    dc2.create(resource, body("pg", LABELS, "secondary"), namespace)
    wait_state(dc1, resource, namespace, "Primary")
    wait_state(dc2, resource, namespace, "Secondary")
    return dc1, dc2


def wait_state(api: ClusterApi, resource: Resource, namespace: str, state: str, timeout: float = 10) -> JsonObject:
    def reached() -> JsonObject | None:
        obj = api.get(resource, "pg", namespace)
        return obj if observed(obj) and obj["status"].get("state") == state else None

    return wait_for(reached, f"{api.cluster} {resource.kind} {state}", timeout)


def wait_conditions(
    api: ClusterApi, resource: Resource, namespace: str, expected: dict[str, str], timeout: float = 10
) -> JsonObject:
    def reached() -> JsonObject | None:
        obj = api.get(resource, "pg", namespace)
        summary = conditions_summary(obj)
        return obj if observed(obj) and all(summary.get(k) == v for k, v in expected.items()) else None

    return wait_for(reached, f"{api.cluster} {resource.kind} conditions {expected}", timeout)


def test_primary_and_secondary_status(simulator: SimulatorService, namespace: str) -> None:
    dc1, dc2 = group(simulator, namespace)
    primary = wait_for(lambda: (o := dc1.get(CSI_VGR, "pg", namespace))["status"].get("lastSyncTime") and o, "sync")
    status = primary["status"]
    assert conditions_summary(primary) == PRIMARY
    assert status["observedGeneration"] == primary["metadata"]["generation"] == 1
    assert all(c["observedGeneration"] == 1 for c in status["conditions"])
    assert status["persistentVolumeClaimsRefList"] == [{"name": "data"}, {"name": "wal"}]
    assert status["message"] == "volume is promoted"
    assert {"lastStartTime", "lastCompletionTime", "lastSyncDuration", "lastSyncBytes"} <= status.keys()

    secondary = wait_conditions(dc2, CSI_VGR, namespace, HEALTHY)
    assert secondary["status"]["state"] == "Secondary"
    assert "lastSyncTime" not in secondary["status"], "last sync is visible on the primary only"
    assert condition(secondary, "Validated")["reason"] == "PrerequisiteMet"

    ledger = simulator.client().ledger(namespace)
    assert [(v.pvc, v.writable) for v in ledger.volumes] == [("data", ["dc1"]), ("wal", ["dc1"])]


def test_lasttransitiontime_moves_only_when_the_status_changes(simulator: SimulatorService, namespace: str) -> None:
    dc1, _ = group(simulator, namespace)
    before = wait_for(lambda: (o := dc1.get(CSI_VGR, "pg", namespace))["status"].get("lastSyncTime") and o, "sync")
    time.sleep(2.2)  # at least one more shipment rewrites lastSyncTime
    after = dc1.get(CSI_VGR, "pg", namespace)
    assert after["status"]["lastSyncTime"] > before["status"]["lastSyncTime"], "refreshed as shipments happen"
    assert after["status"]["conditions"] == before["status"]["conditions"]


def test_planned_demote_runs_the_final_sync_and_loses_nothing(simulator: SimulatorService, namespace: str) -> None:
    client = simulator.client()
    client.configure(sync_interval=3600)  # nothing ships on its own: only the final sync can
    dc1, dc2 = group(simulator, namespace)
    wait_until_known(client, namespace, "data")
    assert client.write(namespace, "data", "dc1", 25).acknowledged == 25
    client.add_fault(namespace, "stall-final-sync", cluster="dc1")

    with StatusHistory(dc1, CSI_VGR, "pg", namespace) as history:
        demoted = set_spec(dc1, CSI_VGR, "pg", {"replicationState": "secondary"}, namespace)
        generation = demoted["metadata"]["generation"]
        stalled = wait_conditions(dc1, CSI_VGR, namespace, SYNCING)
        assert stalled["status"]["observedGeneration"] == generation == 2
        assert stalled["status"]["state"] == "Secondary"
        assert "lastSyncTime" not in stalled["status"], "the secondary clears lastSyncTime"
        time.sleep(1.0)
        assert conditions_summary(dc1.get(CSI_VGR, "pg", namespace)).items() >= SYNCING.items(), "stalled"
        assert client.volume(namespace, "data").final_sync_pending == "dc1"

        client.remove_faults(namespace, kind="stall-final-sync")
        wait_conditions(dc1, CSI_VGR, namespace, HEALTHY)
        history.caught_up()
        sequence = history.condition_sets()
    passes = [{k: s.get(k) for k in FIRST_PASS} for s in sequence]
    assert passes.index(FIRST_PASS) < passes.index(SYNCING) < passes.index(HEALTHY), sequence

    set_spec(dc2, CSI_VGR, "pg", {"replicationState": "primary"}, namespace)
    wait_conditions(dc2, CSI_VGR, namespace, PRIMARY)
    data = client.volume(namespace, "data")
    assert data.writable == ["dc2"]
    assert data.lost_at_promotion == 0
    assert data.sides["dc2"].held == data.acknowledged == 25
    assert not data.dual_writable


def test_fail_demote_twice_then_succeed(simulator: SimulatorService, namespace: str) -> None:
    client = simulator.client()
    dc1, _ = group(simulator, namespace)
    client.add_fault(namespace, "fail-demote", cluster="dc1", times=2)

    with StatusHistory(dc1, CSI_VGR, "pg", namespace) as history:
        set_spec(dc1, CSI_VGR, "pg", {"replicationState": "secondary"}, namespace)
        wait_conditions(dc1, CSI_VGR, namespace, HEALTHY)
        history.caught_up()
    failures = [s for s in history.versions if observed(s) and condition(s, "Completed")["status"] == "False"]
    assert failures, "the failed attempts were reported"
    first = failures[0]
    assert conditions_summary(first)["Completed"] == "False/FailedToDemote"
    assert conditions_summary(first)["Degraded"] == "True/Error"
    assert first["status"]["state"] == "Primary", "a failed demote leaves the state unchanged"
    assert "injected fault" in condition(first, "Completed")["message"]
    (fault,) = client.faults()
    assert (fault.fired, fault.remaining, fault.exhausted) == (2, 0, True)


def test_fail_promote_forever_stays_failed(simulator: SimulatorService, namespace: str) -> None:
    client = simulator.client()
    dc1, dc2 = group(simulator, namespace)
    set_spec(dc1, CSI_VGR, "pg", {"replicationState": "secondary"}, namespace)
    wait_conditions(dc1, CSI_VGR, namespace, HEALTHY)
    client.add_fault(namespace, "fail-promote", cluster="dc2")

    set_spec(dc2, CSI_VGR, "pg", {"replicationState": "primary"}, namespace)
    wait_conditions(dc2, CSI_VGR, namespace, {"Completed": "False/FailedToPromote", "Degraded": "True/Error"})
    time.sleep(1.5)
    failed = dc2.get(CSI_VGR, "pg", namespace)
    assert conditions_summary(failed)["Completed"] == "False/FailedToPromote"
    assert failed["status"]["state"] == "Secondary"
    assert client.faults()[0].fired >= 3, "the controller keeps retrying"
    assert client.volume(namespace, "data").writable == []

    client.remove_faults(namespace)
    wait_conditions(dc2, CSI_VGR, namespace, PRIMARY)


def test_promote_while_peer_is_primary_fails_unless_forced(simulator: SimulatorService, namespace: str) -> None:
    client = simulator.client()
    _, dc2 = group(simulator, namespace)
    set_spec(dc2, CSI_VGR, "pg", {"replicationState": "primary"}, namespace)
    refused = wait_conditions(dc2, CSI_VGR, namespace, {"Completed": "False/FailedToPromote"})
    assert "peer dc1 is still primary" in condition(refused, "Completed")["message"]
    assert client.volume(namespace, "data").writable == ["dc1"]

    client.add_fault(namespace, "force-promote-on-precondition")
    wait_conditions(dc2, CSI_VGR, namespace, PRIMARY | {"Replicating": "False/NotReplicating"})
    data = client.volume(namespace, "data")
    assert data.writable == ["dc1", "dc2"], "two primaries, as the real controller's force-promote makes"
    assert data.dual_writable and data.promotions[-1].forced


def test_refuse_demote_while_in_use(simulator: SimulatorService, namespace: str) -> None:
    client = simulator.client()
    dc1, _ = group(simulator, namespace)
    pod = {
        "metadata": {"name": "app"},
        "spec": {
            "nodeName": "dc1-node-1",
            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }
    wait_for(lambda: _create(dc1, PODS, pod, namespace), "pod created")
    client.add_fault(namespace, "refuse-demote-in-use", cluster="dc1")

    set_spec(dc1, CSI_VGR, "pg", {"replicationState": "secondary"}, namespace)
    refused = wait_conditions(dc1, CSI_VGR, namespace, {"Completed": "False/FailedToDemote"})
    assert "still in use" in condition(refused, "Completed")["message"]
    assert refused["status"]["state"] == "Primary"

    force_delete(dc1, PODS, "app", namespace)
    wait_conditions(dc1, CSI_VGR, namespace, HEALTHY, timeout=15)


def _create(api: ClusterApi, resource: Resource, body: JsonObject, namespace: str) -> bool:
    try:
        api.create(resource, body, namespace)
    except Exception:
        return False  # a fresh namespace's default service account may not exist yet
    return True


def test_unified_vgr_with_its_own_field_names(simulator: SimulatorService, namespace: str) -> None:
    dc1, dc2 = group(simulator, namespace, UNIFIED_VGR)
    primary = wait_conditions(dc1, UNIFIED_VGR, namespace, PRIMARY)
    assert primary["status"]["state"] == "Primary"
    assert primary["status"]["persistentVolumeClaimsRefList"] == [{"name": "data"}, {"name": "wal"}]
    assert not {"lastStartTime", "lastCompletionTime", "lastSyncBytes"} & primary["status"].keys()
    wait_for(lambda: "lastSyncTime" in dc1.get(UNIFIED_VGR, "pg", namespace)["status"], "unified lastSyncTime")
    wait_conditions(dc2, UNIFIED_VGR, namespace, HEALTHY)

    set_spec(dc1, UNIFIED_VGR, "pg", {"replicationState": "secondary"}, namespace)
    demoted = wait_conditions(dc1, UNIFIED_VGR, namespace, HEALTHY)
    assert demoted["status"]["state"] == "Secondary"
    assert demoted["status"]["observedGeneration"] == 2
    set_spec(dc2, UNIFIED_VGR, "pg", {"replicationState": "primary"}, namespace)
    wait_conditions(dc2, UNIFIED_VGR, namespace, PRIMARY)


def test_volume_replication_of_one_pvc(simulator: SimulatorService, namespace: str) -> None:
    dc1, _ = apis(simulator)
    create_pvc(dc1, namespace, "data")
    body = {
        "metadata": {"name": "pg"},
        "spec": {
            "volumeReplicationClass": "rbd-vrc",
            "replicationState": "primary",
            "dataSource": {"kind": "PersistentVolumeClaim", "name": "data"},
        },
    }
    dc1.create(CSI_VR, body, namespace)
    replication = wait_conditions(dc1, CSI_VR, namespace, PRIMARY)
    assert "persistentVolumeClaimsRefList" not in replication["status"]
    assert [v.pvc for v in simulator.client().ledger(namespace).volumes] == ["data"]
