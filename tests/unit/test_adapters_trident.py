"""Unit tier: the Trident adapter against recorded TridentMirrorRelationships and an in-memory API server."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from adapters.base import Backend, ReplicationTarget, Role, SyncPoint, WriteResult
from adapters.powerstore import PowerStoreAdapter
from adapters.trident import (
    MIRROR_RELATIONSHIPS,
    SNAPSHOT_INFOS,
    VOLUME_SNAPSHOTS,
    TridentAdapter,
    operation_suffix,
    snapshot_name,
    transfer_name,
)
from adapters.waiting import wait_for_status
from clusters.api import JsonObject
from clusters.errors import (
    BackendFailedError,
    ConflictError,
    InvalidSpecError,
    NotReadyError,
    ObjectMissingError,
    PreconditionFailedError,
)
from tests.unit.fake_cluster import FakeClock, FakeClusterApi, load_recorded, tmr_rules

NAMESPACE = "pg-prod"
PVCS = ("data-postgres-0", "wal-postgres-0", "config-postgres-0")
TARGET = ReplicationTarget(
    backend=Backend.TRIDENT,
    namespace=NAMESPACE,
    pvc_names=PVCS,
    tmr_names={pvc: f"{pvc}-mirror" for pvc in PVCS},
    snapshot_class="trident-snapshotclass",
)
TMR = "TridentMirrorRelationship"
OPERATION = "failover/pg-prod/2025-03-14T09:30"


def handles(cluster: str) -> dict[str, str]:
    """The recorded localVolumeHandle of every PVC on a site."""
    documents = load_recorded(
        f"trident/{cluster}-source-promoted.yaml" if cluster == "dc1" else "trident/dc2-target-established.yaml"
    )
    return {
        d["spec"]["volumeMappings"][0]["localPVCName"]: d["status"]["conditions"][0]["localVolumeHandle"]
        for d in documents
    }


def site(cluster: str, *recordings: str) -> tuple[TridentAdapter, FakeClusterApi]:
    documents = [document for name in recordings for document in load_recorded(f"trident/{name}")]
    api = FakeClusterApi(cluster, documents, rules={TMR: tmr_rules})
    return TridentAdapter(api, TARGET), api


def transfer(
    adapter: TridentAdapter, api: FakeClusterApi, sync_point: SyncPoint, *, state: str = "Succeeded", message: str = ""
) -> WriteResult:
    """Run :meth:`TridentAdapter.transfer_sync_point` while Trident ends every new mirror update in ``state``."""

    def trident_runs_the_updates(_: float) -> None:
        for (kind, namespace, name), document in list(api.objects.items()):
            if kind == "TridentActionMirrorUpdate" and "status" not in document:
                api.set_status(kind, name, {"state": state, "message": message}, namespace)

    return adapter.transfer_sync_point(sync_point, timeout=60, sleep=trident_runs_the_updates)


def snapshot_handles() -> dict[str, str]:
    documents = load_recorded("trident/dc2-target-promoted.yaml")
    return {
        d["spec"]["volumeMappings"][0]["localPVCName"]: d["spec"]["volumeMappings"][0]["promotedSnapshotHandle"]
        for d in documents
    }


# ----------------------------------------------------------------------------------------------------- observe


def test_source_with_every_tmr_promoted_is_a_completed_primary() -> None:
    adapter, _ = site("dc1", "dc1-source-promoted.yaml")
    status = adapter.observe()
    assert (status.role, status.current, status.completed, status.healthy) == (Role.PRIMARY, True, True, True)
    assert not status.replicating and not status.syncing and status.failure is None
    assert status.last_sync_time is None  # a source receives nothing: its mirror updates would be history
    assert status.message == "all 3 volumes promoted"
    assert [v.name for v in status.volumes] == list(PVCS)
    assert status.generations == {f"{TMR} pg-prod/{pvc}-mirror": 1 for pvc in PVCS}
    assert TridentAdapter.promoted(status)


def test_established_target_is_a_replicating_secondary_with_the_laggiest_volume_as_last_sync() -> None:
    adapter, _ = site("dc2", "dc2-target-established.yaml", "dc2-mirror-updates.yaml")
    status = adapter.observe()
    assert (status.role, status.completed, status.replicating, status.syncing) == (Role.SECONDARY, True, True, False)
    assert status.message == "all 3 volumes established"
    # Newest per TMR: data 08:58:10, wal 08:59:30, config 08:57:45 (previous transfer of a running update; the
    # failed update's completionTime is no transfer; reporting-db is another group): the group is as old as config.
    assert status.last_sync_time == datetime(2025, 3, 14, 8, 57, 45, tzinfo=UTC)
    assert TridentAdapter.resync_complete(status)


def test_mirror_updates_from_before_the_current_state_do_not_count() -> None:
    # Updates that ran before this side last changed state (e.g. before a failover and its reprotect) are history.
    adapter, api = site("dc2", "dc2-target-established.yaml", "dc2-mirror-updates.yaml")
    api.edit(
        TMR,
        "config-postgres-0-mirror",
        lambda d: d["status"]["conditions"][0].update(lastTransitionTime="2025-03-14T09:00:00Z"),
        NAMESPACE,
    )
    assert adapter.observe().last_sync_time is None


def test_last_sync_is_unknown_when_a_volume_has_no_mirror_update() -> None:
    adapter, api = site("dc2", "dc2-target-established.yaml", "dc2-mirror-updates.yaml")
    for name in ("update-wal-0856",):
        del api.objects[("TridentActionMirrorUpdate", NAMESPACE, name)]
    assert adapter.observe().last_sync_time is None


def test_target_waiting_for_snapshots_is_a_current_transition_with_the_waiting_messages() -> None:
    # Trident before v23.07 waited for a missing snapshot; a target still promoting is reported the same way.
    adapter, _ = site("dc2", "dc2-target-promoting-waiting-for-snapshot.yaml")
    status = adapter.observe()
    assert (status.role, status.current, status.completed, status.syncing) == (Role.UNKNOWN, True, False, True)
    assert status.failure is None and status.healthy
    wal, config = snapshot_handles()["wal-postgres-0"], snapshot_handles()["config-postgres-0"]
    assert status.message == (
        f"promoting: 1 of 3 volumes promoted; wal-postgres-0: Waiting for snapshot {wal}; "
        f"config-postgres-0: Waiting for snapshot {config}"
    )
    assert [(v.role, v.state) for v in status.volumes] == [
        (Role.PRIMARY, "promoted"),
        (Role.UNKNOWN, "promoting"),
        (Role.UNKNOWN, "promoting"),
    ]
    assert not TridentAdapter.promoted(status)


def test_promoted_target_is_a_completed_primary() -> None:
    adapter, _ = site("dc2", "dc2-target-promoted.yaml", "dc2-mirror-updates.yaml")
    status = adapter.observe()
    assert TridentAdapter.promoted(status)
    assert status.last_sync_time is None
    assert status.generations == {f"{TMR} pg-prod/{pvc}-mirror": 2 for pvc in PVCS}


def test_reestablishing_then_reestablished_old_source() -> None:
    adapter, _ = site("dc1", "dc1-old-source-reestablishing.yaml")
    status = adapter.observe()
    assert (status.role, status.completed, status.syncing, status.replicating) == (Role.UNKNOWN, False, True, False)
    assert status.message.startswith("reestablishing: 1 of 3 volumes reestablished")
    assert not TridentAdapter.resync_complete(status)

    adapter, _ = site("dc1", "dc1-old-source-reestablished.yaml")
    status = adapter.observe()
    assert (status.role, status.completed, status.replicating) == (Role.SECONDARY, True, True)
    assert TridentAdapter.resync_complete(status)


def test_failed_volume_is_a_permanent_failure_with_trident_message() -> None:
    adapter, _ = site("dc2", "dc2-target-failed.yaml")
    status = adapter.observe()
    assert status.failure is not None
    assert status.failure.startswith("wal-postgres-0 failed: Could not promote mirror (Trident retries")
    assert status.failure_permanent and not status.healthy and not status.completed
    assert status.message == status.failure
    assert [v.healthy for v in status.volumes] == [True, False, True]


def test_undoing_a_failed_promotion_leaves_its_failure_behind_as_history() -> None:
    # The compensation of a failed promotion makes the target follow the source again; until Trident reconciles
    # that spec the failed TMR's status is for the promotion, and the wait for Secondary must not give up on it.
    target, api = site("dc2", "dc2-target-failed.yaml")
    source, _ = site("dc1", "dc1-source-promoted.yaml")
    assert target.reprotect(resync=False, peer=source).changed
    status = target.observe()
    assert status.failure is None and not status.failure_permanent, status.failure
    assert (status.current, status.role, status.healthy) == (False, Role.UNKNOWN, False)
    assert status.volumes[1].state == "failed" and "status is for generation" in status.volumes[1].message
    # Named still (once), should Trident fail the new spec too: it would not rewrite a status that stays failed.
    assert status.message.count("Could not promote mirror") == 1, status.message
    every_tmr_failed = [mirror for mirror in api.objects.values() if mirror["kind"] == "TridentMirrorRelationship"]
    for mirror in every_tmr_failed:
        mirror["status"]["conditions"][0].update(state="failed", message="Could not promote mirror")
    status = target.observe()
    assert status.failure is None and not status.healthy
    assert "; wal-postgres-0 failed for its earlier spec (generation 2): Could not promote mirror" in status.message


def test_invalid_volume_is_a_permanent_failure() -> None:
    adapter, _ = site("dc2", "dc2-target-invalid.yaml")
    status = adapter.observe()
    assert status.failure is not None
    assert status.failure.startswith("config-postgres-0 invalid: localPVC's backend does not support mirroring")
    assert status.failure_permanent and status.role is Role.UNKNOWN and not status.replicating


def test_status_of_an_older_generation_is_not_current() -> None:
    adapter, _ = site("dc2", "dc2-target-stale-generation.yaml")
    status = adapter.observe()
    assert (status.current, status.completed, status.role) == (False, False, Role.UNKNOWN)
    assert status.failure is None
    assert "status not yet observed for the latest spec of data-postgres-0 (generation 2, observed 1)" in status.message
    assert status.volumes[0].message == "status is for generation 1, spec is at 2"
    assert not TridentAdapter.promoted(status) and not TridentAdapter.resync_complete(status)


def test_missing_tmr_and_missing_pvc_list_are_permanent_errors() -> None:
    adapter, api = site("dc2", "dc2-target-established.yaml")
    del api.objects[(TMR, NAMESPACE, "wal-postgres-0-mirror")]
    with pytest.raises(ObjectMissingError, match="wal-postgres-0-mirror"):
        adapter.observe()
    with pytest.raises(InvalidSpecError, match="PVC names"):
        TridentAdapter(api, TARGET.model_copy(update={"pvc_names": ()})).observe()


def test_peer_info_is_the_local_volume_handles() -> None:
    adapter, _ = site("dc2", "dc2-target-established.yaml")
    assert adapter.peer_info().volume_handles == handles("dc2")


# ----------------------------------------------------------------------------------------------------- writes


def test_planned_promotion_sends_the_full_mapping_once() -> None:
    adapter, api = site("dc2", "dc2-target-established.yaml")
    sync_point = SyncPoint(snapshot_handles=snapshot_handles())
    transfer(adapter, api, sync_point)
    api.log.clear()
    api.writes = 0
    result = adapter.promote(force=False, sync_point=sync_point)
    assert result.changed and api.writes == 3
    assert result.generations == {f"{TMR} pg-prod/{pvc}-mirror": 2 for pvc in PVCS}
    verb, ref, body = api.log[0]
    assert (verb, ref) == ("PATCH", f"{TMR} pg-prod/data-postgres-0-mirror")
    assert body["metadata"]["resourceVersion"]  # guarded against a concurrent edit
    assert body["spec"] == {
        "state": "promoted",
        "volumeMappings": [
            {
                "localPVCName": "data-postgres-0",
                "remoteVolumeHandle": handles("dc1")["data-postgres-0"],  # kept: Trident fails a changed handle
                "promotedSnapshotHandle": sync_point.snapshot_handles["data-postgres-0"],
            }
        ],
    }
    again = adapter.promote(force=False, sync_point=sync_point)
    assert not again.changed and api.writes == 3
    assert again.generations == result.generations


def test_planned_promotion_before_the_snapshots_were_transferred_is_refused() -> None:
    # Upstream Trident fails such a promotion ("Could not promote mirror") for good: it is never sent.
    adapter, api = site("dc2", "dc2-target-established.yaml")
    sync_point = SyncPoint(snapshot_handles=snapshot_handles())
    with pytest.raises(
        PreconditionFailedError, match="snapshots of data-postgres-0, wal-postgres-0, config-postgres-0 have"
    ):
        adapter.promote(force=False, sync_point=sync_point)
    assert api.writes == 0
    running = transfer_name("wal-postgres-0", sync_point.snapshot_handles["wal-postgres-0"])
    api.put(
        {
            "apiVersion": "trident.netapp.io/v1",
            "kind": "TridentActionMirrorUpdate",
            "metadata": {"name": running, "namespace": NAMESPACE},
            "spec": {"tridentMirrorRelationshipName": "wal-postgres-0-mirror", "snapshotHandle": "x"},
            "status": {"state": "In progress"},
        }
    )
    with pytest.raises(PreconditionFailedError, match="wal-postgres-0"):
        adapter.promote(force=False, sync_point=sync_point)  # an update still running has not transferred it


def test_planned_promotion_without_a_complete_sync_point_is_refused() -> None:
    adapter, api = site("dc2", "dc2-target-established.yaml")
    with pytest.raises(PreconditionFailedError, match="needs the sync point"):
        adapter.promote(force=False)
    partial = {k: v for k, v in snapshot_handles().items() if k != "wal-postgres-0"}
    with pytest.raises(PreconditionFailedError, match="no snapshot handle for wal-postgres-0"):
        adapter.promote(force=False, sync_point=SyncPoint(snapshot_handles=partial))
    assert api.writes == 0


def test_forced_promotion_drops_a_pending_snapshot_handle_once() -> None:
    adapter, api = site("dc2", "dc2-target-promoting-waiting-for-snapshot.yaml")
    result = adapter.promote(force=True, sync_point=SyncPoint(snapshot_handles=snapshot_handles()))
    # data-postgres-0 is already promoted for its generation and left alone; the two waiting ones are rewritten.
    assert result.changed and api.writes == 2
    for pvc in ("wal-postgres-0", "config-postgres-0"):
        mapping = api.stored(TMR, f"{pvc}-mirror", NAMESPACE)["spec"]["volumeMappings"][0]
        assert mapping == {"localPVCName": pvc, "remoteVolumeHandle": handles("dc1")[pvc]}
    assert not adapter.promote(force=True).changed and api.writes == 2


def test_promoting_an_already_promoted_source_writes_nothing() -> None:
    adapter, api = site("dc1", "dc1-source-promoted.yaml")
    assert not adapter.promote(force=True).changed
    assert not adapter.promote(force=False).changed  # compensation: the untouched source needs no sync point
    assert not adapter.promote(force=False, sync_point=SyncPoint(snapshot_handles=snapshot_handles())).changed
    assert api.writes == 0


def test_promotion_does_not_overwrite_a_concurrent_edit() -> None:
    adapter, api = site("dc2", "dc2-target-established.yaml")

    def operator_edits_first() -> None:
        api.before_write = None
        api.edit(TMR, "data-postgres-0-mirror", lambda d: d["spec"].update(replicationSchedule="15min"), NAMESPACE)

    api.before_write = operator_edits_first
    with pytest.raises(ConflictError, match="modified"):
        adapter.promote(force=True)
    assert api.stored(TMR, "data-postgres-0-mirror", NAMESPACE)["spec"]["state"] == "established"


def test_demote_writes_nothing_and_the_source_counts_as_ready_for_the_handover() -> None:
    adapter, api = site("dc1", "dc1-source-promoted.yaml")
    result = adapter.demote()
    assert not result.changed and api.writes == 0
    assert result.generations == {f"{TMR} pg-prod/{pvc}-mirror": 1 for pvc in PVCS}
    assert TridentAdapter.final_sync_complete(adapter.observe())
    target, _ = site("dc2", "dc2-target-established.yaml")
    assert not TridentAdapter.final_sync_complete(target.observe())


def test_reprotect_reestablishes_towards_the_peer_and_clears_the_snapshot_handle_once() -> None:
    # Failback preparation: dc2 was promoted with snapshots and now follows dc1 again.
    old_primary, api = site("dc2", "dc2-target-promoted.yaml")
    new_primary, _ = site("dc1", "dc1-source-promoted.yaml")
    result = old_primary.reprotect(resync=False, peer=new_primary)
    assert result.changed and api.writes == 3  # the fake enforces the CRD rule on promotedSnapshotHandle
    for pvc in PVCS:
        spec = api.stored(TMR, f"{pvc}-mirror", NAMESPACE)["spec"]
        assert spec["state"] == "reestablished"
        assert spec["volumeMappings"] == [{"localPVCName": pvc, "remoteVolumeHandle": handles("dc1")[pvc]}]
    assert not old_primary.reprotect(resync=True, peer=new_primary).changed and api.writes == 3


def test_reprotect_of_the_old_source_after_a_planned_failover() -> None:
    old_source, api = site("dc1", "dc1-source-promoted.yaml")
    new_primary, _ = site("dc2", "dc2-target-promoted.yaml")
    old_source.reprotect(resync=False, peer=new_primary)
    assert api.writes == 3
    spec = api.stored(TMR, "wal-postgres-0-mirror", NAMESPACE)["spec"]
    assert spec["volumeMappings"][0]["remoteVolumeHandle"] == handles("dc2")["wal-postgres-0"]


def test_reprotect_first_deletes_the_failover_snapshots_taken_here() -> None:
    old_source, api = site("dc1", "dc1-source-promoted.yaml")
    controller = SnapshotController(api)
    clock = FakeClock(*[controller] * 5)
    old_source.prepare_sync_point(operation_id=OPERATION, clock=clock, sleep=clock.sleep)
    own = {
        "metadata": {"name": "nightly", "namespace": NAMESPACE},
        "spec": {"source": {"persistentVolumeClaimName": PVCS[0]}},
    }
    api.put({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", **own})  # not ours: kept
    new_primary, _ = site("dc2", "dc2-target-promoted.yaml")
    api.writes = 0
    assert old_source.reprotect(resync=False, peer=new_primary).changed
    assert api.writes == 6 + 3  # a VolumeSnapshot and its TSI per PVC, then the three TMRs
    left = [name for kind, _, name in api.objects if kind in ("VolumeSnapshot", "TridentSnapshotInfo")]
    assert left == ["nightly"]
    assert not old_source.reprotect(resync=False, peer=new_primary).changed and api.writes == 9


def test_reprotect_waits_until_a_failover_snapshot_is_gone() -> None:
    # ONTAP deletes no snapshot of a mirror destination: the TMRs are reestablished only once it is gone.
    old_source, api = site("dc1", "dc1-source-promoted.yaml", "dc1-sync-point-snapshot.yaml")
    name = snapshot_name("data-postgres-0", operation_suffix(OPERATION))
    api.edit(
        "VolumeSnapshot", name, lambda d: d["metadata"].update(deletionTimestamp="2025-03-14T09:40:00Z"), NAMESPACE
    )
    new_primary, _ = site("dc2", "dc2-target-promoted.yaml")
    api.writes = 0
    with pytest.raises(NotReadyError, match=f"snapshots {name} are still being deleted"):
        old_source.reprotect(resync=False, peer=new_primary)
    assert api.writes == 0 and api.stored(TMR, "data-postgres-0-mirror", NAMESPACE)["spec"]["state"] == "promoted"
    del api.objects[("VolumeSnapshot", NAMESPACE, name)]
    assert old_source.reprotect(resync=False, peer=new_primary).changed


def test_reprotect_leaves_an_established_tmr_towards_the_same_volume_alone() -> None:
    follower, api = site("dc2", "dc2-target-established.yaml")
    primary, _ = site("dc1", "dc1-source-promoted.yaml")
    assert not follower.reprotect(resync=False, peer=primary).changed and api.writes == 0


def test_reprotect_refuses_a_peer_without_handles_or_with_another_volume() -> None:
    old_primary, api = site("dc2", "dc2-target-promoted.yaml")
    peer, peer_api = site("dc1", "dc1-source-promoted.yaml")
    peer_api.edit(
        TMR, "config-postgres-0-mirror", lambda d: d["status"]["conditions"][0].pop("localVolumeHandle"), NAMESPACE
    )
    with pytest.raises(NotReadyError, match="no localVolumeHandle yet for config-postgres-0"):
        old_primary.reprotect(resync=False, peer=peer)

    peer_api.edit(
        TMR,
        "config-postgres-0-mirror",
        lambda d: d["status"]["conditions"][0].update(localVolumeHandle="svm_dc3:trident_pvc_other"),
        NAMESPACE,
    )
    with pytest.raises(PreconditionFailedError, match="cannot change a TMR's remote volume"):
        old_primary.reprotect(resync=False, peer=peer)
    assert api.writes == 0


def test_reprotect_needs_a_trident_peer() -> None:
    adapter, _ = site("dc2", "dc2-target-promoted.yaml")
    dell = PowerStoreAdapter(FakeClusterApi("dc1"), ReplicationTarget(backend=Backend.POWERSTORE, namespace=NAMESPACE))
    with pytest.raises(PreconditionFailedError, match="needs a trident peer"):
        adapter.reprotect(resync=False, peer=dell)


# ----------------------------------------------------------------------------------------------------- sync point


class SnapshotController:
    """Plays the snapshot controller and Trident on one site: readies snapshots, then fills TSI handles."""

    def __init__(self, api: FakeClusterApi, *, error: str | None = None, never_ready: bool = False) -> None:
        recorded = {d["kind"]: d for d in load_recorded("trident/dc1-sync-point-snapshot.yaml")}
        self.api = api
        self.snapshot_status = recorded["VolumeSnapshot"]["status"]
        self.error = error
        self.never_ready = never_ready

    def __call__(self) -> None:
        for (kind, namespace, name), document in list(self.api.objects.items()):
            if kind == "VolumeSnapshot" and "status" not in document:
                status = (
                    {"readyToUse": False, "error": {"message": self.error, "time": "2025-03-14T09:30:03Z"}}
                    if self.error
                    else {"readyToUse": False}
                    if self.never_ready
                    else copy.deepcopy(self.snapshot_status)
                )
                self.api.set_status(kind, name, status, namespace)
            if kind == "TridentSnapshotInfo" and "status" not in document:
                handle = f"snapshot-{document['metadata']['uid']}"
                self.api.set_status(kind, name, {"snapshotHandle": handle}, namespace)


def test_sync_point_snapshots_every_pvc_and_a_retry_reuses_them() -> None:
    adapter, api = site("dc1", "dc1-source-promoted.yaml")
    controller = SnapshotController(api)
    clock = FakeClock(*[controller] * 5)
    sync_point = adapter.prepare_sync_point(operation_id=OPERATION, clock=clock, sleep=clock.sleep)
    suffix = operation_suffix(OPERATION)
    names = {pvc: snapshot_name(pvc, suffix) for pvc in PVCS}
    # 3 snapshots up front, 3 TSIs once the snapshots are ready, 2 sleeps (ready, then handles).
    assert api.writes == 6 and clock.sleeps == 2
    assert sync_point.snapshot_handles == {
        pvc: f"snapshot-{api.stored('TridentSnapshotInfo', name, NAMESPACE)['metadata']['uid']}"
        for pvc, name in names.items()
    }
    snapshot = api.stored("VolumeSnapshot", names["wal-postgres-0"], NAMESPACE)
    assert snapshot["spec"] == {
        "source": {"persistentVolumeClaimName": "wal-postgres-0"},
        "volumeSnapshotClassName": "trident-snapshotclass",
    }
    assert snapshot["metadata"]["labels"]["failover-orchestrator.io/operation"] == suffix
    assert api.stored("TridentSnapshotInfo", names["wal-postgres-0"], NAMESPACE)["spec"] == {
        "snapshotName": names["wal-postgres-0"]
    }

    again = adapter.prepare_sync_point(operation_id=OPERATION, clock=clock, sleep=clock.sleep)
    assert again == sync_point and api.writes == 6


def test_sync_point_reuses_a_recorded_ready_snapshot() -> None:
    adapter, api = site("dc1", "dc1-source-promoted.yaml", "dc1-sync-point-snapshot.yaml")
    recorded = api.stored(
        "TridentSnapshotInfo", snapshot_name("data-postgres-0", operation_suffix(OPERATION)), NAMESPACE
    )
    controller = SnapshotController(api)
    clock = FakeClock(*[controller] * 5)
    sync_point = adapter.prepare_sync_point(operation_id=OPERATION, clock=clock, sleep=clock.sleep)
    assert sync_point.snapshot_handles["data-postgres-0"] == recorded["status"]["snapshotHandle"]
    assert api.writes == 4  # two more snapshots and their TSIs; the recorded pair is re-used


def test_sync_points_without_an_operation_id_never_share_snapshots() -> None:
    adapter, api = site("dc1", "dc1-source-promoted.yaml")
    controller = SnapshotController(api)
    clock = FakeClock(*[controller] * 10)
    first = adapter.prepare_sync_point(clock=clock, sleep=clock.sleep)
    second = adapter.prepare_sync_point(clock=clock, sleep=clock.sleep)
    assert set(first.snapshot_handles.values()).isdisjoint(second.snapshot_handles.values())
    assert api.writes == 12


def test_sync_point_is_taken_on_the_source_only() -> None:
    adapter, api = site("dc2", "dc2-target-established.yaml")
    with pytest.raises(PreconditionFailedError, match="data-postgres-0 is established"):
        adapter.prepare_sync_point(operation_id=OPERATION)
    assert api.writes == 0


def test_sync_point_timeout_is_retryable_without_error_and_permanent_with_one() -> None:
    adapter, api = site("dc1", "dc1-source-promoted.yaml")
    controller = SnapshotController(api, never_ready=True)
    clock = FakeClock(*[controller] * 100)
    with pytest.raises(NotReadyError, match=r"not ready within 30s .* re-uses them") as late:
        adapter.prepare_sync_point(operation_id=OPERATION, timeout=30, interval=5, clock=clock, sleep=clock.sleep)
    assert "data-postgres-0: VolumeSnapshot pg-prod/data-postgres-0-failover-" in late.value.message
    assert clock.now == 30

    adapter, api = site("dc1", "dc1-source-promoted.yaml")
    controller = SnapshotController(api, error="Failed to create snapshot: snapshot limit of 1023 reached on volume")
    clock = FakeClock(*[controller] * 100)
    with pytest.raises(BackendFailedError, match="snapshot limit of 1023") as failed:
        adapter.prepare_sync_point(operation_id=OPERATION, timeout=30, interval=5, clock=clock, sleep=clock.sleep)
    assert failed.value.condition == "Failed to create snapshot: snapshot limit of 1023 reached on volume"


def test_sync_point_refuses_a_snapshot_name_taken_by_another_pvc() -> None:
    adapter, api = site("dc1", "dc1-source-promoted.yaml", "dc1-sync-point-snapshot.yaml")
    name = snapshot_name("data-postgres-0", operation_suffix(OPERATION))
    api.edit("VolumeSnapshot", name, lambda d: d["spec"]["source"].update(persistentVolumeClaimName="other"), NAMESPACE)
    with pytest.raises(InvalidSpecError, match="snapshots other, not data-postgres-0"):
        adapter.prepare_sync_point(operation_id=OPERATION)


def test_snapshot_names_are_deterministic_and_bounded() -> None:
    assert snapshot_name("data-postgres-0", operation_suffix(OPERATION)) == "data-postgres-0-failover-9dd83a6b17"
    long_name = snapshot_name("p" * 300, "abc")
    assert len(long_name) == 253 and long_name.endswith("-failover-abc")


# ----------------------------------------------------------------------------------------------- transfer


def test_transfer_creates_one_mirror_update_per_snapshot_and_a_retry_reuses_them() -> None:
    adapter, api = site("dc2", "dc2-target-established.yaml")
    sync_point = SyncPoint(snapshot_handles=snapshot_handles())
    result = transfer(adapter, api, sync_point)
    assert result.changed and api.writes == 3
    for pvc in PVCS:
        name = transfer_name(pvc, sync_point.snapshot_handles[pvc])
        update = api.stored("TridentActionMirrorUpdate", name, NAMESPACE)
        assert update["spec"] == {
            "tridentMirrorRelationshipName": f"{pvc}-mirror",
            "snapshotHandle": sync_point.snapshot_handles[pvc],
        }
        assert update["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "failover-orchestrator"}
    again = transfer(adapter, api, sync_point)
    assert not again.changed and api.writes == 3
    assert again.generations == result.generations


def test_transfer_reports_progress_and_ends_at_its_timeout() -> None:
    adapter, api = site("dc2", "dc2-target-established.yaml")
    sync_point = SyncPoint(snapshot_handles=snapshot_handles())
    seen: list[str] = []
    with pytest.raises(BackendFailedError, match=r"not reached this side within 0s .*re-uses the running mirror upd"):
        adapter.transfer_sync_point(sync_point, timeout=0, progress=seen.append, sleep=lambda _: None)
    assert seen == [
        "mirror updates: 0 of 3 succeeded; data-postgres-0: not started by Trident yet; wal-postgres-0: not started "
        "by Trident yet; config-postgres-0: not started by Trident yet"
    ]
    assert api.writes == 3
    assert not transfer(adapter, api, sync_point).changed and api.writes == 3  # a new call waits for the same ones


def test_a_failed_mirror_update_is_a_permanent_failure_with_tridents_message() -> None:
    adapter, api = site("dc2", "dc2-target-established.yaml")
    message = "mirror update failed: transfer aborted"
    with pytest.raises(BackendFailedError, match="data-postgres-0: Failed: mirror update failed") as failed:
        transfer(adapter, api, SyncPoint(snapshot_handles=snapshot_handles()), state="Failed", message=message)
    assert failed.value.condition == message
    assert "nothing was promoted" in failed.value.message


def test_transfer_needs_a_current_snapmirror_destination_and_every_snapshot() -> None:
    adapter, api = site("dc1", "dc1-source-promoted.yaml")
    with pytest.raises(PreconditionFailedError, match="data-postgres-0 is promoted"):
        adapter.transfer_sync_point(SyncPoint(snapshot_handles=snapshot_handles()), timeout=60)
    adapter, api = site("dc2", "dc2-target-established.yaml")
    partial = {k: v for k, v in snapshot_handles().items() if k != "config-postgres-0"}
    with pytest.raises(PreconditionFailedError, match="no snapshot handle for config-postgres-0"):
        adapter.transfer_sync_point(SyncPoint(snapshot_handles=partial), timeout=60)
    assert api.writes == 0


def test_transfer_refuses_an_update_name_taken_by_another_snapshot() -> None:
    adapter, api = site("dc2", "dc2-target-established.yaml")
    sync_point = SyncPoint(snapshot_handles=snapshot_handles())
    transfer(adapter, api, sync_point)
    name = transfer_name("wal-postgres-0", sync_point.snapshot_handles["wal-postgres-0"])
    api.edit("TridentActionMirrorUpdate", name, lambda d: d["spec"].update(snapshotHandle="other"), NAMESPACE)
    with pytest.raises(InvalidSpecError, match="exists for another relationship or snapshot"):
        transfer(adapter, api, sync_point)


def test_transfer_names_are_deterministic_and_bounded() -> None:
    handle = "pvc-3f6d2a4e/snapshot-1c9a6f0e"
    assert transfer_name("data-postgres-0", handle) == transfer_name("data-postgres-0", handle)
    assert transfer_name("data-postgres-0", handle) != transfer_name("data-postgres-0", handle + "x")
    long_name = transfer_name("p" * 300, handle)
    assert len(long_name) == 253 and "-transfer-" in long_name


# ----------------------------------------------------------------------------------------------------- waiting


def test_wait_for_promotion_follows_the_snapshot_wait_to_promoted() -> None:
    adapter, api = site("dc2", "dc2-target-promoting-waiting-for-snapshot.yaml")
    promoted = load_recorded("trident/dc2-target-promoted.yaml")
    seen: list[str] = []
    clock = FakeClock(lambda: None, lambda: api.put_all(promoted))
    status = wait_for_status(
        adapter,
        adapter.promoted,
        what="target promoted",
        timeout=300,
        interval=10,
        progress=lambda s: seen.append(s.message),
        clock=clock,
        sleep=clock.sleep,
    )
    assert status.role is Role.PRIMARY and clock.sleeps == 2
    assert seen[0].startswith("promoting: 1 of 3 volumes promoted") and seen[-1] == "all 3 volumes promoted"


def test_wait_fails_fast_on_a_failed_volume_and_times_out_on_a_stale_status() -> None:
    adapter, _ = site("dc2", "dc2-target-failed.yaml")
    clock = FakeClock()
    with pytest.raises(
        BackendFailedError, match="the backend gave up: wal-postgres-0 failed: Could not promote mirror"
    ):
        wait_for_status(adapter, adapter.promoted, what="target promoted", timeout=300, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == 0

    adapter, _ = site("dc2", "dc2-target-stale-generation.yaml")
    clock = FakeClock()
    with pytest.raises(BackendFailedError, match=r"not reached within 60s \(last status: all 3 volumes established; "):
        wait_for_status(
            adapter, adapter.promoted, what="target promoted", timeout=60, interval=10, clock=clock, sleep=clock.sleep
        )
    assert clock.now == 60


def test_wait_for_resync_after_reprotect() -> None:
    adapter, api = site("dc1", "dc1-old-source-reestablishing.yaml")
    done = load_recorded("trident/dc1-old-source-reestablished.yaml")
    clock = FakeClock(lambda: api.put_all(done))
    status = wait_for_status(
        adapter, adapter.resync_complete, what="resync", timeout=120, interval=5, clock=clock, sleep=clock.sleep
    )
    assert status.replicating and clock.sleeps == 1


def test_resources_are_the_lab_crds() -> None:
    assert (
        MIRROR_RELATIONSHIPS.path(NAMESPACE, "x")
        == "/apis/trident.netapp.io/v1/namespaces/pg-prod/tridentmirrorrelationships/x"
    )
    assert SNAPSHOT_INFOS.plural == "tridentsnapshotinfos"
    assert VOLUME_SNAPSHOTS.api_version == "snapshot.storage.k8s.io/v1"


# ----------------------------------------------------------------------------------------------- missing_volumes


def test_every_configured_pvc_has_its_tmr_so_nothing_is_missing() -> None:
    for cluster, recording in (("dc1", "dc1-source-promoted.yaml"), ("dc2", "dc2-target-established.yaml")):
        adapter, _ = site(cluster, recording)
        status = adapter.observe()
        assert status.missing_volumes == ()
        assert status.volume_problems(PVCS) == []


def test_a_tmr_that_mirrors_another_pvc_leaves_its_pvc_unreplicated() -> None:
    adapter, api = site("dc2", "dc2-target-established.yaml")

    def retarget(document: JsonObject) -> None:
        document["spec"]["volumeMappings"][0]["localPVCName"] = "wal-postgres-1"

    api.edit(TMR, "wal-postgres-0-mirror", retarget, NAMESPACE)
    status = adapter.observe()
    assert status.missing_volumes == ("wal-postgres-0",)
    wal = status.volumes[1]
    why = f"{TMR} pg-prod/wal-postgres-0-mirror mirrors PVC wal-postgres-1 (its volumeMappings[0].localPVCName)"
    assert (wal.name, wal.role, wal.state, wal.message, wal.healthy) == (
        "wal-postgres-0",
        Role.UNKNOWN,
        "not replicated",
        why,
        False,
    )
    assert status.message.endswith(f"; not replicated: wal-postgres-0, {why}")
    assert status.volume_problems(PVCS) == [f"PVC wal-postgres-0 is not replicated by the group's {TMR}s ({why})"]


def test_a_configured_pvc_without_a_tmr_still_fails_the_observation() -> None:
    # No silent skip: the PVC is not reported as missing because observe() refuses to answer without its TMR.
    adapter, _ = site("dc2", "dc2-target-established.yaml")
    target = TARGET.model_copy(update={"pvc_names": (*PVCS, "archive-postgres-0")})
    with pytest.raises(ObjectMissingError, match="archive-postgres-0"):
        TridentAdapter(adapter.api, target).observe()


def test_a_failed_tmr_is_an_unhealthy_volume_problem() -> None:
    adapter, _ = site("dc2", "dc2-target-failed.yaml")
    status = adapter.observe()
    assert status.missing_volumes == ()
    assert status.volume_problems(PVCS) == ["PVC wal-postgres-0: failed (Could not promote mirror)"]
