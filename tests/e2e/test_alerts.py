"""End to end: alert-triggered failover with a real Alertmanager, ``orchestrate serve`` and the real CLI.

An alert fired with ``amtool`` for pg-prod starts exactly one planned failover, which waits for approval (the
default for an alert-triggered move); Alertmanager's repeats (a 3 s repeat interval here) and the same notification
posted twice by hand join it; the resolved alert is recorded and stops nothing; ``orchestrate approve`` lets it
finish, with the invariant sampler running and no write lost; a new alert within the rule's cooldown starts
nothing and says why. Bad requests (wrong or missing token, malformed JSON, oversized body, wrong version) get
their 4xx and start nothing. Temporal's visibility counts the operations.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrate.alerts.operations import TemporalOperations
from orchestrate.alerts.rules import Target, TargetKind
from orchestrate.alerts.server import NOTIFICATION_SPAN
from orchestrate.telemetry import TRACES_FILE_ENV
from orchestrate.temporal_client import connect
from sandbox.processes import wait_until
from tests.e2e.alert_stack import AlertStack, alert_stack
from tests.e2e.conftest import FullLab, lost_writes

GROUP = "pg-prod"
RULES = [
    {
        "name": "pg-prod-maintenance",
        "matchers": ['alertname="SiteMaintenance"', f'group="{GROUP}"'],
        "group": GROUP,
        "away_from": "dc1",
        "operation": "planned",
        "cooldown": "30s",
    }
]
COOLDOWN = timedelta(seconds=30)
"""Short, because every move of the group counts (earlier tests' too): the test first lets the last one age."""


def operations_since(full_lab: FullLab, since: datetime) -> list[str]:
    """Run ids of pg-prod's operations started since ``since`` (Temporal visibility)."""

    async def listed() -> list[str]:
        client = await connect(full_lab.config.temporal)
        query = f"WorkflowId = 'failover/{GROUP}' AND StartTime > '{since.isoformat()}'"
        return [w.run_id async for w in client.list_workflows(query)]

    return asyncio.run(listed())


def let_the_last_move_age(full_lab: FullLab) -> None:
    """Sleep until the group's last move is older than the rule's cooldown (earlier tests moved it too)."""

    async def last_move() -> datetime | None:
        client = await connect(full_lab.config.temporal)
        return await TemporalOperations(client, full_lab.config).last_move(Target(TargetKind.GROUP, GROUP))

    moved = asyncio.run(last_move())
    if moved is not None:
        time.sleep(max(0.0, (moved + COOLDOWN - datetime.now(UTC)).total_seconds() + 1))


def operation(full_lab: FullLab) -> dict[str, Any]:
    status = full_lab.cli("status", "--group", GROUP, "--json")
    assert status.code == 0, status.stdout + status.stderr
    entry: dict[str, Any] = status.json()[0]["operation"]
    return entry


def payload(stack: AlertStack, status: str = "firing", fingerprint: str = "manual-1") -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}/{group=~".+"}:{alertname="SiteMaintenance", group="pg-prod"}',
        "status": status,
        "receiver": "failover-orchestrator",
        "externalURL": "http://by-hand",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "SiteMaintenance", "group": GROUP},
                "fingerprint": fingerprint,
                "startsAt": datetime.now(UTC).isoformat(),
            }
        ],
    }


@pytest.fixture()
def stack(full_lab: FullLab, home: None, tmp_path: Path) -> Any:
    with alert_stack(full_lab, tmp_path / "alerting", RULES) as running:
        yield running


def test_bad_requests_get_their_4xx_and_start_nothing(full_lab: FullLab, stack: AlertStack) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    good = payload(stack)
    assert stack.post(good, token="wrong").status_code == 401
    assert stack.post(good, token="").status_code == 401
    assert stack.post(None, content=b'{"version": "4", "alerts": [').status_code == 400
    assert stack.post({**good, "version": "3"}).status_code == 400
    oversized = {**good, "commonAnnotations": {"description": "x" * (2 * 1024 * 1024)}}
    assert stack.post(oversized).status_code == 413
    invalid = stack.post({**good, "alerts": [{"status": "burning", "labels": {}}]})
    assert invalid.status_code == 400 and "alerts.0.status" in json.dumps(invalid.json())
    time.sleep(1)  # visibility is near-immediate on the dev server; give it a moment anyway
    assert operations_since(full_lab, since) == []
    assert stack.metric("orchestrate_webhook_requests_total", result="unauthorized") == 2
    assert stack.metric("orchestrate_webhook_requests_total", result="bad-request") == 3
    assert stack.metric("orchestrate_webhook_requests_total", result="too-large") == 1


def test_an_alert_starts_one_failover_that_waits_for_approval_and_repeats_join_it(
    full_lab: FullLab, stack: AlertStack, sampler_for: Any
) -> None:
    let_the_last_move_age(full_lab)
    since = datetime.now(UTC) - timedelta(seconds=1)
    lost_before = lost_writes(full_lab, GROUP)
    with sampler_for(GROUP):
        stack.amtool("alert", "add", "alertname=SiteMaintenance", f"group={GROUP}", "--annotation=summary=dc1 drains")
        wait_until(
            lambda: operation(full_lab).get("phase") == "WaitingForApproval",
            "the alert-triggered failover waiting for approval",
            timeout=60,
            log_file=stack.serve_log,
        )
        # Alertmanager repeats the notification every 3 s: each one joins, none starts a second operation.
        wait_until(
            lambda: stack.metric("orchestrate_alert_decisions_total", action="joined", kind="joined") >= 2,
            "two repeated notifications joined",
            timeout=60,
            log_file=stack.serve_log,
        )
        first = stack.post(payload(stack))
        second = stack.post(payload(stack))
        assert first.status_code == second.status_code == 202
        assert first.json()["joined"] == second.json()["joined"] == [f"failover/{GROUP}"]
        assert first.json()["started"] == second.json()["started"] == []

        # The resolved alert is recorded on the operation and stops nothing.
        ended = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        stack.amtool("alert", "add", "alertname=SiteMaintenance", f"group={GROUP}", f"--end={ended}")
        wait_until(
            lambda: any(a["status"] == "resolved" for a in operation(full_lab).get("alerts", [])),
            "the resolved alert recorded on the operation",
            timeout=60,
            log_file=stack.serve_log,
        )
        waiting = operation(full_lab)
        assert waiting["phase"] == "WaitingForApproval" and waiting["status"] == "RUNNING"
        assert waiting["triggered_by"] == "alertmanager:SiteMaintenance"
        assert waiting["alerts"][0]["rule"] == "pg-prod-maintenance"
        assert waiting["alerts"][0]["external_url"].startswith("http://")
        assert len(operations_since(full_lab, since)) == 1
        text = full_lab.cli("status", "--group", GROUP)
        assert "started by alert SiteMaintenance" in text.stdout, text.stdout

        approved = full_lab.cli("approve", "--group", GROUP, "--json")
        assert approved.code == 0, approved.stdout + approved.stderr
        wait_until(
            lambda: operation(full_lab).get("outcome") == "succeeded",
            "the approved failover succeeded",
            timeout=120,
            log_file=stack.serve_log,
        )
    status = full_lab.cli("status", "--group", GROUP, "--json").json()[0]
    assert status["primary"] == "dc2" and status["protected"], status["summary"]
    assert lost_writes(full_lab, GROUP) == lost_before

    # A new alert within the cooldown starts nothing and the answer says why.
    held = stack.post(payload(stack, fingerprint="manual-2"))
    assert held.status_code == 202 and held.json()["started"] == []
    (ignored,) = held.json()["ignored"]
    assert "cooldown" in ignored["reason"], ignored
    assert stack.metric("orchestrate_alert_decisions_total", action="ignored", kind="cooldown") >= 1
    assert len(operations_since(full_lab, since)) == 1


def _spans(full_lab: FullLab, trace_id: str) -> list[dict[str, Any]]:
    lines = Path(full_lab.env[TRACES_FILE_ENV]).read_text().splitlines()
    return [span for span in map(json.loads, lines) if span["trace_id"] == trace_id]


def test_one_trace_runs_from_the_webhook_request_through_the_workflow_to_the_kubernetes_calls(
    full_lab: FullLab, stack: AlertStack
) -> None:
    let_the_last_move_age(full_lab)
    trace_id, caller = os.urandom(16).hex(), os.urandom(8).hex()
    started = stack.post(payload(stack, fingerprint="traced"), headers={"traceparent": f"00-{trace_id}-{caller}-01"})
    assert started.status_code == 202 and started.json()["started"] == [f"failover/{GROUP}"], started.text
    wait_until(lambda: operation(full_lab).get("phase") == "WaitingForApproval", "waiting for approval", timeout=60)
    assert full_lab.cli("approve", "--group", GROUP).code == 0
    wait_until(lambda: operation(full_lab).get("outcome") == "succeeded", "the traced failover", timeout=120)

    spans = wait_until_spans(full_lab, trace_id)
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_id"] not in by_id]
    assert [(r["parent_id"], r["service"], r["kind"]) for r in roots] == [
        (caller, "failover-orchestrator serve", "SERVER")
    ], roots
    (notification,) = [s for s in spans if s["name"] == NOTIFICATION_SPAN]

    def ancestors(span: dict[str, Any]) -> list[str]:
        chain = []
        while span["parent_id"] in by_id:
            span = by_id[span["parent_id"]]
            chain.append(span["name"])
        return chain

    names = {s["name"] for s in spans}
    assert {"StartWorkflow:GroupFailover", "RunWorkflow:GroupFailover"} <= names, sorted(names)
    demote = [
        s for s in spans if s["name"] == "PATCH volumegroupreplications" and s["attributes"]["k8s.cluster"] == "dc1"
    ]
    assert demote, sorted(names)
    chain = ancestors(demote[0])
    assert chain[:3] == ["RunActivity:demote", "StartActivity:demote", "StartWorkflow:GroupFailover"], chain
    assert NOTIFICATION_SPAN in chain, chain
    (run,) = [s for s in spans if s["name"] == "RunWorkflow:GroupFailover"]
    assert by_id[run["parent_id"]]["name"] == "StartWorkflow:GroupFailover"
    assert notification["attributes"]["http.response.status_code"] == 202
    assert any(name.startswith("RunActivity:") for name in chain), chain
    assert {s["service"] for s in spans} >= {"failover-orchestrator serve", "failover-orchestrator worker"}

    # The worker's /metrics counts the operation and timed its steps.
    exposed = httpx.get(f"http://{full_lab.worker_metrics}/metrics", timeout=10).text.splitlines()
    mine = [line for line in exposed if f'group="{GROUP}"' in line]
    assert any(
        line.startswith("failover_operations{") and 'outcome="succeeded"' in line and 'operation="planned"' in line
        for line in mine
    ), mine
    assert any(line.startswith("failover_step_duration_seconds_count") and 'step="demote"' in line for line in mine)


def wait_until_spans(full_lab: FullLab, trace_id: str) -> list[dict[str, Any]]:
    """The trace's spans once the last ones are written (a span is written when it ends)."""
    found: list[dict[str, Any]] = []

    def complete() -> bool:
        found[:] = _spans(full_lab, trace_id)
        return any(s["name"] == "RunActivity:wait_workloads_ready" for s in found)

    wait_until(complete, "the trace's spans", timeout=30)
    return found
