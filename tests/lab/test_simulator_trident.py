"""Lab tier: the simulator plays Trident (TMR, TSI, TAMU) and the CSI snapshotter on dc1 and dc2.

Covers a mirror's ``promoted`` and ``established`` states (``establishing`` first) with Trident's volume handles,
the planned promotion that fails ("Could not promote mirror") when its snapshot has not been transferred and
succeeds after a mirror update carried it, Trident's ``<volume>/<snapshot>`` handles, re-protection with
``reestablished``, the unplanned promotion (no handle) and its loss of exactly the unshipped writes,
TridentActionMirrorUpdate (a transfer on demand, refused on the source), and an injected promote failure that stays
``failed`` until the spec changes (as Trident does not retry a failed TMR).
"""

from __future__ import annotations

import re
import time

from clusters.api import PVCS, ClusterApi, JsonObject, Resource
from sandbox.simulator.kube import TAMU, TMR, TSI, VOLUME_SNAPSHOTS, nested
from sandbox.simulator.server import SimulatorService
from sandbox.simulator.testing import StatusHistory, create_pvc, set_spec, tmr, wait_for, wait_until_known

HANDLE = re.compile(r"^svm-dc[12]:trident_pvc_[0-9a-f]{8}$")


def mirror(api: ClusterApi, namespace: str) -> JsonObject:
    """``status.conditions[0]`` of the TMR ``data`` (empty before the first status)."""
    conditions: list[JsonObject] = nested(api.get(TMR, "data", namespace), "status", "conditions", default=[])
    return conditions[0] if conditions else {}


def wait_mirror(api: ClusterApi, namespace: str, state: str, timeout: float = 10) -> JsonObject:
    def reached() -> JsonObject | None:
        obj = api.get(TMR, "data", namespace)
        current = (nested(obj, "status", "conditions", default=[]) or [{}])[0]
        done = current.get("state") == state and current.get("observedGeneration") == obj["metadata"]["generation"]
        return current if done else None

    return wait_for(reached, f"{api.cluster} TMR {state}", timeout)


def wait_field(api: ClusterApi, resource: Resource, name: str, namespace: str, *path: str) -> object:
    return wait_for(lambda: nested(api.get(resource, name, namespace), *path), f"{name} {'.'.join(path)}")


def mirrored(simulator: SimulatorService, namespace: str) -> tuple[ClusterApi, ClusterApi, str]:
    """PVC ``data`` on both sites, dc1's TMR promoted and dc2's established from it; dc1's volume handle."""
    dc1, dc2 = simulator.simulator.api("dc1"), simulator.simulator.api("dc2")
    for api in (dc1, dc2):
        create_pvc(api, namespace, "data")
    dc1.create(TMR, tmr("data", "data", "promoted"), namespace)
    source = wait_mirror(dc1, namespace, "promoted")
    dc2.create(TMR, tmr("data", "data", "established", remote_handle=source["localVolumeHandle"]), namespace)
    wait_mirror(dc2, namespace, "established")
    return dc1, dc2, source["localVolumeHandle"]


def test_promoted_and_established_mirrors(simulator: SimulatorService, namespace: str) -> None:
    dc1, dc2 = simulator.simulator.api("dc1"), simulator.simulator.api("dc2")
    for api in (dc1, dc2):
        create_pvc(api, namespace, "data")
    dc1.create(TMR, tmr("data", "data", "promoted"), namespace)
    source = wait_mirror(dc1, namespace, "promoted")
    assert HANDLE.match(source["localVolumeHandle"]) and source["localVolumeHandle"].startswith("svm-dc1:")
    uid = dc1.get(PVCS, "data", namespace)["metadata"]["uid"]
    assert source["localVolumeHandle"].endswith(uid.split("-")[0])
    assert source["localPVCName"] == "data"
    assert (source["replicationPolicy"], source["replicationSchedule"]) == ("MirrorAllSnapshots", "1min")
    assert source["lastTransitionTime"]

    with StatusHistory(dc2, TMR, "data", namespace) as history:
        dc2.create(TMR, tmr("data", "data", "established", remote_handle=source["localVolumeHandle"]), namespace)
        destination = wait_mirror(dc2, namespace, "established")
        history.caught_up()
    states = [(nested(s, "conditions", default=[{}]) or [{}])[0].get("state") for s in history.statuses()]
    assert states[-2:] == ["establishing", "established"]
    assert destination["remoteVolumeHandle"] == source["localVolumeHandle"]
    assert simulator.client().volume(namespace, "data").writable == ["dc1"]


def test_planned_promotion_needs_the_snapshot_transferred_first(simulator: SimulatorService, namespace: str) -> None:
    client = simulator.client()
    client.configure(sync_interval=3600)  # nothing ships on its own until the test allows it
    dc1, dc2, source_handle = mirrored(simulator, namespace)
    wait_until_known(client, namespace, "data")
    assert client.write(namespace, "data", "dc1", 40).acknowledged == 40

    snapshot = dc1.create(
        VOLUME_SNAPSHOTS,
        {"metadata": {"name": "final"}, "spec": {"source": {"persistentVolumeClaimName": "data"}}},
        namespace,
    )
    wait_field(dc1, VOLUME_SNAPSHOTS, "final", namespace, "status", "readyToUse")
    ready = dc1.get(VOLUME_SNAPSHOTS, "final", namespace)["status"]
    assert ready["boundVolumeSnapshotContentName"] == f"snapcontent-{snapshot['metadata']['uid']}"
    assert ready["creationTime"] and ready["restoreSize"] == "1Gi"
    dc1.create(TSI, {"metadata": {"name": "final"}, "spec": {"snapshotName": "final"}}, namespace)
    handle = wait_field(dc1, TSI, "final", namespace, "status", "snapshotHandle")
    pvc_uid = dc1.get(PVCS, "data", namespace)["metadata"]["uid"]
    assert handle == f"pvc-{pvc_uid}/snapshot-{snapshot['metadata']['uid']}", "Trident's <volume>/<snapshot>"

    # Promoting before the snapshot arrived fails the TMR, as upstream (no waiting state), and it stays failed.
    early = {"state": "promoted", "volumeMappings": [{"localPVCName": "data", "promotedSnapshotHandle": handle}]}
    set_spec(dc2, TMR, "data", early, namespace)
    failed = wait_mirror(dc2, namespace, "failed")
    assert failed["message"] == "Could not promote mirror" and failed["observedGeneration"] == 2
    time.sleep(1.5)
    assert mirror(dc2, namespace)["state"] == "failed", "Trident does not retry a failed TMR on its own"
    assert client.volume(namespace, "data").writable == ["dc1"]

    # The recovery upstream allows: a spec change (here back to established), then the transfer, then the promote.
    mapping = {"localPVCName": "data", "remoteVolumeHandle": source_handle}
    following = {"state": "established", "volumeMappings": [mapping]}
    set_spec(dc2, TMR, "data", following, namespace)
    wait_mirror(dc2, namespace, "established")
    client.configure(sync_interval=0.5)
    update = {"tridentMirrorRelationshipName": "data", "snapshotHandle": handle}
    dc2.create(TAMU, {"metadata": {"name": "carry-final"}, "spec": update}, namespace)
    wait_for(lambda: nested(dc2.get(TAMU, "carry-final", namespace), "status", "state") == "Succeeded", "TAMU")
    set_spec(dc2, TMR, "data", early, namespace)
    wait_mirror(dc2, namespace, "promoted")
    data = client.volume(namespace, "data")
    assert data.lost_at_promotion == 0 and data.sides["dc2"].held == 40
    assert data.writable == ["dc1", "dc2"], "Trident leaves the old source writable until it is reestablished"

    target_handle = mirror(dc2, namespace)["localVolumeHandle"]
    set_spec(
        dc1,
        TMR,
        "data",
        {"state": "reestablished", "volumeMappings": [{"localPVCName": "data", "remoteVolumeHandle": target_handle}]},
        namespace,
    )
    wait_mirror(dc1, namespace, "reestablished")
    data = client.volume(namespace, "data")
    assert data.writable == ["dc2"]
    assert data.sides["dc1"].held == data.sides["dc2"].held == 40
    assert data.discarded_at_resync == 0, "nothing was written on the old source after the snapshot"


def test_unplanned_promotion_loses_the_unshipped_writes(simulator: SimulatorService, namespace: str) -> None:
    client = simulator.client()
    client.configure(sync_interval=3600)
    _, dc2, _ = mirrored(simulator, namespace)
    wait_until_known(client, namespace, "data")
    client.write(namespace, "data", "dc1", 10)

    dc2.create(TAMU, {"metadata": {"name": "update-1"}, "spec": {"tridentMirrorRelationshipName": "data"}}, namespace)
    first = wait_for(
        lambda: (s := dc2.get(TAMU, "update-1", namespace).get("status", {})).get("state") == "Succeeded" and s, "TAMU"
    )
    assert first["completionTime"] and "previousTransferTime" not in first, "no transfer happened before"
    assert HANDLE.match(first["localVolumeHandle"]) and HANDLE.match(first["remoteVolumeHandle"])
    dc2.create(TAMU, {"metadata": {"name": "update-2"}, "spec": {"tridentMirrorRelationshipName": "data"}}, namespace)
    second = wait_for(
        lambda: (s := dc2.get(TAMU, "update-2", namespace).get("status", {})).get("state") == "Succeeded" and s, "TAMU"
    )
    assert second["previousTransferTime"] <= second["completionTime"]
    assert client.volume(namespace, "data").sides["dc2"].held == 10

    client.write(namespace, "data", "dc1", 5)  # acknowledged after the last transfer
    client.site_down("dc1")
    set_spec(dc2, TMR, "data", {"state": "promoted"}, namespace)
    wait_mirror(dc2, namespace, "promoted")
    data = client.volume(namespace, "data")
    assert data.lost_at_promotion == 5 == data.acknowledged - data.last_shipped_count
    assert not data.promotions[-1].peer_up


def test_mirror_update_on_the_source_fails(simulator: SimulatorService, namespace: str) -> None:
    dc1, _, _ = mirrored(simulator, namespace)
    dc1.create(TAMU, {"metadata": {"name": "wrong-side"}, "spec": {"tridentMirrorRelationshipName": "data"}}, namespace)
    status = wait_for(
        lambda: (s := dc1.get(TAMU, "wrong-side", namespace).get("status", {})).get("state") == "Failed" and s,
        "TAMU failed",
    )
    assert "cannot be executed for TMR data in promoted state" in status["message"] and status["completionTime"]


def test_failed_promotion_waits_for_a_spec_change(simulator: SimulatorService, namespace: str) -> None:
    client = simulator.client()
    _, dc2, _ = mirrored(simulator, namespace)
    client.add_fault(namespace, "fail-promote", cluster="dc2", times=1)
    set_spec(dc2, TMR, "data", {"state": "promoted"}, namespace)
    failed = wait_mirror(dc2, namespace, "failed")
    assert failed["message"] == "Could not promote mirror: injected fault (attempt 1)"
    time.sleep(1.0)
    assert mirror(dc2, namespace)["state"] == "failed", "Trident does not retry a failed mirror on its own"
    assert client.volume(namespace, "data").writable == ["dc1"]

    set_spec(dc2, TMR, "data", {"replicationSchedule": "2min"}, namespace)  # a new generation: a new attempt
    wait_mirror(dc2, namespace, "promoted")
