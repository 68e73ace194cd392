"""Unit tier: the PowerStore adapter against recorded DellCSIReplicationGroups and an in-memory API server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from adapters.base import Backend, ReplicationTarget, Role
from adapters.powerstore import (
    ACTION_BASELINE_ANNOTATION,
    REPLICATION_GROUPS,
    REQUESTED_ACTION_ANNOTATION,
    PowerStoreAdapter,
    action_history_digest,
)
from adapters.trident import TridentAdapter
from adapters.waiting import wait_for_status
from clusters.api import JsonObject, Resource
from clusters.errors import (
    BackendFailedError,
    ConflictError,
    InvalidSpecError,
    NotReadyError,
    PreconditionFailedError,
)
from tests.unit.fake_cluster import FakeClock, FakeClusterApi, load_recorded

RG = "DellCSIReplicationGroup"
NAME = "rg-pg-prod"
TARGET = ReplicationTarget(backend=Backend.POWERSTORE, namespace="pg-prod", name=NAME)


def site(cluster: str, recording: str) -> tuple[PowerStoreAdapter, FakeClusterApi]:
    api = FakeClusterApi(cluster, load_recorded(f"powerstore/{recording}"))
    return PowerStoreAdapter(api, TARGET), api


class Controller:
    """Plays Dell's replication controller on one RG, in the order upstream writes (spec reset before status)."""

    def __init__(self, api: FakeClusterApi) -> None:
        self.api = api

    def _edit(self, change: Callable[[JsonObject], None]) -> None:
        self.api.edit(RG, NAME, change)

    def start(self) -> None:
        def change(document: JsonObject) -> None:
            document["status"]["state"] = f"{document['spec']['action']}_IN_PROGRESS"
            document["status"]["lastAction"] = {}

        self._edit(change)

    def retry(self, error: str) -> None:
        def change(document: JsonObject) -> None:
            action = document["spec"]["action"]
            document["status"]["lastAction"] = {
                "condition": f"Action {action} failed with error {error}",
                "errorMessage": error,
                "firstFailure": "2025-03-14T09:30:07Z",
                "time": "2025-03-14T09:31:37Z",
            }

        self._edit(change)

    def reset_spec(self) -> None:
        self._edit(lambda document: document["spec"].update(action=""))

    def succeed(self, *, is_source: bool, link: str) -> None:
        def change(document: JsonObject) -> None:
            action = document["status"]["state"].removesuffix("_IN_PROGRESS")
            result = {"condition": f"Action {action} succeeded", "time": "2025-03-14T09:32:15Z"}
            document["status"].update(state="Ready", lastAction=result)
            document["status"]["conditions"].insert(0, result)
            document["status"]["replicationLinkState"].update(isSource=is_source, state=link)

        self._edit(change)


# ----------------------------------------------------------------------------------------------------- observe


def test_ready_source() -> None:
    adapter, _ = site("dc1", "dc1-source-ready.yaml")
    status = adapter.observe()
    assert (status.role, status.current, status.completed, status.healthy) == (Role.PRIMARY, True, True, True)
    assert status.replicating and not status.syncing and status.failure is None
    assert status.last_sync_time == datetime(2025, 3, 14, 9, 28, 41, tzinfo=UTC)
    assert status.message == "Ready; source; link SYNCHRONIZED; Action REPROTECT_LOCAL succeeded"
    assert status.generations == {f"{RG} {NAME}": 7}
    assert [(v.name, v.role, v.state) for v in status.volumes] == [(NAME, Role.PRIMARY, "Ready")]
    assert PowerStoreAdapter.promoted(status)


def test_ready_target_follows_the_source() -> None:
    adapter, _ = site("dc2", "dc2-target-ready.yaml")
    status = adapter.observe()
    assert (status.role, status.completed, status.replicating) == (Role.SECONDARY, True, True)
    assert PowerStoreAdapter.resync_complete(status)


def test_action_requested_but_not_started_is_stale() -> None:
    adapter, _ = site("dc1", "dc1-failover-remote-requested.yaml")
    status = adapter.observe()
    assert (status.current, status.completed, status.role, status.failure) == (False, False, Role.UNKNOWN, None)
    assert "FAILOVER_REMOTE requested; the controller has not started it (state Ready)" in status.message
    assert not PowerStoreAdapter.final_sync_complete(status)


def test_action_in_progress_keeps_the_last_known_role() -> None:
    adapter, _ = site("dc1", "dc1-failover-remote-in-progress.yaml")
    status = adapter.observe()
    assert (status.current, status.completed, status.role) == (True, False, Role.PRIMARY)
    assert status.failure is None and status.healthy
    assert status.message == "FAILOVER_REMOTE_IN_PROGRESS; source; link SYNCHRONIZED"
    assert not PowerStoreAdapter.final_sync_complete(status)


def test_retrying_action_is_a_failure_the_controller_retries() -> None:
    adapter, _ = site("dc1", "dc1-failover-remote-retrying.yaml")
    status = adapter.observe()
    assert status.current and not status.completed and not status.failure_permanent
    assert status.failure is not None
    assert status.failure.startswith(
        "FAILOVER_REMOTE failed, the controller retries (first failure 2025-03-14T09:30:07Z)"
    )
    assert "remote system PS-dc2-a01 not reachable" in status.failure


def test_failed_action_is_permanent() -> None:
    adapter, _ = site("dc1", "dc1-failover-remote-failed.yaml")
    status = adapter.observe()
    assert status.failure is not None and status.failure.startswith(
        "Action FAILOVER_REMOTE failed with error rpc error"
    )
    assert status.failure_permanent and not status.healthy and not status.completed and status.current
    assert status.role is Role.PRIMARY  # the failover did not happen


def test_succeeded_failover_remote_is_the_final_sync_but_not_yet_a_reprotection() -> None:
    adapter, _ = site("dc1", "dc1-failover-remote-succeeded.yaml")
    status = adapter.observe()
    # firstFailure stays set after a success (the controller clears only errorMessage): not a failure.
    assert (status.role, status.current, status.completed, status.failure) == (Role.SECONDARY, True, True, None)
    assert status.healthy and not status.replicating and status.last_sync_time is None  # link FAILEDOVER
    assert PowerStoreAdapter.final_sync_complete(status)
    assert not PowerStoreAdapter.resync_complete(status)


def test_unsupported_action_reset_without_running_is_permanent() -> None:
    adapter, _ = site("dc1", "dc1-unsupported-action-reset.yaml")
    status = adapter.observe()
    assert status.current and not status.completed and status.failure_permanent
    assert status.failure is not None and status.failure.startswith("FAILOVER_REMOTE was reset without running")


def test_result_being_recorded_is_not_current() -> None:
    adapter, api = site("dc1", "dc1-failover-remote-in-progress.yaml")
    Controller(api).reset_spec()  # upstream resets spec.action first, then writes the status
    status = adapter.observe()
    assert (status.current, status.completed, status.role) == (False, False, Role.UNKNOWN)
    assert "FAILOVER_REMOTE ended; waiting for the controller to record the result" in status.message


def test_unplanned_failover_without_the_peer_is_promoted_but_unhealthy() -> None:
    adapter, _ = site("dc2", "dc2-unplanned-failover-succeeded.yaml")
    status = adapter.observe()
    assert PowerStoreAdapter.promoted(status)
    assert not status.healthy and status.last_sync_time is None  # link UNKNOWN: no claim about the lag


def test_uninitialised_rg_and_missing_name() -> None:
    adapter, api = site("dc1", "dc1-source-ready.yaml")
    api.edit(RG, NAME, lambda document: document.pop("status"))
    status = adapter.observe()
    assert (status.current, status.role, status.healthy) == (False, Role.UNKNOWN, False)
    assert "not initialised" in status.message
    with pytest.raises(NotReadyError, match="not initialised"):
        adapter.demote()
    with pytest.raises(InvalidSpecError, match=r"target\.name"):
        PowerStoreAdapter(api, TARGET.model_copy(update={"name": None})).observe()


# ----------------------------------------------------------------------------------------------------- writes


def test_demote_requests_failover_remote_once_with_a_baseline() -> None:
    adapter, api = site("dc1", "dc1-source-ready.yaml")
    before = api.stored(RG, NAME)
    result = adapter.demote()
    assert result.changed and api.writes == 1 and result.generations == {f"{RG} {NAME}": 8}
    verb, ref, body = api.log[0]
    assert (verb, ref, body["spec"]) == ("PATCH", f"{RG} {NAME}", {"action": "FAILOVER_REMOTE"})
    assert body["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    annotations = body["metadata"]["annotations"]
    assert annotations[REQUESTED_ACTION_ANNOTATION] == "FAILOVER_REMOTE"
    assert annotations[ACTION_BASELINE_ANNOTATION] == action_history_digest(before)

    assert not adapter.demote().changed and api.writes == 1  # pending: the controller is on it
    controller = Controller(api)
    controller.start()
    assert not adapter.demote().changed
    controller.reset_spec()
    controller.succeed(is_source=False, link="FAILEDOVER")
    assert not adapter.demote().changed and api.writes == 1  # done: no longer the source
    assert PowerStoreAdapter.final_sync_complete(adapter.observe())


def test_completion_needs_an_outcome_recorded_after_the_request() -> None:
    adapter, api = site("dc1", "dc1-source-ready.yaml")
    adapter.demote()
    Controller(api).reset_spec()  # dropped as unsupported: Ready, history unchanged
    status = adapter.observe()
    assert not status.completed and status.failure_permanent
    clock = FakeClock()
    with pytest.raises(BackendFailedError, match="FAILOVER_REMOTE was reset without running"):
        wait_for_status(
            adapter, adapter.final_sync_complete, what="final sync", timeout=60, clock=clock, sleep=clock.sleep
        )


def test_no_action_while_another_runs() -> None:
    adapter, api = site("dc1", "dc1-source-ready.yaml")
    api.edit(RG, NAME, lambda document: document["spec"].update(action="SUSPEND"))
    with pytest.raises(ConflictError, match="SUSPEND is requested on this RG and Dell rejects a new action"):
        adapter.demote()
    Controller(api).start()
    Controller(api).reset_spec()  # SUSPEND_IN_PROGRESS, result not recorded yet
    with pytest.raises(NotReadyError, match="SUSPEND is ending"):
        adapter.promote(force=True)
    assert api.writes == 0


def test_forced_promotion_is_unplanned_failover_local_once() -> None:
    adapter, api = site("dc2", "dc2-target-ready.yaml")
    assert adapter.promote(force=True).changed
    assert api.log[0][2]["spec"] == {"action": "UNPLANNED_FAILOVER_LOCAL"}
    assert not adapter.promote(force=True).changed and api.writes == 1
    controller = Controller(api)
    controller.start()
    controller.reset_spec()
    controller.succeed(is_source=True, link="UNKNOWN")
    assert not adapter.promote(force=True).changed and api.writes == 1
    assert PowerStoreAdapter.promoted(adapter.observe())


def test_planned_promotion_is_failover_remote_on_the_source() -> None:
    target, target_api = site("dc2", "dc2-target-ready.yaml")
    source, source_api = site("dc1", "dc1-source-ready.yaml")
    result = target.promote(force=False, peer=source)
    assert result.changed and result.cluster == "dc1"
    assert target_api.writes == 0 and source_api.writes == 1
    assert source_api.log[0][2]["spec"] == {"action": "FAILOVER_REMOTE"}
    assert not target.promote(force=False, peer=source).changed and source_api.writes == 1

    after, after_api = site("dc2", "dc2-target-after-failover.yaml")
    assert not after.promote(force=False).changed and after_api.writes == 0  # already the source: no peer needed


def test_planned_promotion_needs_a_powerstore_peer() -> None:
    target, _ = site("dc2", "dc2-target-ready.yaml")
    with pytest.raises(PreconditionFailedError, match="needs the peer side's adapter"):
        target.promote(force=False)
    trident = TridentAdapter(FakeClusterApi("dc1"), ReplicationTarget(backend=Backend.TRIDENT, namespace="pg-prod"))
    with pytest.raises(PreconditionFailedError, match="needs a powerstore peer, got a trident adapter"):
        target.promote(force=False, peer=trident)


def test_reprotect_is_reprotect_local_on_the_new_primary_once() -> None:
    old_source, old_api = site("dc1", "dc1-failover-remote-succeeded.yaml")
    new_primary, new_api = site("dc2", "dc2-target-after-failover.yaml")
    result = old_source.reprotect(resync=False, peer=new_primary)
    assert result.changed and result.cluster == "dc2" and old_api.writes == 0 and new_api.writes == 1
    assert new_api.log[0][2]["spec"] == {"action": "REPROTECT_LOCAL"}
    assert not old_source.reprotect(resync=True, peer=new_primary).changed and new_api.writes == 1

    done, done_api = site("dc2", "dc2-reprotected.yaml")
    assert not old_source.reprotect(resync=False, peer=done).changed and done_api.writes == 0
    assert done.observe().completed


def test_reprotect_undoes_a_planned_failover_whose_target_never_ran() -> None:
    # Compensation after FAILOVER_REMOTE succeeded: the target follows the original source again, which
    # REPROTECT_LOCAL on the original source's RG makes the source again.
    target, target_api = site("dc2", "dc2-target-after-failover.yaml")
    original, original_api = site("dc1", "dc1-failover-remote-succeeded.yaml")
    result = target.reprotect(resync=False, peer=original)
    assert result.changed and result.cluster == "dc1" and target_api.writes == 0
    assert original_api.log[0][2]["spec"] == {"action": "REPROTECT_LOCAL"}
    controller = Controller(original_api)
    controller.start()
    controller.reset_spec()
    controller.succeed(is_source=True, link="SYNCHRONIZED")
    assert not original.promote(force=False, peer=target).changed  # the saga's "re-promote the source": done
    assert original_api.writes == 1


def test_old_source_is_resynced_once_its_link_is_synchronized() -> None:
    adapter, _ = site("dc1", "dc1-following-after-reprotect.yaml")
    status = adapter.observe()
    assert PowerStoreAdapter.resync_complete(status)
    assert status.last_sync_time == datetime(2025, 3, 14, 9, 45, 52, tzinfo=UTC)


# ----------------------------------------------------------------------------------------------------- waiting


def test_wait_for_the_final_sync_through_a_retry() -> None:
    adapter, api = site("dc1", "dc1-source-ready.yaml")
    adapter.demote()
    controller = Controller(api)
    seen: list[str | None] = []
    clock = FakeClock(
        controller.start,
        lambda: controller.retry("rpc error: code = Unavailable desc = remote system PS-dc2-a01 not reachable"),
        controller.reset_spec,
        lambda: controller.succeed(is_source=False, link="FAILEDOVER"),
    )
    status = wait_for_status(
        adapter,
        adapter.final_sync_complete,
        what="final sync",
        timeout=600,
        interval=15,
        progress=lambda s: seen.append(s.failure),
        clock=clock,
        sleep=clock.sleep,
    )
    assert status.role is Role.SECONDARY and clock.sleeps == 4
    assert seen[2] is not None and "retries" in seen[2]  # a retry is reported but does not end the wait


def test_wait_fails_fast_on_error_and_times_out_on_a_stuck_request() -> None:
    adapter, _ = site("dc1", "dc1-failover-remote-failed.yaml")
    clock = FakeClock()
    with pytest.raises(BackendFailedError, match="the backend gave up: Action FAILOVER_REMOTE failed with error"):
        wait_for_status(
            adapter, adapter.final_sync_complete, what="final sync", timeout=600, clock=clock, sleep=clock.sleep
        )

    adapter, _ = site("dc1", "dc1-failover-remote-requested.yaml")
    clock = FakeClock()
    with pytest.raises(BackendFailedError, match=r"not reached within 120s .*has not started it"):
        wait_for_status(
            adapter,
            adapter.final_sync_complete,
            what="final sync",
            timeout=120,
            interval=30,
            clock=clock,
            sleep=clock.sleep,
        )


def test_resource_is_the_cluster_scoped_lab_crd() -> None:
    assert (
        REPLICATION_GROUPS.path(name=NAME)
        == "/apis/replication.storage.dell.com/v1/dellcsireplicationgroups/rg-pg-prod"
    )


# ----------------------------------------------------------------------------------------------- missing_volumes

PVCS = ("data-postgres-0", "wal-postgres-0", "config-postgres-0")
PVC = "PersistentVolumeClaim"
GROUP_LABEL = "replication.storage.dell.com/replicationGroupName"


def site_with_pvcs(recording: str, **target: object) -> tuple[PowerStoreAdapter, FakeClusterApi]:
    """An RG and the group's labelled PVCs on dc1, observed with the configured PVC names."""
    api = FakeClusterApi("dc1", [*load_recorded(f"powerstore/{recording}"), *load_recorded("powerstore/dc1-pvcs.yaml")])
    return PowerStoreAdapter(api, TARGET.model_copy(update={"pvc_names": PVCS, **target})), api


def test_every_configured_pvc_labelled_for_the_rg_means_nothing_missing() -> None:
    adapter, _ = site_with_pvcs("dc1-source-ready.yaml")
    status = adapter.observe()
    assert status.missing_volumes == ()
    assert status.message == "Ready; source; link SYNCHRONIZED; Action REPROTECT_LOCAL succeeded"
    assert status.volume_problems(PVCS) == []


def test_an_unlabelled_pvc_whose_pv_is_labelled_for_the_rg_is_in_it() -> None:
    """Upstream labels only the PVCs whose PV it provisioned; on the peer only the PVs carry the RG's name."""
    adapter, api = site_with_pvcs("dc1-source-ready.yaml")
    for pvc, rg in zip(PVCS, (NAME, NAME, "rg-other"), strict=True):

        def bind_unlabelled(document: JsonObject, volume: str = f"pv-{pvc}") -> None:
            document["metadata"]["labels"].pop(GROUP_LABEL)
            document["spec"]["volumeName"] = volume

        api.edit(PVC, pvc, bind_unlabelled, "pg-prod")
        api.put({"kind": "PersistentVolume", "metadata": {"name": f"pv-{pvc}", "labels": {GROUP_LABEL: rg}}})
    status = adapter.observe()
    assert status.missing_volumes == (PVCS[2],)
    assert status.message.endswith(f"{PVCS[2]} (no {GROUP_LABEL} label on it or its PV)")


class ListingSpy(FakeClusterApi):
    """The fake, remembering the kinds it listed."""

    listed: list[str]

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JsonObject]:
        """List, remembering the kind."""
        self.listed.append(resource.kind)
        return super().list(resource, namespace, label_selector, field_selector)


def test_every_pvc_labelled_reads_no_persistent_volumes() -> None:
    recorded = [*load_recorded("powerstore/dc1-source-ready.yaml"), *load_recorded("powerstore/dc1-pvcs.yaml")]
    api = ListingSpy("dc1", recorded)
    api.listed = []
    PowerStoreAdapter(api, TARGET.model_copy(update={"pvc_names": PVCS})).observe()
    assert api.listed == ["PersistentVolumeClaim"]


def test_configured_pvcs_outside_the_rg_are_missing_with_the_reason() -> None:
    adapter, api = site_with_pvcs("dc1-source-ready.yaml", pvc_names=(*PVCS, "archive-postgres-0"))
    api.edit(PVC, "wal-postgres-0", lambda d: d["metadata"]["labels"].pop(GROUP_LABEL), "pg-prod")
    api.edit(PVC, "config-postgres-0", lambda d: d["metadata"]["labels"].update({GROUP_LABEL: "rg-other"}), "pg-prod")
    status = adapter.observe()
    assert status.missing_volumes == ("wal-postgres-0", "config-postgres-0", "archive-postgres-0")
    assert status.message.endswith(
        f"; not in the RG, so not replicated: wal-postgres-0 (no {GROUP_LABEL} label on it or its PV), "
        f"config-postgres-0 (labelled {GROUP_LABEL}=rg-other), archive-postgres-0 (no such PVC on this cluster)"
    )
    # The one volume entry stands for the RG: a PVC is missing only when the adapter says so.
    assert status.volume_problems(["data-postgres-0", "wal-postgres-0"]) == [
        f"PVC wal-postgres-0 is not replicated by {RG} {NAME}",
        f"PVC config-postgres-0 is not replicated by {RG} {NAME}",
        f"PVC archive-postgres-0 is not replicated by {RG} {NAME}",
    ]
    # The group's health is unchanged: the RG itself is fine.
    assert status.healthy and PowerStoreAdapter.promoted(status)


def test_without_pvc_names_no_pvc_is_read() -> None:
    adapter, api = site("dc1", "dc1-source-ready.yaml")

    def no_list(*args: object, **kwargs: object) -> list[JsonObject]:
        raise AssertionError("observe() listed objects without configured PVC names")

    api.list = no_list  # type: ignore[method-assign]
    status = adapter.observe()
    assert status.missing_volumes == ()
    assert status.volume_problems(PVCS) == []


def test_an_rg_in_error_is_a_problem_of_the_whole_group() -> None:
    adapter, _ = site_with_pvcs("dc1-failover-remote-failed.yaml")
    status = adapter.observe()
    assert status.missing_volumes == () and not status.volumes[0].healthy
    assert status.volume_problems(PVCS) == [f"{RG} {NAME} (every PVC of the group): Error (link SYNCHRONIZED)"]
