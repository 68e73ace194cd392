"""Unit tier: the PowerStore adapter on RGs recorded from the real Dell csm-replication v1.14.0 controllers.

The documents (tests/unit/recorded/powerstore/real-v1.14.0-planned-failover-reprotect.json) were recorded in the
lab (`sandbox up --real-dell`) with `kubectl get rg -w -o json` on both clusters while the CLI ran a planned
failover of pg-powerstore from dc1 to dc2: FAILOVER_REMOTE on dc1's RG, then the reprotect, REPROTECT_LOCAL on
dc2's RG. They show two things the simulator used to get wrong:

- ``status.remoteState`` is never written: while REPROTECT_LOCAL ran on dc2, dc1's RG was a settled ``Ready``
  target that said nothing of it. Only dc2's own RG reports the action, so the resync wait follows it first
  (:func:`adapters.waiting.wait_for_resync`).
- ``replicationLinkState.lastSuccessfulUpdate`` is the replicator's poll time: it advanced every five seconds (the
  lab's ``--monitoring-interval``), also while the link was FAILEDOVER and no data moved. The lag taken from it
  says so (``last_sync_source``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from adapters.base import Backend, ReplicationTarget, Role
from adapters.csi_addons import CsiAddonsAdapter
from adapters.powerstore import POLL_SOURCE, PowerStoreAdapter
from adapters.waiting import wait_for_resync
from clusters.api import JsonObject
from clusters.errors import BackendFailedError, NotReadyError, PreconditionFailedError
from tests.unit.fake_cluster import RECORDED, FakeClock, FakeClusterApi

RECORDING = RECORDED / "powerstore" / "real-v1.14.0-planned-failover-reprotect.json"
RG = "DellCSIReplicationGroup"


def recorded(moment: str) -> JsonObject:
    """One recorded RG (a fresh copy)."""
    documents: dict[str, JsonObject] = json.loads(RECORDING.read_text())
    return copy.deepcopy(documents[moment])


def site(cluster: str, moment: str) -> tuple[PowerStoreAdapter, FakeClusterApi]:
    document = recorded(moment)
    api = FakeClusterApi(cluster, [document])
    target = ReplicationTarget(backend=Backend.POWERSTORE, namespace="pg-powerstore", name=document["metadata"]["name"])
    return PowerStoreAdapter(api, target), api


def test_the_real_controllers_never_write_remote_state() -> None:
    documents: dict[str, object] = json.loads(RECORDING.read_text())
    rgs = [document for key, document in documents.items() if not key.startswith("_")]
    assert len(rgs) == 5
    assert all(isinstance(rg, dict) and "remoteState" not in rg["status"] for rg in rgs)


def test_the_old_source_says_nothing_of_the_reprotect_running_on_the_peer() -> None:
    dc1, _ = site("dc1", "dc1_target_during_peer_reprotect")
    dc2, _ = site("dc2", "dc2_reprotect_in_progress")
    here, peer = dc1.observe(), dc2.observe()
    assert here.current and here.completed and here.role is Role.SECONDARY and here.failure is None
    assert "REPROTECT" not in here.message, "dc1's RG cannot know of dc2's action"
    assert not PowerStoreAdapter.resync_complete(here), "the link is FAILEDOVER: nothing resynced yet"
    assert peer.current and not PowerStoreAdapter.peer_reprotect_complete(peer)
    assert peer.role is Role.PRIMARY


def test_the_reprotect_has_ended_when_the_peers_rg_records_it() -> None:
    dc2, _ = site("dc2", "dc2_reprotect_succeeded")
    dc1, _ = site("dc1", "dc1_target_resynced")
    assert PowerStoreAdapter.peer_reprotect_complete(dc2.observe())
    assert PowerStoreAdapter.resync_complete(dc1.observe())


def test_the_last_sync_is_the_replicators_poll_and_says_so() -> None:
    idle, _ = site("dc1", "dc1_source_idle")
    status = idle.observe()
    assert status.last_sync_time == datetime(2026, 12, 3, 11, 51, 41, tzinfo=UTC)
    assert status.last_sync_source == POLL_SOURCE and "not a data time" in POLL_SOURCE
    failed_over, _ = site("dc1", "dc1_target_during_peer_reprotect")
    polled = failed_over.observe()
    assert polled.last_sync_time is None and polled.last_sync_source == "", (
        "a FAILEDOVER link's poll time (upstream still stamps it) is no sync at all"
    )


def _peer_steps(api: FakeClusterApi, name: str, *changes: Callable[[JsonObject], None]) -> list[Callable[[], None]]:
    return [lambda change=change: api.edit(RG, name, change) for change in changes]  # type: ignore[misc]


def _retrying(document: JsonObject) -> None:
    document["status"]["lastAction"] = {
        "condition": "Action REPROTECT_LOCAL failed with error remote system unreachable",
        "errorMessage": "remote system unreachable",
        "firstFailure": "2026-12-03T11:51:48Z",
        "time": "2026-12-03T11:51:53Z",
    }


def _failed(document: JsonObject) -> None:
    document["spec"]["action"] = ""
    document["status"]["state"] = "Error"
    document["status"]["lastAction"]["condition"] = "Action REPROTECT_LOCAL failed with error remote system unreachable"


def _succeeded(document: JsonObject) -> None:
    succeeded = recorded("dc2_reprotect_succeeded")
    document["spec"], document["status"] = succeeded["spec"], succeeded["status"]


@pytest.mark.parametrize(
    ("cluster", "moment", "stopped"),
    [
        ("dc1", "dc1_source_idle", False),
        ("dc1", "dc1_target_during_peer_reprotect", True),
        ("dc2", "dc2_reprotect_in_progress", True),
        ("dc2", "dc2_reprotect_succeeded", False),
        ("dc1", "dc1_target_resynced", False),
    ],
)
def test_a_failedover_link_is_replication_stopped_on_either_side(cluster: str, moment: str, stopped: bool) -> None:
    # Between FAILOVER_REMOTE and the reprotect both RGs say FAILEDOVER: one Primary and one Secondary, each
    # healthy, yet no data flows, so `status` must not call the group protected.
    status = site(cluster, moment)[0].observe()
    assert status.replication_stopped is stopped, status.message
    assert status.healthy


def test_resync_wait_follows_the_peers_rg_and_fails_with_its_error() -> None:
    dc1, _ = site("dc1", "dc1_target_during_peer_reprotect")
    dc2, peer_api = site("dc2", "dc2_reprotect_in_progress")
    clock = FakeClock(*_peer_steps(peer_api, dc2.target.name or "", _retrying, _failed))
    seen: list[str] = []
    with pytest.raises(BackendFailedError, match="the reprotect action on dc2: the backend gave up: Action REPROTECT"):
        wait_for_resync(
            dc1, dc2, timeout=600, interval=5, progress=lambda s: seen.append(s.message), clock=clock, sleep=clock.sleep
        )
    assert any("the controller retries" in message for message in seen), seen


def test_resync_wait_times_out_naming_the_retried_peer_action() -> None:
    dc1, _ = site("dc1", "dc1_target_during_peer_reprotect")
    dc2, peer_api = site("dc2", "dc2_reprotect_in_progress")
    clock = FakeClock(*_peer_steps(peer_api, dc2.target.name or "", _retrying))
    with pytest.raises(
        BackendFailedError, match=r"reprotect action on dc2: not reached within 60s.*controller retries"
    ):
        wait_for_resync(dc1, dc2, timeout=60, interval=5, clock=clock, sleep=clock.sleep)


def test_resync_wait_then_follows_this_side_until_its_link_is_synchronized() -> None:
    dc1, own_api = site("dc1", "dc1_target_during_peer_reprotect")
    dc2, peer_api = site("dc2", "dc2_reprotect_in_progress")
    resynced = recorded("dc1_target_resynced")

    def synchronized(document: JsonObject) -> None:
        document["status"] = resynced["status"]

    clock = FakeClock(
        *_peer_steps(peer_api, dc2.target.name or "", _succeeded),
        lambda: own_api.edit(RG, dc1.target.name or "", synchronized),
    )
    status = wait_for_resync(dc1, dc2, timeout=600, interval=5, clock=clock, sleep=clock.sleep)
    assert status.cluster == "dc1" and PowerStoreAdapter.resync_complete(status) and clock.sleeps == 2


def test_a_backend_whose_reprotect_acts_here_never_reads_the_peer() -> None:
    class ActsHere(PowerStoreAdapter):
        reprotect_acts_on_peer = False

    resynced = recorded("dc1_target_resynced")
    here = ActsHere(FakeClusterApi("dc1", [resynced]), site("dc1", "dc1_target_resynced")[0].target)
    absent = PowerStoreAdapter(FakeClusterApi("dc2"), here.target)  # any read of it would raise NotFound
    clock = FakeClock()
    status = wait_for_resync(here, absent, timeout=60, clock=clock, sleep=clock.sleep)
    assert status.cluster == "dc1" and clock.sleeps == 0
    assert PowerStoreAdapter.reprotect_acts_on_peer and not CsiAddonsAdapter.reprotect_acts_on_peer


# ------------------------------------------------------------------------------- a failed FAILOVER_REMOTE undone

FAILED = RECORDED / "powerstore" / "real-v1.14.0-failover-remote-failed.json"


def failed_pair() -> tuple[PowerStoreAdapter, FakeClusterApi, PowerStoreAdapter, FakeClusterApi]:
    """dc1's RG in Error after its FAILOVER_REMOTE failed on the array, and dc2's, still the target."""
    documents: dict[str, JsonObject] = json.loads(FAILED.read_text())
    pair: list[tuple[PowerStoreAdapter, FakeClusterApi]] = []
    for cluster, key in (("dc1", "dc1_failover_remote_failed"), ("dc2", "dc2_target")):
        document = documents[key]
        api = FakeClusterApi(cluster, [document])
        name = document["metadata"]["name"]
        pair.append(
            (PowerStoreAdapter(api, ReplicationTarget(backend=Backend.POWERSTORE, namespace="ns", name=name)), api)
        )
    (dc1, dc1_api), (dc2, dc2_api) = pair
    return dc1, dc1_api, dc2, dc2_api


def test_a_failed_action_leaves_the_rg_in_error_as_a_permanent_failure() -> None:
    dc1, _, _, _ = failed_pair()
    status = dc1.observe()
    assert status.failure_permanent and status.failure and "FAILOVER_REMOTE failed" in status.failure
    assert status.role is Role.PRIMARY and not status.healthy and not PowerStoreAdapter.promoted(status)


def test_undoing_the_failed_demote_acknowledges_the_error_once_the_peer_is_the_target() -> None:
    dc1, dc1_api, dc2, _ = failed_pair()
    result = dc1.promote(force=False, peer=dc2)
    assert result.changed and dc1_api.writes == 1
    status = dc1.observe()
    assert PowerStoreAdapter.promoted(status) and status.healthy and status.failure is None, status
    assert "acknowledged" in status.message and "FAILOVER_REMOTE failed" in status.message
    assert not dc1.promote(force=False, peer=dc2).changed and dc1_api.writes == 1, "acknowledged once"


def test_an_acknowledgement_waits_for_a_poll_after_the_failure_and_ends_with_the_next_outcome() -> None:
    dc1, dc1_api, dc2, _ = failed_pair()
    name = dc1.target.name or ""
    polled = dc1_api.stored(RG, name)["status"]["replicationLinkState"]["lastSuccessfulUpdate"]

    def poll_at(moment: str) -> Callable[[JsonObject], None]:
        return lambda document: document["status"]["replicationLinkState"].update(lastSuccessfulUpdate=moment)

    dc1_api.edit(RG, name, poll_at(dc1_api.stored(RG, name)["status"]["lastAction"]["time"]))
    with pytest.raises(NotReadyError, match="has not polled the array since it failed"):
        dc1.promote(force=False, peer=dc2)
    assert dc1_api.writes == 0 and dc1.observe().failure_permanent
    dc1_api.edit(RG, name, poll_at(polled))
    assert dc1.promote(force=False, peer=dc2).changed and PowerStoreAdapter.promoted(dc1.observe())

    def failed_again(document: JsonObject) -> None:
        document["status"]["lastAction"] = dict(document["status"]["lastAction"], time="2026-12-03T12:00:00Z")
        document["status"]["replicationLinkState"]["lastSuccessfulUpdate"] = "2026-12-03T12:00:05Z"

    dc1_api.edit(RG, name, failed_again)
    assert dc1.observe().failure_permanent, "a later outcome voids the acknowledgement"


@pytest.mark.parametrize(
    ("peer_view", "why"),
    [
        (
            {"replicationLinkState": {"lastSuccessfulUpdate": "2026-12-03T11:54:00Z"}},
            "its replicator has not polled the array since",
        ),
        ({"replicationLinkState": {"state": "UNKNOWN"}}, "its link is UNKNOWN"),
        ({"state": "UNPLANNED_FAILOVER_LOCAL_IN_PROGRESS"}, "UNPLANNED_FAILOVER_LOCAL is pending there"),
    ],
)
def test_no_acknowledgement_on_a_stale_view_of_the_peer(peer_view: JsonObject, why: str) -> None:
    """The peer's isSource is only as fresh as its replicator's last poll, which stops while an action runs."""
    dc1, dc1_api, dc2, dc2_api = failed_pair()

    def change(document: JsonObject) -> None:
        for key, value in peer_view.items():
            if isinstance(value, dict):
                document["status"][key].update(value)
            else:
                document["status"][key] = value

    dc2_api.edit(RG, dc2.target.name or "", change)
    with pytest.raises(NotReadyError, match=f"cannot confirm it is the target yet \\({why}"):
        dc1.promote(force=False, peer=dc2)
    assert dc1_api.writes == 0


def test_no_acknowledgement_while_the_peer_does_not_report_itself_the_target() -> None:
    dc1, dc1_api, dc2, dc2_api = failed_pair()

    def source_too(document: JsonObject) -> None:
        document["status"]["replicationLinkState"]["isSource"] = True

    dc2_api.edit(RG, dc2.target.name or "", source_too)
    with pytest.raises(PreconditionFailedError, match="is the source too: which side holds the data"):
        dc1.promote(force=False, peer=dc2)
    assert dc1_api.writes == 0 and dc1.observe().failure_permanent


def test_a_reprotect_finding_the_error_source_replicating_acknowledges_it_and_the_resync_wait_ends() -> None:
    dc1, dc1_api, dc2, _ = failed_pair()
    result = dc2.reprotect(resync=False, peer=dc1)
    assert result.changed and result.cluster == "dc1" and dc1_api.writes == 1, "only the acknowledgement"
    assert dc1_api.stored(RG, dc1.target.name or "")["spec"]["action"] == "", "no action requested"
    clock = FakeClock()
    status = wait_for_resync(dc2, dc1, timeout=60, clock=clock, sleep=clock.sleep)
    assert status.cluster == "dc2" and PowerStoreAdapter.resync_complete(status) and clock.sleeps == 0


def test_an_acknowledged_source_the_peer_later_makes_the_target_is_a_settled_follower() -> None:
    """A fence's REPROTECT_LOCAL on the new source makes the acknowledged side the target; upstream keeps its Error."""
    dc1, dc1_api, dc2, _ = failed_pair()
    name = dc1.target.name or ""
    dc1.promote(force=False, peer=dc2)

    def made_target(document: JsonObject) -> None:
        status = document["status"]
        change = {
            "condition": "Replication Link State:IsSource changed from (true) to (false)",
            "time": "2026-12-03T12:10:00Z",
        }
        status["conditions"].insert(0, change)
        status["replicationLinkState"].update(isSource=False, lastSuccessfulUpdate="2026-12-03T12:10:05Z")

    dc1_api.edit(RG, name, made_target)
    status = dc1.observe()
    assert status.role is Role.SECONDARY and PowerStoreAdapter.resync_complete(status), status
    assert "since made this side the target" in status.message

    def never_moved(document: JsonObject) -> None:
        document["status"]["conditions"].pop(0)

    dc1_api.edit(RG, name, never_moved)
    assert dc1.observe().failure_permanent, "a target with no recorded role change keeps its Error"
