"""End to end: the worker process is SIGKILLed while a planned failover waits for its final sync.

The final sync is held back (``stall-final-sync``; shipments are slowed for the run so that dc1 holds unshipped
writes when it is demoted), the failover runs through the real CLI in the background, and once ``status`` shows
WaitingForFinalSync the worker is killed. The fault is removed while no worker runs (the storage finishes the final
sync on its own), then a new worker starts: the wait that was running on the dead worker times out on its
heartbeat, is retried on the new worker, finds the sync complete, and the operation finishes. While no worker
runs, ``status`` still answers (in bounded time): the operation is running, in the phase it last published, and its
progress query went unanswered because no worker runs.

Checked: the CLI that followed the operation exits 0 with phase Relocated; no acknowledged write was lost; every
step that writes (stop workloads, demote, promote, start workloads, reprotect...) ran once, in one attempt; only
the interrupted wait took a second attempt; nothing was compensated. The invariant sampler runs throughout.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.configs import (
    app_pods,
    failover_in_background,
    lost_per_volume,
    slow_shipments,
    stalled_sync_step,
    wait_for,
    wait_for_status,
)
from tests.e2e.conftest import FullLab

WRITE_STEPS = ("stop workloads", "prepare sync point", "demote", "promote", "start workloads", "reprotect")
"""Steps that change the clusters (the others only observe or wait)."""


def test_worker_killed_during_final_sync_wait(
    full_lab: FullLab, home: None, scenario_group: str, sampler_for: Any
) -> None:
    lost_before = lost_per_volume(full_lab, scenario_group)
    full_lab.simulator.add_fault(scenario_group, "stall-final-sync")
    with (
        sampler_for(scenario_group),
        slow_shipments(full_lab),
        failover_in_background(
            full_lab, scenario_group, waiting_for="the failover waiting for the (stalled) final sync"
        ) as failover,
    ):
        full_lab.kill_worker()
        silent = full_lab.cli("status", "--group", scenario_group, "--json")
        assert silent.code == 0, silent.stdout + silent.stderr
        (entry,) = silent.json()
        operation = entry["operation"]
        assert (operation["status"], operation["answered"]) == ("RUNNING", False), operation
        assert operation["phase"] == "WaitingForFinalSync", operation  # as last published by the workflow
        assert f"{operation['workflow_id']} did not answer" in operation["message"], operation
        assert "is `orchestrate worker` running" in operation["message"], operation
        human = full_lab.cli("status", "--group", scenario_group)
        assert human.code == 0, human.stdout + human.stderr
        assert "did not answer" in " ".join(human.stdout.split()), human.stdout
        assert full_lab.simulator.remove_faults(scenario_group, kind="stall-final-sync") == 1
        wait_for(
            lambda: all(v.final_sync_pending is None for v in full_lab.simulator.ledger(scenario_group).volumes),
            "the storage finishing the final sync while no worker runs",
        )
        full_lab.start_worker()
        result = failover.result(timeout=180)

    assert result.code == 0, result.stdout + result.stderr
    document = result.json()
    assert document["outcome"] == "succeeded"
    progress = document["progress"]
    assert progress["phase"] == "Relocated"
    assert document["message"] == f"{scenario_group} relocated from dc1 to dc2"
    assert progress["compensated"] == []

    steps = progress["steps"]
    assert all(s["outcome"] == "done" for s in steps), steps
    for name in WRITE_STEPS:
        runs = [(s["cluster"], s["attempts"]) for s in steps if s["name"] == name]
        assert len(runs) == 1 and runs[0][1] == 1, (name, runs)
    step, cluster = stalled_sync_step(full_lab, scenario_group)
    (final_sync,) = [s for s in steps if (s["name"], s["cluster"]) == (step, cluster)]
    assert final_sync["attempts"] == 2, final_sync
    assert "timed out" in (final_sync["last_error"] or ""), final_sync
    assert not {"re-promote", "restart workloads", "return to Secondary"} & {s["name"] for s in steps}

    view = wait_for_status(full_lab, scenario_group, lambda v: v["protected"], "the group protected on dc2")
    assert view["primary"] == "dc2"
    assert (view["operation"]["outcome"], view["operation"]["phase"]) == ("succeeded", "Relocated")
    pods = app_pods(full_lab, scenario_group)
    assert pods["dc2"] and pods["dc1"] == [], pods
    assert lost_per_volume(full_lab, scenario_group) == lost_before
    assert all(v.writable == ["dc2"] for v in full_lab.simulator.ledger(scenario_group).volumes)
