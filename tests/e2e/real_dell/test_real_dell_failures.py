"""End to end through the real CLI: a Dell action that fails on the array, against upstream csm-replication v1.14.0.

The faults are injected at the driver socket the replicator calls, so the replicator itself records the outcome:

- ``fail-demote`` for good on dc1: FAILOVER_REMOTE is answered Unknown, the replicator marks dc1's RG ``Error``
  (and keeps it so until another action succeeds: upstream accepts new actions from ``Error``). The final-sync wait
  gives up at once; the compensation re-promotes dc1 by acknowledging that Error (dc1 still the source, dc2's RG
  the target, the array polled since) and restarts the application there: exit 4, nothing lost. Once the fault is
  gone, a planned failover and failback run from that RG as from a ``Ready`` one.
- ``fail-demote`` twice on dc1: the replicator retries FAILOVER_REMOTE (the RG stays in progress with the error
  message) and the third attempt succeeds: the adapter reads a retry as a retry, and the failover succeeds.
- ``abort`` while FAILOVER_REMOTE waits for a stalled final sync: the action is the array's and the replicator keeps
  retrying it, so the re-promote of dc1 is refused while it runs and the compensation stops (exit 5, the Primary
  left "on either side"). A ``resume`` meanwhile is refused (dc1 still says isSource, but its action has not
  ended: starting the application there would write to a side being demoted). Once the sync is released the array
  finishes the failover, and ``resume`` starts the application on dc2, the one Primary, and reprotects dc1.
- the worker SIGKILLed during the final-sync wait (``tests/e2e/test_worker_crash.py``, imported): the new worker's
  wait finds FAILOVER_REMOTE done and the failover finishes, every write step once.

The invariant sampler runs throughout each.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.configs import (
    app_pods,
    config_variant,
    failover_in_background,
    lost_per_volume,
    slow_shipments,
    wait_for_status,
)
from tests.e2e.conftest import FullLab, lost_writes
from tests.e2e.real_dell.test_real_dell import GROUP, RGS
from tests.e2e.real_scenarios import planned_failover_and_failback
from tests.e2e.test_compensation import assert_compensated
from tests.e2e.test_worker_crash import test_worker_killed_during_final_sync_wait

__all__ = ["test_worker_killed_during_final_sync_wait"]

ACKNOWLEDGED = "failover-orchestrator.io/acknowledged-failure"


def _rg(full_lab: FullLab, cluster: str) -> dict[str, Any]:
    name = full_lab.config.group(GROUP).replication_target(cluster).name
    document: dict[str, Any] = full_lab.lab.cluster(cluster).request("GET", f"{RGS}/{name}").json()
    return document


def test_a_failover_remote_failing_on_the_array_is_compensated_and_the_next_one_succeeds(
    full_lab: FullLab, home: None, sampler_for: Any
) -> None:
    lost_before = lost_per_volume(full_lab, GROUP)
    full_lab.simulator.add_fault(GROUP, "fail-demote", cluster="dc1", permanent=True)
    try:
        with sampler_for(GROUP):
            result = full_lab.cli("failover", "--group", GROUP, "--yes", "--json")
            assert_compensated(
                full_lab,
                result,
                lost_before,
                failed_step=("wait for final sync", "dc1"),
                causes=["Action FAILOVER_REMOTE failed with error", "injected fail-demote fault on dc1"],
                undone=["re-promote dc1", "restart workloads on dc1"],
                group=GROUP,
            )
    finally:
        full_lab.simulator.remove_faults(GROUP, kind="fail-demote")
    rg = _rg(full_lab, "dc1")
    assert rg["status"]["state"] == "Error" and rg["spec"]["action"] == "", rg["status"]
    assert rg["status"]["replicationLinkState"]["isSource"] is True, rg["status"]
    assert rg["metadata"]["annotations"].get(ACKNOWLEDGED), "the compensation acknowledged the replicator's Error"
    assert "remoteState" not in _rg(full_lab, "dc2")["status"]
    status = full_lab.cli("status", "--group", GROUP, "--json").json()[0]
    dc1 = next(side for side in status["sides"] if side["cluster"] == "dc1")
    assert status["protected"] and "acknowledged" in dc1["status"]["message"], dc1["status"]["message"]
    planned_failover_and_failback(full_lab, GROUP, sampler_for)


def test_a_failover_remote_the_replicator_retries_succeeds(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    lost_before = lost_writes(full_lab, GROUP)
    full_lab.simulator.add_fault(GROUP, "fail-demote", cluster="dc1", times=2)
    try:
        with sampler_for(GROUP):
            moved = full_lab.cli("failover", "--group", GROUP, "--yes", "--json")
            assert moved.code == 0, moved.stdout + moved.stderr
            assert [f.fired for f in full_lab.simulator.faults() if f.group == GROUP] == [2]
            history = [entry["condition"] for entry in _rg(full_lab, "dc1")["status"]["conditions"]]
            assert "Action FAILOVER_REMOTE succeeded" in history, history
            back = full_lab.cli("failback", "--group", GROUP, "--yes", "--json")
            assert back.code == 0, back.stdout + back.stderr
    finally:
        full_lab.simulator.remove_faults(GROUP, kind="fail-demote")
    assert lost_writes(full_lab, GROUP) == lost_before
    status = full_lab.cli("status", "--group", GROUP, "--json").json()[0]
    assert status["primary"] == "dc1" and status["protected"], status["summary"]


def test_an_abort_during_failover_remote_is_finished_by_resume_where_the_array_put_the_primary(
    full_lab: FullLab, home: None, sampler_for: Any
) -> None:
    lost_before = lost_per_volume(full_lab, GROUP)
    full_lab.simulator.add_fault(GROUP, "stall-final-sync")
    with config_variant(full_lab, GROUP, promote="5s") as config, sampler_for(GROUP):
        with (
            slow_shipments(full_lab),
            failover_in_background(
                full_lab,
                GROUP,
                "--config",
                str(config),
                waiting_for="the failover waiting for the (stalled) FAILOVER_REMOTE",
            ) as failover,
        ):
            aborted = full_lab.cli("abort", "--group", GROUP, "--by", "e2e-operator", "--json")
            assert aborted.code == 0, aborted.stdout + aborted.stderr
            result = failover.result(timeout=180)
            assert result.code == 5, result.stdout + result.stderr
            document = result.json()
            message = document["message"]
            assert message.startswith("aborted by e2e-operator; compensation stopped at re-promote dc1"), message
            assert "FAILOVER_REMOTE is requested on this RG" in message, message
            assert document["progress"]["leaves_primary_on"] is None
            assert app_pods(full_lab, GROUP) == {"dc1": [], "dc2": []}

            early = full_lab.cli("resume", "--group", GROUP, "--yes", "--json", "--config", str(config))
            assert early.code == 3, early.stdout + early.stderr
            assert "dc1 reports Primary but the storage has not completed its last request" in early.json()["message"]
            assert app_pods(full_lab, GROUP) == {"dc1": [], "dc2": []}

        assert full_lab.simulator.remove_faults(GROUP, kind="stall-final-sync") == 1
        failed_over = wait_for_status(
            full_lab, GROUP, lambda v: v["primary"] == "dc2", "the array finishing FAILOVER_REMOTE", timeout=120
        )
        # The link is FAILEDOVER until someone reprotects: one Primary and one Secondary, yet nothing replicates.
        assert not failed_over["protected"], failed_over["summary"]
        assert "replication stopped, nothing has reprotected the group yet" in failed_over["summary"]
        resumed = full_lab.cli("resume", "--group", GROUP, "--yes", "--json", "--config", str(config))
        assert resumed.code == 0, resumed.stdout + resumed.stderr
        assert resumed.json()["progress"]["target"] == "dc2"
        view = wait_for_status(full_lab, GROUP, lambda v: v["protected"], "protected on dc2", timeout=120)
    assert view["primary"] == "dc2"
    pods = app_pods(full_lab, GROUP)
    assert pods["dc2"] and pods["dc1"] == [], pods
    assert lost_per_volume(full_lab, GROUP) == lost_before
    assert all(v.writable == ["dc2"] for v in full_lab.simulator.ledger(GROUP).volumes)
