"""End to end through the real CLI: ``orchestrate failover --site``, ``abort --site``, ``status --site``.

The lab's four demo groups (one per backend) have their primary on dc1. Each scenario runs the invariant sampler on
every group. Covered: a planned site failover in three tiers (each tier's first promotion after the previous
tier's last application start, read from the groups' own step records) and back; an unplanned one with dc1 lost
(each group's data-loss window, then fence-on-return on every group when dc1 returns); one group failing while the
others succeed; ``abort --site`` while the first tier waits for a (stalled) final sync; ``--dry-run``; bad input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any

from tests.e2e.configs import (
    app_pods,
    config_variant,
    lab_cli,
    operation_phase,
    slow_shipments,
    wait_for,
    wait_for_status,
    workflow_result,
)
from tests.e2e.conftest import FullLab, lost_writes

GROUPS = ["pg-prod", "pg-unified", "pg-trident", "pg-powerstore"]
TIERS = {"pg-prod": 10, "pg-powerstore": 10, "pg-unified": 20, "pg-trident": 30}


@contextmanager
def tiers(full_lab: FullLab, priorities: dict[str, int], **timeouts: str) -> Iterator[None]:
    """The lab's configuration with these priorities (and step timeouts) for the block."""
    with ExitStack() as stack:
        for group, priority in priorities.items():
            stack.enter_context(config_variant(full_lab, group, priority=priority, **timeouts))
        yield


@contextmanager
def sampling(sampler_for: Any, allow_lost_primary: str | None = None) -> Iterator[list[Any]]:
    """The invariant sampler on every group for the block."""
    with ExitStack() as stack:
        yield [stack.enter_context(sampler_for(g, allow_lost_primary=allow_lost_primary)) for g in GROUPS]


def _statuses(full_lab: FullLab) -> dict[str, dict[str, Any]]:
    return {v["group"]: v for v in full_lab.cli("status", "--json").json()}


def _step(result: Any, name: str) -> Any:
    return next(s for s in result.progress.steps if s.name == name)


def test_planned_site_failover_moves_every_group_tier_by_tier(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    lost_before = {g: lost_writes(full_lab, g) for g in GROUPS}
    with tiers(full_lab, TIERS), sampling(sampler_for):
        moved = full_lab.cli("failover", "--site", "dc1", "--yes", "--parallel", "2", "--json")
        assert moved.code == 0, moved.stdout + moved.stderr
        document = moved.json()
        assert document["outcome"] == "succeeded", document["message"]
        progress = document["progress"]
        assert progress["operation"] == "planned" and progress["tiers"] == [10, 20, 30]
        assert {g["group"]: g["outcome"] for g in progress["groups"]} == dict.fromkeys(GROUPS, "succeeded")
        assert document["message"] == "site failover of dc1 (planned): 4 succeeded"

        # Tier order, from each group's own steps: a tier promotes only after the previous one's applications run.
        results = {g: workflow_result(full_lab, g) for g in GROUPS}
        ready: dict[int, datetime] = {}
        promoted: dict[int, datetime] = {}
        for group, result in results.items():
            tier = TIERS[group]
            started = _step(result, "promote").started
            running = _step(result, "wait for workloads ready").ended
            assert started is not None and running is not None
            promoted[tier] = min(promoted.get(tier, started), started)
            ready[tier] = max(ready.get(tier, running), running)
        assert promoted[20] >= ready[10] and promoted[30] >= ready[20], (promoted, ready)

        views = _statuses(full_lab)
        assert all(views[g]["primary"] == "dc2" and views[g]["protected"] for g in GROUPS), views
        assert {g: lost_writes(full_lab, g) for g in GROUPS} == lost_before

        back = full_lab.cli("failover", "--site", "dc2", "--yes", "--json")
        assert back.code == 0, back.stdout + back.stderr
        assert back.json()["outcome"] == "succeeded"
    views = _statuses(full_lab)
    assert all(views[g]["primary"] == "dc1" and views[g]["protected"] for g in GROUPS), views
    assert {g: lost_writes(full_lab, g) for g in GROUPS} == lost_before


def test_unplanned_site_failover_reports_each_window_and_fences_every_group(
    full_lab: FullLab, home: None, sampler_for: Any
) -> None:
    with sampling(sampler_for, allow_lost_primary="dc1"):
        lab_cli(full_lab, "site-down", "dc1")
        moved = full_lab.cli("failover", "--site", "dc1", "--yes", "--json")
        assert moved.code == 0, moved.stdout + moved.stderr
        document = moved.json()
        progress = document["progress"]
        assert progress["operation"] == "unplanned", "a site that does not answer fails over unplanned"
        for group in progress["groups"]:
            assert group["outcome"] == "succeeded", group
            window = group["data_loss_window_seconds"]
            if group["group"] == "pg-trident":
                # Trident records no transfer time unless a TridentActionMirrorUpdate ran: the window is unknown.
                assert window is None, group
            else:
                assert window is not None and window >= 0, group
        views = _statuses(full_lab)
        assert all(views[g]["primary"] == "dc2" for g in GROUPS), views
        assert all(not views[g]["operation"]["fence"]["done"] for g in GROUPS), "every group's fence waits for dc1"

        lab_cli(full_lab, "site-up", "dc1")

        def fenced() -> dict[str, dict[str, Any]] | None:
            now = _statuses(full_lab)
            done = all(now[g]["operation"]["fence"]["done"] and now[g]["protected"] for g in GROUPS)
            return now if done else None

        views = wait_for(fenced, "every group fenced and protected again", timeout=120)
    assert all(views[g]["primary"] == "dc2" for g in GROUPS), views
    assert all(app_pods(full_lab, g)["dc1"] == [] for g in GROUPS)


def test_one_group_failing_is_compensated_while_the_others_move(
    full_lab: FullLab, home: None, sampler_for: Any
) -> None:
    with config_variant(full_lab, "pg-prod", final_sync="5s", demote="5s"), sampling(sampler_for):
        full_lab.simulator.add_fault("pg-prod", "fail-demote", cluster="dc1")
        moved = full_lab.cli("failover", "--site", "dc1", "--yes", "--json")
        assert moved.code == 4, moved.stdout + moved.stderr
        document = moved.json()
        outcomes = {g["group"]: g["outcome"] for g in document["progress"]["groups"]}
        assert outcomes == {
            "pg-prod": "failed-compensated",
            "pg-unified": "succeeded",
            "pg-trident": "succeeded",
            "pg-powerstore": "succeeded",
        }
        assert document["message"] == "site failover of dc1 (planned): 1 failed-compensated, 3 succeeded"
        full_lab.simulator.remove_faults()
    views = _statuses(full_lab)
    assert views["pg-prod"]["primary"] == "dc1" and app_pods(full_lab, "pg-prod")["dc2"] == []
    assert all(views[g]["primary"] == "dc2" for g in GROUPS if g != "pg-prod")


def test_abort_site_stops_the_next_tiers_and_aborts_the_running_group(
    full_lab: FullLab, home: None, sampler_for: Any
) -> None:
    full_lab.simulator.add_fault("pg-prod", "stall-final-sync")
    with tiers(full_lab, {"pg-prod": 10, "pg-unified": 20}), sampling(sampler_for), slow_shipments(full_lab):
        running = full_lab.cli_background("failover", "--site", "dc1", "--yes", "--json")
        try:
            wait_for_status(
                full_lab, "pg-prod", lambda v: operation_phase(v) == "WaitingForFinalSync", "pg-prod stalled"
            )
            site = full_lab.cli("status", "--site", "dc1", "--json").json()
            assert site["site_failover"]["phase"] == "Moving" and site["site_failover"]["current_tier"] == 10
            aborted = full_lab.cli("abort", "--site", "dc1", "--by", "e2e-operator", "--json")
            assert aborted.code == 0, aborted.stdout + aborted.stderr
            assert aborted.json()["groups"] == [
                {"group": "pg-prod", "accepted": True, "answer": "abort requested by e2e-operator: compensating"}
            ]
            stdout, stderr = running.communicate(timeout=120)
        finally:
            if running.poll() is None:
                running.kill()
    assert running.returncode == 4, stdout + stderr
    document = json.loads(stdout)
    states = {g["group"]: (g["state"], g["outcome"]) for g in document["progress"]["groups"]}
    assert states["pg-prod"] == ("ended", "failed-compensated")
    assert all(states[g] == ("not-started", None) for g in GROUPS if g != "pg-prod"), states
    assert document["progress"]["aborted_by"] == "e2e-operator"
    views = _statuses(full_lab)
    assert all(views[g]["primary"] == "dc1" for g in GROUPS), views


def test_dry_run_checks_every_group_and_changes_nothing(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    with sampling(sampler_for):
        planned = full_lab.cli("failover", "--site", "dc1", "--dry-run", "--json")
    assert planned.code == 0, planned.stdout + planned.stderr
    document = planned.json()
    assert document["outcome"] == "dry-run"
    for group in document["progress"]["groups"]:
        assert group["outcome"] == "dry-run" and group["findings"], group
    assert all(v["primary"] == "dc1" for v in _statuses(full_lab).values())


def test_bad_site_input_is_refused_with_the_known_sites(full_lab: FullLab, home: None) -> None:
    unknown = full_lab.cli("failover", "--site", "dc9", "--yes", "--json")
    assert unknown.code == 2
    assert unknown.json()["error"]["message"] == "unknown site 'dc9'; known sites: dc1, dc2"
    both = full_lab.cli("failover", "--site", "dc1", "--group", "pg-prod", "--yes")
    assert both.code == 2 and "--group GROUP or --site SITE" in both.stderr
    nothing = full_lab.cli("abort", "--site", "dc1", "--json")
    assert nothing.code == 3 and "no site failover of dc1 is running" in nothing.json()["error"]["message"]
    assert all(v["primary"] == "dc1" for v in _statuses(full_lab).values())
