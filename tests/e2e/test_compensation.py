"""End to end through the real CLI: a planned failover that fails before the promotion is compensated.

Three injected storage faults, each with a short step timeout from a variant of the lab's configuration (the
worker re-reads its file, so the variant decides the timeout: each step fails after 5 s although the lab's own
file allows minutes):

- ``fail-demote`` on dc1 (forever): dc1 never becomes Secondary, the final-sync wait gives up;
- ``stall-final-sync``: dc1 is demoted but its final sync never finishes (shipments are slowed for the run so that
  dc1 holds unshipped writes when it is demoted: otherwise there is no final sync to stall);
- ``fail-promote`` on dc2 (forever): dc2 never reports Primary, the promotion wait gives up.

And on pg-trident, ``stall-final-sync`` holds the mirror updates that carry the sync point's snapshots to dc2: the
transfer gives up after 5 s and the failover is compensated without ever sending the promotion (which Trident
would fail for good).

Each time the CLI exits 4 with the operation in phase FailedCompensated and a message naming the failed step and
its cause and listing what was undone; afterwards dc1 is Primary again with the application running there, no
acknowledged write was lost, and ``status --json`` explains the outcome.

And ``orchestrate abort`` during the final-sync wait (stalled, with the lab's long final-sync timeout): the failover
started in the background exits 4 with phase Aborted, compensated the same way. And an undo that fails: with
``fail-demote`` on dc1 (on Trident, which has no demote, a stalled snapshot transfer) and dc1's scheduler stopped,
the restart of dc1's workloads cannot succeed: the CLI exits 5 (needs attention, "compensation stopped at restart
workloads on dc1", the operation leaves the Primary on dc1); once the scheduler is back, ``orchestrate resume``
starts the application on dc1 (not on dc2, where the operation was going) and the group is protected again with
nothing lost. The invariant sampler runs throughout every scenario.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.base import Backend
from tests.e2e.configs import (
    app_pods,
    config_variant,
    desired_replicas,
    failover_in_background,
    fault_before_promotion,
    lost_per_volume,
    slow_shipments,
    stalled_sync_step,
    wait_for_status,
)
from tests.e2e.conftest import CliResult, FullLab

SHORT = "5s"
STEP_DEADLINE = 20.0
"""Seconds a step with a 5 s timeout may take in the lab (a worker using the lab's own minutes would exceed it)."""


def _failover(full_lab: FullLab, config: Path, group: str) -> CliResult:
    return full_lab.cli("failover", "--group", group, "--yes", "--json", "--config", str(config))


def assert_compensated(
    full_lab: FullLab,
    result: CliResult,
    lost_before: dict[str, int],
    *,
    failed_step: tuple[str, str],
    causes: list[str],
    undone: list[str],
    group: str,
) -> None:
    """The CLI's answer, ``status``, the ledger and the pods after a failover that failed and was compensated."""
    assert result.code == 4, result.stdout + result.stderr
    document = result.json()
    step, cluster = failed_step
    message = document["message"]
    assert message.startswith(f"step '{step}' on {cluster} failed: "), message
    for cause in causes:
        assert cause in message, (cause, message)
    (failed,) = [s for s in document["progress"]["steps"] if s["outcome"] == "failed"]
    assert (failed["name"], failed["cluster"]) == failed_step
    took = (datetime.fromisoformat(failed["ended"]) - datetime.fromisoformat(failed["started"])).total_seconds()
    assert took < STEP_DEADLINE, f"{step} took {took:.1f}s: the variant's 5 s timeout was not used"
    assert_undone(full_lab, result, lost_before, phase="FailedCompensated", undone=undone, group=group)


def assert_undone(
    full_lab: FullLab,
    result: CliResult,
    lost_before: dict[str, int],
    *,
    phase: str,
    undone: list[str],
    group: str,
) -> None:
    """Exit 4, the phase, what was undone; then ``status``, the pods and the ledger: dc1 as before, nothing lost."""
    assert result.code == 4, result.stdout + result.stderr
    document = result.json()
    assert document["exit_code"] == 4
    assert document["outcome"] == "failed-compensated"
    progress = document["progress"]
    assert progress["phase"] == phase
    message = document["message"]
    assert message.endswith(f"; undone: {', '.join(undone)}"), message
    assert list(progress["compensated"]) == undone
    undo_steps = [s for s in progress["steps"] if s["name"] in ("re-promote", "restart workloads")]
    assert [s["outcome"] for s in undo_steps] == ["done", "done"], undo_steps

    view = wait_for_status(
        full_lab, group, lambda v: v["primary"] == "dc1" and v["protected"], "dc1 Primary and protected again"
    )
    assert view["operation"]["status"] == "COMPLETED"
    assert view["operation"]["outcome"] == "failed-compensated"
    assert view["operation"]["phase"] == phase
    assert view["operation"]["message"] == message
    assert {side["cluster"]: side["status"]["role"] for side in view["sides"]} == {
        "dc1": "Primary",
        "dc2": "Secondary",
    }

    pods = app_pods(full_lab, group)
    assert pods["dc1"] and pods["dc2"] == [], pods
    apps = [w.name for w in full_lab.config.group(group).workloads]
    assert desired_replicas(full_lab, group) == {"dc1": dict.fromkeys(apps, 1), "dc2": dict.fromkeys(apps, 0)}
    assert lost_per_volume(full_lab, group) == lost_before
    assert all(v.writable == ["dc1"] for v in full_lab.simulator.ledger(group).volumes)


def _stalled_final_sync_status(full_lab: FullLab) -> str:
    """How the adapter describes dc1 while its final sync is held back, by who writes the VGR status.

    The upstream csi-addons VR controller reports Degraded=True, Resyncing=False until its sync pass; the
    simulator's own controller reports Resyncing=True.
    """
    if full_lab.lab.csi_addons is not None:
        return "Secondary, demoted, waiting for the sync pass (Degraded=True/VolumeDegraded"
    return "Secondary, final sync running"


def test_demote_failing_forever_is_compensated(
    full_lab: FullLab, home: None, scenario_group: str, sampler_for: Any, tmp_path: Path
) -> None:
    with config_variant(full_lab, scenario_group, final_sync=SHORT, demote=SHORT) as config:
        lost_before = lost_per_volume(full_lab, scenario_group)
        full_lab.simulator.add_fault(scenario_group, "fail-demote", cluster="dc1")
        with sampler_for(scenario_group):
            result = _failover(full_lab, config, scenario_group)
            assert_compensated(
                full_lab,
                result,
                lost_before,
                failed_step=("wait for final sync", "dc1"),
                causes=["final sync complete: not reached within 5s", "FailedToDemote"],
                undone=["re-promote dc1", "restart workloads on dc1"],
                group=scenario_group,
            )


def test_stalled_final_sync_is_compensated(
    full_lab: FullLab, home: None, scenario_group: str, sampler_for: Any, tmp_path: Path
) -> None:
    with config_variant(full_lab, scenario_group, final_sync=SHORT) as config:
        lost_before = lost_per_volume(full_lab, scenario_group)
        full_lab.simulator.add_fault(scenario_group, "stall-final-sync")
        with sampler_for(scenario_group):
            with slow_shipments(full_lab):
                result = _failover(full_lab, config, scenario_group)
            assert_compensated(
                full_lab,
                result,
                lost_before,
                failed_step=("wait for final sync", "dc1"),
                causes=["final sync complete: not reached within 5s", _stalled_final_sync_status(full_lab)],
                undone=["re-promote dc1", "restart workloads on dc1"],
                group=scenario_group,
            )


def test_stalled_trident_snapshot_transfer_is_compensated_without_a_promotion(
    full_lab: FullLab, home: None, sampler_for: Any, tmp_path: Path
) -> None:
    # Trident fails a promotion whose snapshot has not arrived and never retries it: a transfer that does not
    # finish within the final-sync timeout must end the failover before the promotion is ever sent.
    group = "pg-trident"
    with config_variant(full_lab, group, final_sync=SHORT) as config:
        lost_before = lost_per_volume(full_lab, group)
        full_lab.simulator.add_fault(group, "stall-final-sync")
        with sampler_for(group):
            result = _failover(full_lab, config, group)
            assert_compensated(
                full_lab,
                result,
                lost_before,
                failed_step=("transfer sync point", "dc2"),
                causes=["have not reached this side within", "In progress"],
                undone=["re-promote dc1", "restart workloads on dc1"],
                group=group,
            )
    assert not any(s["name"] == "promote" for s in result.json()["progress"]["steps"])


def test_promotion_failing_forever_is_compensated(
    full_lab: FullLab, home: None, scenario_group: str, sampler_for: Any, tmp_path: Path
) -> None:
    with config_variant(full_lab, scenario_group, promote=SHORT) as config:
        lost_before = lost_per_volume(full_lab, scenario_group)
        full_lab.simulator.add_fault(scenario_group, "fail-promote", cluster="dc2")
        # csi-addons retries a failed promotion until the step times out; Trident fails the TMR for good at once.
        if full_lab.config.group(scenario_group).backend is Backend.TRIDENT:
            causes = ["promoted: the backend gave up", "Could not promote mirror: injected fault"]
        else:
            causes = ["promoted: not reached within 5s", "FailedToPromote"]
        with sampler_for(scenario_group):
            result = _failover(full_lab, config, scenario_group)
            assert_compensated(
                full_lab,
                result,
                lost_before,
                failed_step=("wait for promotion", "dc2"),
                causes=causes,
                undone=["return dc2 to Secondary", "re-promote dc1", "restart workloads on dc1"],
                group=scenario_group,
            )


def test_abort_during_final_sync_is_compensated(
    full_lab: FullLab, home: None, scenario_group: str, sampler_for: Any
) -> None:
    lost_before = lost_per_volume(full_lab, scenario_group)
    full_lab.simulator.add_fault(scenario_group, "stall-final-sync")
    with sampler_for(scenario_group):
        with (
            slow_shipments(full_lab),
            failover_in_background(
                full_lab, scenario_group, waiting_for="the failover waiting for the (stalled) final sync"
            ) as failover,
        ):
            assert failover.view["operation"]["status"] == "RUNNING"
            aborted = full_lab.cli("abort", "--group", scenario_group, "--by", "e2e-operator", "--json")
            assert aborted.code == 0, aborted.stdout + aborted.stderr
            assert aborted.json() == {
                "group": scenario_group,
                "action": "abort",
                "answer": "abort requested by e2e-operator: compensating",
            }
            result = failover.result(timeout=120)
        assert_undone(
            full_lab,
            result,
            lost_before,
            phase="Aborted",
            undone=["re-promote dc1", "restart workloads on dc1"],
            group=scenario_group,
        )
    document = result.json()
    assert document["message"] == "aborted by e2e-operator; undone: re-promote dc1, restart workloads on dc1"
    assert document["progress"]["aborted_by"] == "e2e-operator"
    (cancelled,) = [s for s in document["progress"]["steps"] if s["outcome"] == "cancelled"]
    assert (cancelled["name"], cancelled["cluster"]) == stalled_sync_step(full_lab, scenario_group)
    assert not any(s["name"] == "promote" for s in document["progress"]["steps"])
    again = full_lab.cli("abort", "--group", scenario_group, "--json")
    assert again.code == 3, again.stdout + again.stderr
    assert again.json()["error"]["message"].startswith(f"no running operation on {scenario_group}"), again.stdout


def test_an_undo_that_fails_is_finished_by_resume(
    full_lab: FullLab, home: None, scenario_group: str, sampler_for: Any
) -> None:
    dc1 = full_lab.lab.clusters["dc1"]
    with config_variant(full_lab, scenario_group, final_sync=SHORT, demote=SHORT, start=SHORT) as config:
        lost_before = lost_per_volume(full_lab, scenario_group)
        kind, cluster = fault_before_promotion(full_lab, scenario_group)
        full_lab.simulator.add_fault(scenario_group, kind, cluster=cluster)
        # dc1 cannot schedule pods: the quiesce still works (the pod is deleted), the restart of the undo does not.
        dc1.stop_component("kube-scheduler")
        full_lab.lab.save()
        with sampler_for(scenario_group):
            result = _failover(full_lab, config, scenario_group)
            assert result.code == 5, result.stdout + result.stderr
            document = result.json()
            assert document["outcome"] == "needs-attention"
            message = document["message"]
            assert "compensation stopped at restart workloads on dc1" in message, message
            assert f"orchestrate resume --group {scenario_group}" in message, message
            assert document["progress"]["left_to_do"] == ["restart workloads on dc1"]
            assert document["progress"]["leaves_primary_on"] == "dc1"
            assert app_pods(full_lab, scenario_group) == {"dc1": [], "dc2": []}

            dc1.start_component("kube-scheduler")  # the operator fixes dc1
            full_lab.lab.save()
            full_lab.simulator.remove_faults()
            resumed = full_lab.cli("resume", "--group", scenario_group, "--yes", "--json", "--config", str(config))
            assert resumed.code == 0, resumed.stdout + resumed.stderr
            assert resumed.json()["progress"]["target"] == "dc1"

            view = wait_for_status(
                full_lab,
                scenario_group,
                lambda v: v["primary"] == "dc1" and v["protected"],
                "dc1 Primary and protected",
            )
            assert view["operation"]["outcome"] == "succeeded"
            pods = app_pods(full_lab, scenario_group)
            assert pods["dc1"] and pods["dc2"] == [], pods
            assert lost_per_volume(full_lab, scenario_group) == lost_before
