"""End to end through the real CLI: failovers of pg-prod that are refused, each with a clear message, changing nothing.

- Lag above the RPO without ``--force`` (``stop-lag-updates`` freezes ``lastSyncTime`` and a config variant sets the
  RPO to 2 s): exit 3 and the failed "lag within RPO" finding; then ``--force`` moves the group.
- A planned failover while dc1's apiserver does not answer: exit 3, the message suggests ``--unplanned``.
- An unknown group: exit 2 listing the known groups (with ``--json``, a JSON error document); no workflow starts.
- A second failover while one runs (stalled in the final sync): exit 3 naming the running operation and its phase;
  the running one is unaffected, then aborted.
- A malformed configuration: exit 2 naming the file, the line and the field; no workflow starts.
- ``abort`` with nothing running: exit 3 saying so, every time. Repeated 30 times, because a CLI process that
  talked to Temporal may abort (SIGABRT) while the interpreter finalizes (temporalio/sdk-python#300): the
  documented exit code must not depend on that race.

"Nothing changed" is checked by comparing, before and after: both sides' roles and the generations of their
replication objects, the storage's writable sides and promotions, where the application runs and with how many
replicas, and the group's last operation (a refusal by preflight does run a workflow, which ends Refused after
only observing). The invariant sampler runs throughout every scenario.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.configs import (
    config_variant,
    group_status,
    lab_cli,
    lost_per_volume,
    operation_phase,
    slow_shipments,
    unchanged_facts,
    wait_for_status,
    workflow_progress,
    write_malformed,
)
from tests.e2e.conftest import ORCHESTRATE, CliResult, FullLab

GROUP = "pg-prod"
KNOWN_GROUPS = "pg-prod, pg-unified, pg-trident, pg-powerstore, redis-prod"
OBSERVING_STEPS = {"resolve group", "observe roles", "preflight"}


def _one_line(text: str) -> str:
    """CLI text with Rich's line wrapping undone."""
    return " ".join(text.split())


def _assert_refused_by_workflow(result: CliResult, message: str) -> None:
    """Exit 3 from a workflow that only observed, and ended Refused with ``message``."""
    assert result.code == 3, result.stdout + result.stderr
    document = result.json()
    assert document["exit_code"] == 3
    assert document["outcome"] == "refused"
    assert document["progress"]["phase"] == "Refused"
    assert document["message"] == message
    assert {s["name"] for s in document["progress"]["steps"]} <= OBSERVING_STEPS
    assert document["progress"]["compensated"] == []


def _without_operation(facts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if k != "operation"}


def test_lag_above_rpo_is_refused_unless_forced(
    full_lab: FullLab, home: None, sampler_for: Any, tmp_path: Path
) -> None:
    with config_variant(full_lab, GROUP, rpo="2s") as config:
        before = unchanged_facts(full_lab, GROUP)
        full_lab.simulator.add_fault(GROUP, "stop-lag-updates")
        with sampler_for(GROUP):
            lagging = wait_for_status(
                full_lab, GROUP, lambda v: (v["lag_seconds"] or 0) > 3, "lag above the 2 s RPO", timeout=30
            )
            assert lagging["primary"] == "dc1"

            human = full_lab.cli("failover", "--group", GROUP, "--yes", "--config", str(config))
            assert human.code == 3, human.stdout + human.stderr
            text = _one_line(human.stdout)
            assert "✗ lag within RPO: last sync" in text and "(RPO 2s)" in text, text
            assert "pass --force to accept the lag" in text, text

            refused = full_lab.cli("failover", "--group", GROUP, "--yes", "--json", "--config", str(config))
            document = refused.json()
            assert document["message"].startswith("refused by preflight: lag within RPO: last sync "), document
            _assert_refused_by_workflow(refused, document["message"])
            (lag,) = [f for f in document["progress"]["findings"] if f["check"] == "lag within RPO"]
            assert lag["verdict"] == "fail" and lag["remedy"] == (
                "wait for replication to catch up, or pass --force to accept the lag"
            )
            assert document["progress"]["lag_seconds"] > document["progress"]["rpo_seconds"] == 2.0
            after = unchanged_facts(full_lab, GROUP)
            assert _without_operation(after) == _without_operation(before)
            assert after["operation"] != before["operation"], "the refusal came from a workflow's preflight"

            forced = full_lab.cli("failover", "--group", GROUP, "--yes", "--force", "--json", "--config", str(config))
            assert forced.code == 0, forced.stdout + forced.stderr
            moved = forced.json()
            assert (moved["outcome"], moved["progress"]["phase"]) == ("succeeded", "Relocated")
            (lag,) = [f for f in moved["progress"]["findings"] if f["check"] == "lag within RPO"]
            assert lag["verdict"] == "warn" and lag["observed"].endswith("; forced"), lag
        assert group_status(full_lab, GROUP)["primary"] == "dc2"
        assert lost_per_volume(full_lab, GROUP) == {pvc: n for pvc, (_, _, n, _) in before["volumes"].items()}


def test_planned_failover_with_source_unreachable_is_refused(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    before = unchanged_facts(full_lab, GROUP)
    with sampler_for(GROUP):
        lab_cli(full_lab, "stop-apiserver", "dc1")
        try:
            human = full_lab.cli("failover", "--group", GROUP, "--yes")
            refused = full_lab.cli("failover", "--group", GROUP, "--yes", "--json")
        finally:
            lab_cli(full_lab, "start-apiserver", "dc1")
        expected = (
            "dc1 does not answer: a planned failover needs both sites; if dc1 is lost, run "
            f"`orchestrate failover --group {GROUP} --unplanned`"
        )
        assert human.code == 3, human.stdout + human.stderr
        assert f"refused: {expected}" in _one_line(human.stdout), human.stdout
        _assert_refused_by_workflow(refused, expected)
        assert [s["name"] for s in refused.json()["progress"]["steps"]] == ["resolve group", "observe roles"]
        wait_for_status(full_lab, GROUP, lambda v: v["protected"], "dc1 answering again")
    after = unchanged_facts(full_lab, GROUP)
    assert _without_operation(after) == _without_operation(before)


def test_unknown_group_is_bad_input(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    before = unchanged_facts(full_lab, GROUP)
    with sampler_for(GROUP):
        human = full_lab.cli("failover", "--group", "pg-nope", "--yes")
        assert human.code == 2, human.stdout + human.stderr
        assert f"error: unknown group 'pg-nope'; known groups: {KNOWN_GROUPS}" in _one_line(human.stderr)
        assert human.stdout == ""

        scripted = full_lab.cli("failover", "--group", "pg-nope", "--yes", "--json")
        assert scripted.code == 2, scripted.stdout + scripted.stderr
        assert scripted.json() == {
            "error": {
                "code": 2,
                "kind": "bad_input",
                "message": f"unknown group 'pg-nope'; known groups: {KNOWN_GROUPS}",
                "hint": None,
            }
        }
        nothing = full_lab.cli("status", "--group", "pg-nope", "--json")
        assert nothing.code == 2 and "known groups" in nothing.json()["error"]["message"]
    assert unchanged_facts(full_lab, GROUP) == before


def test_second_failover_on_a_busy_group_is_refused(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    full_lab.simulator.add_fault(GROUP, "stall-final-sync")
    with sampler_for(GROUP), slow_shipments(full_lab):
        first = full_lab.cli_background("failover", "--group", GROUP, "--yes", "--json")
        try:
            busy = wait_for_status(
                full_lab,
                GROUP,
                lambda v: operation_phase(v) == "WaitingForFinalSync",
                "the first failover waiting for the (stalled) final sync",
            )
            steps_before = workflow_progress(full_lab, GROUP).steps

            human = full_lab.cli("failover", "--group", GROUP, "--yes")
            scripted = full_lab.cli("failover", "--group", GROUP, "--yes", "--json")

            expected = (
                f"group {GROUP} is busy: a planned operation (dc1 -> dc2) in phase WaitingForFinalSync: waiting for "
                f"the final sync from dc1; follow it with `orchestrate status --group {GROUP}` or stop it with "
                f"`orchestrate abort --group {GROUP}`"
            )
            assert human.code == 3, human.stdout + human.stderr
            assert f"error: {expected}" in _one_line(human.stderr), human.stderr
            assert scripted.code == 3, scripted.stdout + scripted.stderr
            assert scripted.json()["error"] == {"code": 3, "kind": "refused", "message": expected, "hint": None}

            still = group_status(full_lab, GROUP)
            assert still["operation"]["started"] == busy["operation"]["started"]
            assert (still["operation"]["status"], operation_phase(still)) == ("RUNNING", "WaitingForFinalSync")
            assert workflow_progress(full_lab, GROUP).steps[: len(steps_before)] == steps_before
            assert len(workflow_progress(full_lab, GROUP).steps) == len(steps_before)

            aborted = full_lab.cli("abort", "--group", GROUP)
            assert aborted.code == 0, aborted.stdout + aborted.stderr
            stdout, stderr = first.communicate(timeout=120)
        finally:
            if first.poll() is None:  # a failed check above: stop the first operation before leaving
                full_lab.cli("abort", "--group", GROUP)
                try:
                    first.communicate(timeout=120)
                except subprocess.TimeoutExpired:
                    first.kill()
    assert first.returncode == 4, stdout + stderr
    assert CliResult(first.returncode, stdout, stderr).json()["progress"]["phase"] == "Aborted"
    assert group_status(full_lab, GROUP)["primary"] == "dc1"


def test_malformed_config_is_bad_input(full_lab: FullLab, home: None, sampler_for: Any, tmp_path: Path) -> None:
    bad, line = write_malformed(full_lab, tmp_path / "bad.yaml", GROUP, "rpo", "soon")
    index = [g.name for g in full_lab.config.groups].index(GROUP)
    expected = f"{bad}:{line}: groups.{index}.rpo: Value error, 'soon' is not a duration (use e.g. 90s, 5m, 1h30m)"
    before = unchanged_facts(full_lab, GROUP)
    with sampler_for(GROUP):
        human = full_lab.cli("failover", "--group", GROUP, "--yes", "--config", str(bad))
        assert human.code == 2, human.stdout + human.stderr
        assert f"error: {expected}" in _one_line(human.stderr), human.stderr

        scripted = full_lab.cli("failover", "--group", GROUP, "--yes", "--json", "--config", str(bad))
        assert scripted.code == 2, scripted.stdout + scripted.stderr
        assert scripted.json()["error"] == {
            "code": 2,
            "kind": "bad_input",
            "message": expected,
            "hint": "fix the file; `orchestrate validate` checks it",
        }
    assert unchanged_facts(full_lab, GROUP) == before


def test_abort_with_nothing_running_is_refused_every_time(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    before = unchanged_facts(full_lab, GROUP)
    assert before["operation"] is None or before["operation"][2] != "RUNNING"
    with sampler_for(GROUP):
        results: list[CliResult] = []
        for _ in range(3):  # ten at a time: 30 short-lived clients, in a few seconds each batch
            batch = [
                subprocess.Popen(
                    [ORCHESTRATE, "abort", "--group", GROUP, "--json"],
                    env=full_lab.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(10)
            ]
            for process in batch:
                stdout, stderr = process.communicate(timeout=120)
                results.append(CliResult(process.returncode, stdout, stderr))
    for result in results:
        assert result.json()["error"]["kind"] == "refused", result.stdout
    codes = [r.code for r in results]
    crashed = [r.stderr.strip().splitlines()[0] for r in results if r.code != 3 and r.stderr.strip()]
    assert codes == [3] * len(results), (codes, crashed[:1])
    assert unchanged_facts(full_lab, GROUP) == before
