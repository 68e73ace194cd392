"""End to end through the real CLI: ``orchestrate failover --site``, ``abort --site``, ``status --site``.

The lab of this folder has twelve demo groups (the five named, then the backends in turn) in tiers 10, 20, 30, Primary
on dc1. Each scenario runs the invariant sampler on every group (once a second: twelve samplers at the default
rate would load the 2-core machine more than the failover does). Covered: a planned site failover of the twelve
(each tier's first promotion after the previous tier's last application start, read from the groups' own step
records; no write lost) and back, on a pseudo-terminal (the live table redrawn in place, then the summary); an
unplanned one with dc1 lost (each group's data-loss window, then
fence-on-return on every group when dc1 returns); one group failing while the others succeed; ``abort --site``
while the first group waits for a (stalled) final sync; ``--dry-run``; bad input.
"""

from __future__ import annotations

import json
import re
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
from tests.e2e.site.conftest import sampling

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
"""Terminal control sequences (colours, cursor moves)."""
CURSOR_UP = re.compile(r"\x1b\[\d*A")
"""Moving the cursor up: how a live view redraws itself in place."""


def _statuses(full_lab: FullLab) -> dict[str, dict[str, Any]]:
    return {v["group"]: v for v in full_lab.cli("status", "--json").json()}


def _step(result: Any, name: str) -> Any:
    return next(s for s in result.progress.steps if s.name == name)


def test_planned_site_failover_moves_every_group_tier_by_tier(
    full_lab: FullLab, home: None, sampler_for: Any, groups: dict[str, int]
) -> None:
    assert sorted(set(groups.values())) == [10, 20, 30] and len(groups) == 12
    lost_before = {g: lost_writes(full_lab, g) for g in groups}
    with sampling(sampler_for, groups):
        moved = full_lab.cli("failover", "--site", "dc1", "--yes", "--parallel", "3", "--json")
        assert moved.code == 0, moved.stdout + moved.stderr
        document = moved.json()
        assert document["outcome"] == "succeeded", document["message"]
        progress = document["progress"]
        assert progress["operation"] == "planned" and progress["tiers"] == [10, 20, 30]
        assert {g["group"]: g["outcome"] for g in progress["groups"]} == dict.fromkeys(groups, "succeeded")
        assert document["message"] == "site failover of dc1 (planned): 12 succeeded"

        # Tier order, from each group's own steps: a tier promotes only after the previous one's applications run.
        ready: dict[int, datetime] = {}
        promoted: dict[int, datetime] = {}
        for group, tier in groups.items():
            result = workflow_result(full_lab, group)
            started = _step(result, "promote").started
            running = _step(result, "wait for workloads ready").ended
            assert started is not None and running is not None
            promoted[tier] = min(promoted.get(tier, started), started)
            ready[tier] = max(ready.get(tier, running), running)
        assert promoted[20] >= ready[10] and promoted[30] >= ready[20], (promoted, ready)

        views = _statuses(full_lab)
        assert all(views[g]["primary"] == "dc2" and views[g]["protected"] for g in groups), views
        assert {g: lost_writes(full_lab, g) for g in groups} == lost_before

        # Back home on a terminal: the live table is redrawn in place, then the summary.
        back = full_lab.cli_on_terminal("failover", "--site", "dc2", "--yes")
        assert back.code == 0, back.stdout
        screen = ANSI.sub("", back.stdout)
        assert "site failover of dc2" in screen and "12 succeeded" in screen, screen[-3000:]
        assert all(word in screen for word in ("group", "backend", "tier", "state", "phase", "elapsed")), screen
        assert all(group in screen for group in groups), screen
        assert CURSOR_UP.search(back.stdout), "the table was not redrawn in place"
    views = _statuses(full_lab)
    assert all(views[g]["primary"] == "dc1" and views[g]["protected"] for g in groups), views
    assert {g: lost_writes(full_lab, g) for g in groups} == lost_before


def test_unplanned_site_failover_reports_each_window_and_fences_every_group(
    full_lab: FullLab, home: None, sampler_for: Any, groups: dict[str, int]
) -> None:
    backends = {g.name: g.backend.value for g in full_lab.config.groups}
    with sampling(sampler_for, groups, allow_lost_primary="dc1"):
        lab_cli(full_lab, "site-down", "dc1")
        moved = full_lab.cli("failover", "--site", "dc1", "--yes", "--json")
        assert moved.code == 0, moved.stdout + moved.stderr
        progress = moved.json()["progress"]
        assert progress["operation"] == "unplanned", "a site that does not answer fails over unplanned"
        for group in progress["groups"]:
            assert group["outcome"] == "succeeded", group
            window = group["data_loss_window_seconds"]
            if backends[group["group"]] == "trident":
                # Trident records transfer times only through TridentActionMirrorUpdates since the TMR took its
                # current state: none ran into dc2 since it became a destination again, and the group monitor
                # forgets the ones of the direction before, so the window is unknown rather than overstated.
                assert window is None, group
            else:
                assert window is not None and window >= 0, group
        views = _statuses(full_lab)
        assert all(views[g]["primary"] == "dc2" for g in groups), views
        assert all(not views[g]["operation"]["fence"]["done"] for g in groups), "every group's fence waits for dc1"

        lab_cli(full_lab, "site-up", "dc1")

        def fenced() -> dict[str, dict[str, Any]] | None:
            now = _statuses(full_lab)
            done = all(now[g]["operation"]["fence"]["done"] and now[g]["protected"] for g in groups)
            return now if done else None

        views = wait_for(fenced, "every group fenced and protected again", timeout=180)
    assert all(views[g]["primary"] == "dc2" for g in groups), views
    assert all(app_pods(full_lab, g)["dc1"] == [] for g in groups)


def test_one_group_failing_is_compensated_while_the_others_move(
    full_lab: FullLab, home: None, sampler_for: Any, groups: dict[str, int]
) -> None:
    with config_variant(full_lab, "pg-prod", final_sync="5s", demote="5s"), sampling(sampler_for, groups):
        full_lab.simulator.add_fault("pg-prod", "fail-demote", cluster="dc1")
        moved = full_lab.cli("failover", "--site", "dc1", "--yes", "--json")
        assert moved.code == 4, moved.stdout + moved.stderr
        document = moved.json()
        outcomes = {g["group"]: g["outcome"] for g in document["progress"]["groups"]}
        assert outcomes == {g: "failed-compensated" if g == "pg-prod" else "succeeded" for g in groups}
        assert document["message"] == "site failover of dc1 (planned): 1 failed-compensated, 11 succeeded"
        full_lab.simulator.remove_faults()
    views = _statuses(full_lab)
    assert views["pg-prod"]["primary"] == "dc1" and app_pods(full_lab, "pg-prod")["dc2"] == []
    assert all(views[g]["primary"] == "dc2" for g in groups if g != "pg-prod")


def test_abort_site_starts_no_more_groups_and_aborts_the_running_one(
    full_lab: FullLab, home: None, sampler_for: Any, groups: dict[str, int]
) -> None:
    full_lab.simulator.add_fault("pg-prod", "stall-final-sync")
    with sampling(sampler_for, groups), slow_shipments(full_lab):
        # One at a time: pg-prod (first of tier 10) holds the only slot while its final sync stalls.
        running = full_lab.cli_background("failover", "--site", "dc1", "--yes", "--parallel", "1", "--json")
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
    assert all(states[g] == ("not-started", None) for g in groups if g != "pg-prod"), states
    assert document["progress"]["aborted_by"] == "e2e-operator"
    views = _statuses(full_lab)
    assert all(views[g]["primary"] == "dc1" for g in groups), views


def test_dry_run_checks_every_group_and_changes_nothing(
    full_lab: FullLab, home: None, sampler_for: Any, groups: dict[str, int]
) -> None:
    with sampling(sampler_for, groups):
        planned = full_lab.cli("failover", "--site", "dc1", "--to", "dc2", "--dry-run", "--json")
    assert planned.code == 0, planned.stdout + planned.stderr
    document = planned.json()
    assert document["outcome"] == "dry-run"
    assert len(document["progress"]["groups"]) == len(groups)
    for group in document["progress"]["groups"]:
        assert group["outcome"] == "dry-run" and group["findings"], group
    assert all(v["primary"] == "dc1" for v in _statuses(full_lab).values())


def test_bad_site_input_is_refused_with_the_known_sites(full_lab: FullLab, home: None) -> None:
    unknown = full_lab.cli("failover", "--site", "dc9", "--yes", "--json")
    assert unknown.code == 2
    assert unknown.json()["error"]["message"] == "unknown site 'dc9'; known sites: dc1, dc2"
    both = full_lab.cli("failover", "--site", "dc1", "--group", "pg-prod", "--yes")
    assert both.code == 2 and "--group GROUP or --site SITE" in both.stderr
    itself = full_lab.cli("failover", "--site", "dc1", "--to", "dc1", "--yes", "--json")
    assert itself.code == 2
    assert itself.json()["error"]["message"] == "--to dc1: the groups move away from dc1, not to it"
    nothing = full_lab.cli("abort", "--site", "dc1", "--json")
    assert nothing.code == 3 and "no site failover of dc1 is running" in nothing.json()["error"]["message"]
    assert all(v["primary"] == "dc1" for v in _statuses(full_lab).values())
