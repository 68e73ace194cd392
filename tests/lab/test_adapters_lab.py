"""Lab tier: the four replication adapters against the storage simulator on two real API servers (dc1, dc2).

Every test installs a fresh demo group (``sandbox.demo``: StatefulSet ``postgres`` with PVCs ``data``/``wal``/
``config-postgres-0`` on both clusters, dc1 primary) in a namespace of its own, drives it only through the adapter
API (``adapter_for``, ``demote``/``prepare_sync_point``/``promote``/``reprotect``, ``wait_for_status`` with the
adapters' predicates) and checks the outcome in the simulator's ledger. Parametrised over csi-addons, unified,
trident and powerstore, it covers:

- the planned sequence (quiesce, demote, final sync, sync point, promote, start on dc2, reprotect): roles swap and
  no acknowledged write is lost;
- an unplanned failover with dc1's storage site *and* API server down: the lag the adapter reported before the
  outage is the simulator's last shipment, and exactly the writes acknowledged after it are lost; then dc1 returns
  and is fenced (reprotect with resync);
- injected faults surfacing as the right error class, flags and message: demote failing forever or twice, promote
  failing, a stalled final sync, a demote refused while the volumes are in use (csi-addons, unified), Dell's
  retried versus permanent action errors, a Trident mirror that failed to establish being re-attempted by
  ``reprotect``, and a failing Dell REPROTECT_LOCAL (on the new source's RG) named by the wait on the old source;
- idempotence: repeating every call (in flight and once done) sends no write;
- printer columns: ``kubectl get`` tables of VolumeGroupReplication (both APIs), TridentMirrorRelationship and
  DellCSIReplicationGroup show the live state after a failover.

Backend rules these tests rely on (see the adapters' docstrings): Trident has no demote (the source's
``prepare_sync_point`` snapshots, the target's ``transfer_sync_point`` mirror updates carrying them are the final
sync, then the promotion at them) and does not retry a failed
TridentMirrorRelationship until its spec changes; a Dell planned failover is one ``FAILOVER_REMOTE`` on the source's
RG, so the target's planned ``promote`` writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from adapters.base import Backend, ReplicationStatus, Role, WriteResult
from adapters.trident import VOLUME_SNAPSHOTS
from adapters.waiting import wait_for_resync
from clusters.api import ClusterApi
from clusters.errors import BackendFailedError, OrchestratorError, PreconditionFailedError
from clusters.kubeclient import close_api_client
from sandbox.demo import CSI_VGR, DELL_RG, TMR, UNIFIED_VGR, install_group
from sandbox.lab import Lab
from sandbox.simulator.schemas import FaultKind
from sandbox.simulator.server import SimulatorService
from sandbox.simulator.testing import wait_for
from tests.lab.adapter_scenarios import (
    CLUSTERS,
    FAIL_WAIT,
    SOURCE,
    TARGET,
    WAIT,
    Scenario,
    group_last_shipment,
    new_group,
    shipment_window,
    table_rows,
    truncated,
)

BACKENDS = tuple(Backend)
CSI_FAMILY = (Backend.CSI_ADDONS, Backend.UNIFIED)
NewScenario = Callable[[str, Backend], Scenario]


def by_backend(*backends: Backend) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("backend", backends, ids=[backend.value for backend in backends])


@pytest.fixture()
def new_scenario(lab: Lab, simulator: SimulatorService) -> Iterator[NewScenario]:
    """Make scenarios (not installed yet) sharing one ClusterApi per cluster; clean them up afterwards."""
    api_clients = {name: lab.cluster(name).api_client() for name in CLUSTERS}
    apis = {name: ClusterApi(name, api_client) for name, api_client in api_clients.items()}
    client = simulator.client()
    made: list[Scenario] = []

    def make(label: str, backend: Backend) -> Scenario:
        clusters = {name: lab.cluster(name) for name in CLUSTERS}
        scenario = Scenario(new_group(label, backend), apis, client, clusters)
        made.append(scenario)
        return scenario

    yield make
    for scenario in made:
        scenario.cleanup()
    client.close()
    for api_client in api_clients.values():
        close_api_client(api_client)


# ---------------------------------------------------------------------------------------------------- planned


@by_backend(*BACKENDS)
def test_planned_failover_swaps_roles_and_loses_no_acknowledged_write(
    new_scenario: NewScenario, backend: Backend
) -> None:
    s = new_scenario("planned", backend)
    s.install()
    s.wait_ready(SOURCE)
    s.wait_acknowledged(minimum=3)

    s.quiesce(SOURCE)
    promoted = s.planned_handover()
    assert promoted.role is Role.PRIMARY and promoted.failure is None
    handed_over = s.volumes()
    for volume in handed_over:
        assert volume.acknowledged >= 3, volume
        assert volume.lost_at_promotion == 0, volume
        assert volume.sides[TARGET].held == volume.acknowledged, f"dc2 lacks acknowledged writes: {volume}"
        assert TARGET in volume.writable
    snapshots = VOLUME_SNAPSHOTS if backend is Backend.TRIDENT else None
    if snapshots is not None:
        assert len(s.apis[SOURCE].list(snapshots, s.namespace)) == 3  # the sync point: one per PVC

    s.start(TARGET)
    s.reprotect_source(resync=False)
    if snapshots is not None:
        assert s.apis[SOURCE].list(snapshots, s.namespace) == [], "the failover snapshots outlived the reprotect"
    source, target = s.source.observe(), s.target.observe()
    assert (target.role, source.role) == (Role.PRIMARY, Role.SECONDARY), (target.message, source.message)
    assert target.failure is None and source.failure is None

    # dc2's application writes, and they now reach dc1.
    baseline = {volume.pvc: volume.acknowledged for volume in handed_over}
    final = s.wait_volumes(lambda v: v.sides[SOURCE].held > baseline[v.pvc], "dc2's writes shipped to dc1")
    for volume in final:
        assert volume.writable == [TARGET], volume
        assert volume.lost_at_promotion == 0 and volume.discarded_at_resync == 0, volume
        assert volume.split_brain_writes == 0, volume
        assert volume.sides[TARGET].held == volume.acknowledged, volume


# ---------------------------------------------------------------------------------------------------- unplanned


@by_backend(*BACKENDS)
def test_unplanned_failover_loses_exactly_the_writes_after_the_reported_last_sync(
    new_scenario: NewScenario, backend: Backend, lab: Lab
) -> None:
    s = new_scenario("unplanned", backend)
    s.client.configure(sync_interval=3.0)  # one shipment every 3 s: a quiet window to observe in
    s.install()
    s.wait_ready(SOURCE)
    shipment_window(s, earliest=0.3, latest=1.0)
    primary_before, secondary_before = s.source.observe(), s.target.observe()

    s.client.site_down(SOURCE)
    lab.cluster(SOURCE).stop_apiserver()
    try:
        at_outage = s.volumes()
        shipped = group_last_shipment(at_outage)
        assert shipped is not None
        if backend in CSI_FAMILY:
            # lastSyncTime is reported on the primary only.
            assert primary_before.last_sync_time == truncated(shipped), primary_before.message
            assert secondary_before.last_sync_time is None
        elif backend is Backend.POWERSTORE:
            # lastSuccessfulUpdate, on both RGs while the link is SYNCHRONIZED.
            assert primary_before.last_sync_time == truncated(shipped), primary_before.message
            assert secondary_before.last_sync_time == truncated(shipped), secondary_before.message
        else:
            # Trident: a TMR has no transfer time and no TridentActionMirrorUpdate ran: the lag is unknown.
            assert primary_before.last_sync_time is None
            assert secondary_before.last_sync_time is None

        s.call(lambda: s.target.promote(force=True))
        s.wait(s.target, s.target.promoted, "dc2 promoted (unplanned)")
        promoted = s.volumes()
        for before, after in zip(at_outage, promoted, strict=True):
            unshipped = before.acknowledged - before.last_shipped_count
            assert unshipped > 0, before
            assert after.acknowledged == before.acknowledged, "no write on dc1 while its site is down"
            assert after.lost_at_promotion == unshipped, after
            assert after.sides[TARGET].held == before.last_shipped_count, after
            assert after.promotions[-1].cluster == TARGET and not after.promotions[-1].peer_up, after
    finally:
        try:
            lab.cluster(SOURCE).start_apiserver()
        finally:
            s.client.site_up(SOURCE)

    # Fence on return: stop dc1's application, make it follow dc2 discarding its divergent writes.
    wait_for(lambda: _answers(s.apis[SOURCE]), "dc1 API server answers again", 60)
    s.quiesce(SOURCE)
    s.reprotect_source(resync=True)
    assert (s.target.observe().role, s.source.observe().role) == (Role.PRIMARY, Role.SECONDARY)
    for volume in s.volumes():
        assert volume.writable == [TARGET], volume
        assert volume.sides[SOURCE].held == volume.sides[TARGET].held, volume
        assert volume.discarded_at_resync >= volume.lost_at_promotion, volume


def _answers(api: ClusterApi) -> bool:
    try:
        api.ping()
    except OrchestratorError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------- faults


RETRYING_DEMOTE_FAILURE = {
    Backend.CSI_ADDONS: "FailedToDemote",
    Backend.UNIFIED: "FailedToDemote",
    Backend.POWERSTORE: "FAILOVER_REMOTE failed, the controller retries",
}


@by_backend(*BACKENDS)
def test_demote_failing_forever_times_out_naming_the_condition(new_scenario: NewScenario, backend: Backend) -> None:
    s = new_scenario("demote-fails", backend)
    if backend is Backend.TRIDENT:
        # Trident has no demote: the fault fails the secondary's ``established`` (becoming a mirror destination),
        # and Trident does not retry a failed TMR: a permanent failure.
        s.add_fault(FaultKind.FAIL_DEMOTE, TARGET)
        install_group(s.apis, s.group, SOURCE, TARGET)
        error = s.expect_failure(
            s.target, s.target.resync_complete, "dc2 following dc1", "failed: Could not establish mirror: injected"
        )
        assert "the backend gave up" in error.message, error
        status = s.target.observe()
        assert status.failure_permanent and not status.healthy, status
        return

    s.install()
    s.add_fault(FaultKind.FAIL_DEMOTE, SOURCE)
    s.call(lambda: s.source.demote(peer=s.target))
    error = s.expect_failure(
        s.source, s.source.final_sync_complete, "final sync complete", RETRYING_DEMOTE_FAILURE[backend]
    )
    assert "not reached within" in error.message and "injected" in str(error), error
    status = s.source.observe()
    assert status.failure is not None and not status.failure_permanent, status
    wait_for(lambda: s.fired(FaultKind.FAIL_DEMOTE) >= 2, "the backend retrying", WAIT)

    # The backend retries on its own: once the cause is gone the same request completes, with no new write.
    writes = s.writes()
    s.remove_faults()
    s.wait(s.source, s.source.final_sync_complete, "final sync complete after the fault")
    assert s.writes() == writes


@by_backend(Backend.CSI_ADDONS, Backend.UNIFIED, Backend.POWERSTORE)
def test_demote_failing_twice_then_succeeds(new_scenario: NewScenario, backend: Backend) -> None:
    s = new_scenario("demote-twice", backend)
    s.install()
    s.add_fault(FaultKind.FAIL_DEMOTE, SOURCE, times=2)
    s.call(lambda: s.source.demote(peer=s.target))
    seen: list[ReplicationStatus] = []
    s.wait(s.source, s.source.final_sync_complete, "final sync complete", seen=seen)
    failures = [status for status in seen if status.failure]
    assert failures, "the failed attempts were visible"
    assert all(not status.failure_permanent for status in failures)
    assert RETRYING_DEMOTE_FAILURE[backend] in (failures[0].failure or "")
    assert s.fired(FaultKind.FAIL_DEMOTE) == 2


def test_trident_failing_to_establish_twice_surfaces_as_permanent(new_scenario: NewScenario) -> None:
    """Trident does not retry a failed TMR: with ``times=2`` the first failure is final and reported at once."""
    s = new_scenario("establish-twice", Backend.TRIDENT)
    s.add_fault(FaultKind.FAIL_DEMOTE, TARGET, times=2)
    install_group(s.apis, s.group, SOURCE, TARGET)
    error = s.expect_failure(s.target, s.target.resync_complete, "dc2 following dc1", "Could not establish mirror")
    assert "the backend gave up" in error.message, error
    wait_for(lambda: s.fired(FaultKind.FAIL_DEMOTE) == 2, "both counted failures used (one TMR each)")
    status = s.target.observe()
    failed = [volume.name for volume in status.volumes if volume.state == "failed"]
    assert len(failed) == 2 and status.failure_permanent, status


def test_trident_failed_mirror_is_permanent_and_says_how_to_recover(new_scenario: NewScenario) -> None:
    """A failed TMR is a final state: Trident retries it only when its spec changes.

    After ``established`` failed once, repeating ``reprotect`` with the same spec writes nothing (idempotence),
    so the failure must be reported as permanent with what the operator has to do, not waited out.
    """
    s = new_scenario("reestablish", Backend.TRIDENT)
    s.add_fault(FaultKind.FAIL_DEMOTE, TARGET, times=1)
    install_group(s.apis, s.group, SOURCE, TARGET)
    error = s.expect_failure(s.target, s.target.resync_complete, "dc2 following dc1", "Could not establish mirror")
    assert "recreate the relationship or edit its spec" in str(error)

    result = s.call(lambda: s.target.reprotect(resync=False, peer=s.source))
    assert not result.changed
    status = s.target.observe()
    assert status.failure_permanent and status.failure is not None
    assert "recreate the relationship or edit its spec" in status.failure


@by_backend(*BACKENDS)
def test_promote_failure_surfaces_naming_the_condition(new_scenario: NewScenario, backend: Backend) -> None:
    s = new_scenario("promote-fails", backend)
    s.install()
    s.quiesce(SOURCE)
    if backend is Backend.POWERSTORE:
        # The planned promotion is the peer half of the source's FAILOVER_REMOTE: it is the source's RG that retries.
        s.add_fault(FaultKind.FAIL_PROMOTE, TARGET)
        s.call(lambda: s.source.demote(peer=s.target))
        error = s.expect_failure(
            s.source, s.source.final_sync_complete, "final sync complete", "injected fail-promote fault on dc2"
        )
        assert "FAILOVER_REMOTE failed, the controller retries" in str(error), error
        assert not s.source.observe().failure_permanent
        s.remove_faults()
        s.planned_handover()
        return

    s.call(lambda: s.source.demote(peer=s.target))
    s.wait(s.source, s.source.final_sync_complete, "final sync complete")
    sync_point = s.call(lambda: s.prepare_sync_point(s.source))
    s.transfer_sync_point(sync_point)
    s.add_fault(FaultKind.FAIL_PROMOTE, TARGET)
    s.call(lambda: s.target.promote(force=False, sync_point=sync_point, peer=s.source))
    if backend is Backend.TRIDENT:
        error = s.expect_failure(
            s.target, s.target.promoted, "dc2 promoted", "failed: Could not promote mirror: injected fault"
        )
        assert "the backend gave up" in error.message, error
        assert s.target.observe().failure_permanent
        return
    error = s.expect_failure(s.target, s.target.promoted, "dc2 promoted", "FailedToPromote")
    assert "not reached within" in error.message, error
    assert not s.target.observe().failure_permanent
    s.remove_faults()
    s.wait(s.target, s.target.promoted, "dc2 promoted after the fault")


STALLED = {
    Backend.CSI_ADDONS: "Secondary, final sync running (Resyncing=True/ResyncTriggered",
    Backend.UNIFIED: "Secondary, final sync running (Resyncing=True/ResyncTriggered",
    Backend.POWERSTORE: "FAILOVER_REMOTE_IN_PROGRESS; target; link SYNC_IN_PROGRESS",
}


@by_backend(*BACKENDS)
def test_stalled_final_sync_times_out_naming_the_last_status(new_scenario: NewScenario, backend: Backend) -> None:
    s = new_scenario("stalled", backend)
    s.client.configure(sync_interval=60.0)  # no periodic shipment: only the final sync can carry the writes
    s.install()
    s.quiesce(SOURCE)
    s.write(SOURCE, 5)
    if backend is Backend.TRIDENT:
        # Trident's final sync is the mirror update that carries the sync point's snapshots to the target: stalled,
        # the wait ends at its timeout, the promotion is refused meanwhile (Trident would fail it for good), and once
        # unstalled a new call completes the same updates.
        sync_point = s.call(lambda: s.prepare_sync_point(s.source))
        assert sync_point is not None
        s.add_fault(FaultKind.STALL_FINAL_SYNC, SOURCE)
        with pytest.raises(BackendFailedError, match="have not reached this side within 2s") as late:
            s.target.transfer_sync_point(sync_point, timeout=2)
        assert "In progress" in late.value.message, late.value
        with pytest.raises(PreconditionFailedError, match="have not been transferred here"):
            s.target.promote(force=False, sync_point=sync_point, peer=s.source)
        s.remove_faults()
        assert not s.call(lambda: s.target.transfer_sync_point(sync_point, timeout=WAIT)).changed
        s.call(lambda: s.target.promote(force=False, sync_point=sync_point, peer=s.source))
        s.wait(s.target, s.target.promoted, "dc2 promoted once the snapshots arrived")
    else:
        s.add_fault(FaultKind.STALL_FINAL_SYNC, SOURCE)
        s.call(lambda: s.source.demote(peer=s.target))
        error = s.expect_failure(s.source, s.source.final_sync_complete, "final sync complete", STALLED[backend])
        assert "not reached within" in error.message, error
        s.remove_faults()
        s.wait(s.source, s.source.final_sync_complete, "final sync complete once unstalled")
    for volume in s.volumes():
        assert volume.sides[TARGET].held == volume.acknowledged >= 5, volume


@by_backend(*CSI_FAMILY)
def test_demote_refused_while_in_use_succeeds_after_quiesce(new_scenario: NewScenario, backend: Backend) -> None:
    s = new_scenario("in-use", backend)
    s.install()
    s.wait_ready(SOURCE)
    s.add_fault(FaultKind.REFUSE_DEMOTE_IN_USE, SOURCE)
    s.call(lambda: s.source.demote(peer=s.target))
    error = s.expect_failure(s.source, s.source.final_sync_complete, "final sync complete", "is still in use")
    assert "FailedToDemote" in str(error), error
    assert not s.source.observe().failure_permanent

    s.quiesce(SOURCE)  # no new request: the controller's retry succeeds once nothing uses the volumes
    s.wait(s.source, s.source.final_sync_complete, "final sync complete after quiesce")
    for volume in s.volumes():
        assert volume.sides[TARGET].held == volume.acknowledged > 0, volume


def test_dell_retrying_versus_permanent_action_error(new_scenario: NewScenario) -> None:
    s = new_scenario("dell-errors", Backend.POWERSTORE)
    s.install()
    s.add_fault(FaultKind.FAIL_DEMOTE, SOURCE)
    s.call(lambda: s.source.demote(peer=s.target))
    retrying = s.expect_failure(s.source, s.source.final_sync_complete, "final sync complete", "the controller retries")
    assert "not reached within" in retrying.message, retrying
    status = s.source.observe()
    assert status.failure is not None and not status.failure_permanent, status

    # The same fault made permanent: Dell gives up (state Error) and the wait ends at once.
    s.add_fault(FaultKind.FAIL_DEMOTE, SOURCE, permanent=True)
    error = s.expect_failure(
        s.source,
        s.source.final_sync_complete,
        "final sync complete",
        "Action FAILOVER_REMOTE failed with error injected fail-demote fault on dc1",
    )
    assert "the backend gave up" in error.message, error
    status = s.source.observe()
    assert status.failure_permanent and not status.completed and not status.healthy, status
    assert status.role is Role.PRIMARY, "the failed action left dc1 the source"


def test_dell_reprotect_failure_is_named_by_the_resync_wait(new_scenario: NewScenario) -> None:
    """``reprotect()`` on the old source runs REPROTECT_LOCAL on the new source's RG: the resync wait must name it.

    The action, and the controller's report of its failure, are only on dc2's RG (csm-replication writes no
    ``status.remoteState``, and neither does the simulator): dc1's RG, a settled target already, says nothing of
    it. :func:`wait_for_resync` (what the ``wait_resync`` activity runs) follows dc2's RG first, so it must not
    complete while the action is retried there, and its error must name the retried action.
    """
    s = new_scenario("dell-reprotect", Backend.POWERSTORE)
    s.install()
    s.quiesce(SOURCE)
    s.planned_handover()
    s.add_fault(FaultKind.FAIL_RESYNC, TARGET)
    s.call(lambda: s.source.reprotect(resync=False, peer=s.target))
    retried = "REPROTECT_LOCAL failed, the controller retries"
    s.expect_failure(s.target, s.target.peer_reprotect_complete, "the reprotect action on dc2", retried)
    assert "remoteState" not in (s.apis[SOURCE].get(DELL_RG, s.group.replication_name).get("status") or {})
    with pytest.raises(BackendFailedError) as raised:
        wait_for_resync(s.source, s.target, timeout=FAIL_WAIT, interval=0.1)
    assert "the reprotect action on dc2" in str(raised.value) and retried in str(raised.value), raised.value


# ---------------------------------------------------------------------------------------------------- idempotence


@by_backend(*BACKENDS)
def test_repeated_calls_write_nothing(new_scenario: NewScenario, backend: Backend) -> None:
    s = new_scenario("idempotent", backend)
    s.install()
    s.quiesce(SOURCE)
    source, target = s.source, s.target

    def once(call: Callable[[], WriteResult], changed: bool) -> None:
        before = s.writes()
        result = s.call(call)
        assert result.changed is changed, result
        assert (s.writes() > before) is changed, result

    def again(call: Callable[[], object]) -> None:
        before = s.writes()
        result = call()
        assert s.writes() == before, f"a repeated call wrote: {result}"
        if isinstance(result, WriteResult):
            assert not result.changed, result

    def demote() -> WriteResult:
        return source.demote(peer=target)

    once(demote, changed=backend is not Backend.TRIDENT)
    again(demote)  # in flight
    s.wait(source, source.final_sync_complete, "final sync complete")
    again(demote)  # done

    sync_point = s.call(lambda: s.prepare_sync_point(source, operation_id="idempotence"))
    before = s.writes()
    assert s.prepare_sync_point(source, operation_id="idempotence") == sync_point
    assert s.writes() == before, "a repeated prepare_sync_point wrote"
    if sync_point is not None:

        def transfer() -> WriteResult:
            return target.transfer_sync_point(sync_point, timeout=WAIT)

        once(transfer, changed=True)
        again(transfer)  # done: the same mirror updates, nothing written

    def promote() -> WriteResult:
        return target.promote(force=False, sync_point=sync_point, peer=source)

    once(promote, changed=backend is not Backend.POWERSTORE)
    again(promote)
    s.wait(target, target.promoted, "dc2 promoted")
    again(promote)

    def reprotect() -> WriteResult:
        return source.reprotect(resync=False, peer=target)

    once(reprotect, changed=backend in (Backend.TRIDENT, Backend.POWERSTORE))
    again(reprotect)
    s.settle_reprotect()
    again(reprotect)


# ---------------------------------------------------------------------------------------------------- tables


@by_backend(*BACKENDS)
def test_printer_columns_show_the_live_state_after_a_failover(new_scenario: NewScenario, backend: Backend) -> None:
    s = new_scenario("columns", backend)
    s.install()
    s.quiesce(SOURCE)
    s.planned_handover()
    s.reprotect_source(resync=False)

    if backend is Backend.CSI_ADDONS:
        columns = ["Name", "VolumeGroupReplicationClass", "VolumeGroupReplicationContent", "DesiredState"]
        columns += ["CurrentState", "Age"]
        for cluster, desired, current in ((TARGET, "primary", "Primary"), (SOURCE, "secondary", "Secondary")):
            table = s.table(cluster, CSI_VGR)
            assert [c["name"] for c in table["columnDefinitions"]] == columns
            row = table_rows(table)["postgres"]
            assert (row["DesiredState"], row["CurrentState"]) == (desired, current), row
            assert row["VolumeGroupReplicationClass"] == "rbd-group", row
    elif backend is Backend.UNIFIED:
        # The status lists the PVCs sorted; the API server shows only the first result of a ``[*]`` JSONPath.
        first_pvc = sorted(s.group.pvcs)[0]
        for cluster, desired in ((TARGET, "primary"), (SOURCE, "secondary")):
            table = s.table(cluster, UNIFIED_VGR)
            assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "State", "Class", "PVCs", "Age"]
            row = table_rows(table)["postgres"]
            # State is the CRD's .spec.replicationState (what was asked); PVCs comes from the status.
            assert (row["State"], row["Class"], row["PVCs"]) == (desired, "unified-group", first_pvc), row
    elif backend is Backend.TRIDENT:
        for cluster, state in ((TARGET, "promoted"), (SOURCE, "reestablished")):
            table = s.table(cluster, TMR)
            columns = [c["name"] for c in table["columnDefinitions"]]
            assert columns == ["Name", "Desired State", "Local PVC", "Actual state", "Message"]
            rows = table_rows(table)
            assert sorted(rows) == sorted(s.group.pvcs)
            for pvc, row in rows.items():
                assert (row["Desired State"], row["Local PVC"], row["Actual state"]) == (state, pvc, state), row
    else:
        name = s.group.replication_name
        for cluster in (TARGET, SOURCE):
            table = s.table(cluster, DELL_RG)
            columns = [c["name"] for c in table["columnDefinitions"]]
            assert columns == ["Name", "AGE", "State", "PG ID", "Link State", "Last LinkState Update"]
            row = table_rows(table)[name]
            expected = ("Ready", f"pg-{cluster}-{s.group.name}", "SYNCHRONIZED")
            assert (row["State"], row["PG ID"], row["Link State"]) == expected, row
            assert row["Last LinkState Update"], row

    # The adapters read the same state the columns show.
    assert (s.target.observe().role, s.source.observe().role) == (Role.PRIMARY, Role.SECONDARY)
