"""Unit tier: what the intake does with each alert of a notification (against fake operations).

Firing alerts start the group's failover once; repeats and other alerts of the group join it; resolved alerts are
only recorded; a group that moved within the cooldown is not moved again; a refusal is answered, not raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrate.alerts.intake import Action, AnyRequest, RefusedError, Started, request_for, take
from orchestrate.alerts.payload import Notification
from orchestrate.alerts.rules import Target, TargetKind
from orchestrate.config import OrchestratorConfig, parse_config
from tests.unit.config_texts import MINIMAL_CONFIG
from workflows.models import AlertNote, FailoverRequest, Operation
from workflows.site.models import SiteFailoverRequest

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
RULES = """\
alerts:
  rules:
    - name: site-down
      matchers: [alertname=SiteDown, site=dc1]
      group: pg-prod
      operation: unplanned
      cooldown: 1h
"""


@dataclass
class FakeOperations:
    """Remembers what the intake asked; ``running`` is the id of the running operation, if any."""

    running: str | None = None
    moved_at: datetime | None = None
    refuse: str | None = None
    started: list[AnyRequest] = field(default_factory=list)
    recorded: list[AlertNote] = field(default_factory=list)
    asked: list[Target] = field(default_factory=list)

    async def last_move(self, target: Target) -> datetime | None:
        self.asked.append(target)
        return self.moved_at

    async def start(self, request: AnyRequest) -> Started:
        if self.refuse:
            raise RefusedError(self.refuse)
        self.started.append(request)
        name = request.site if isinstance(request, SiteFailoverRequest) else f"failover/{request.group}"
        self.running = f"site-failover/{name}" if isinstance(request, SiteFailoverRequest) else name
        return Started(workflow_id=self.running, joined=False)

    async def record(self, target: Target, note: AlertNote) -> str | None:
        self.asked.append(target)
        if self.running is None:
            return None
        self.recorded.append(note)
        return self.running


def config() -> OrchestratorConfig:
    return parse_config(MINIMAL_CONFIG + RULES, Path("orchestrate.yaml"))


def notification(*alerts: dict[str, Any], status: str = "firing") -> Notification:
    return Notification.model_validate(
        {
            "version": "4",
            "groupKey": '{}:{alertname="SiteDown"}',
            "status": status,
            "receiver": "failover",
            "externalURL": "http://alertmanager:9093",
            "alerts": [
                {"status": "firing", "labels": {"alertname": "SiteDown", "site": "dc1"}, "fingerprint": "f1"} | a
                for a in alerts
            ],
        }
    )


async def decide(ops: FakeOperations, note: Notification) -> list[Any]:
    cfg = config()
    return await take(note, cfg.alerts, cfg, ops, now=NOW)


async def test_a_firing_alert_starts_the_rules_failover_with_the_alert_recorded() -> None:
    ops = FakeOperations()
    (decision,) = await decide(ops, notification({}))
    assert decision.action is Action.STARTED and decision.workflow_id == "failover/pg-prod"
    (request,) = ops.started
    assert isinstance(request, FailoverRequest)
    assert request.operation is Operation.UNPLANNED and request.approval_required
    assert request.triggered_by == "alertmanager:SiteDown"
    assert request.alert is not None and request.alert.fingerprint == "f1" and request.alert.rule == "site-down"
    assert request.alert.group_key == '{}:{alertname="SiteDown"}' and request.alert.received_at == NOW


async def test_a_repeated_notification_joins_and_is_recorded_on_the_running_operation() -> None:
    ops = FakeOperations(running="failover/pg-prod")
    (decision,) = await decide(ops, notification({}))
    assert decision.action is Action.JOINED and not ops.started
    assert [n.fingerprint for n in ops.recorded] == ["f1"]


async def test_two_alerts_for_one_group_start_one_operation() -> None:
    ops = FakeOperations()
    first, second = await decide(ops, notification({}, {"fingerprint": "f2"}))
    assert (first.action, second.action) == (Action.STARTED, Action.JOINED)
    assert len(ops.started) == 1 and [n.fingerprint for n in ops.recorded] == ["f2"]


async def test_a_resolved_alert_starts_nothing_and_is_recorded_when_an_operation_runs() -> None:
    idle = FakeOperations()
    (decision,) = await decide(idle, notification({"status": "resolved"}, status="resolved"))
    assert decision.action is Action.IGNORED and "starts, cancels and aborts nothing" in decision.reason
    assert not idle.started
    busy = FakeOperations(running="failover/pg-prod")
    (decision,) = await decide(busy, notification({"status": "resolved"}, status="resolved"))
    assert decision.action is Action.RECORDED and busy.recorded[0].status == "resolved"


async def test_a_group_that_moved_within_the_cooldown_is_not_moved_and_the_answer_says_why() -> None:
    ops = FakeOperations(moved_at=NOW - timedelta(minutes=20))
    (decision,) = await decide(ops, notification({}))
    assert decision.action is Action.IGNORED and not ops.started
    assert "cooldown of 1h (40m left)" in decision.reason
    ops = FakeOperations(moved_at=NOW - timedelta(hours=2))
    (decision,) = await decide(ops, notification({}))
    assert decision.action is Action.STARTED


async def test_unmatched_alerts_and_refusals_are_answered_not_raised() -> None:
    ops = FakeOperations()
    (decision,) = await decide(ops, notification({"labels": {"alertname": "Other"}}))
    assert decision.action is Action.IGNORED and decision.reason == "no rule matches its labels"
    ops = FakeOperations(refuse="group pg-prod is not safe to move: its old primary dc1 is not fenced yet")
    (decision,) = await decide(ops, notification({}))
    assert decision.action is Action.IGNORED and "not fenced yet" in decision.reason


@pytest.mark.parametrize(("approval", "expected"), [("required", True), (None, False)])
def test_a_planned_rule_follows_the_group_unless_it_requires_approval(approval: str | None, expected: bool) -> None:
    text = MINIMAL_CONFIG.replace(
        "      name: postgres\n", "      name: postgres\n    approval:\n      alert_triggered: false\n"
    )
    text += "alerts:\n  rules:\n    - name: r\n      matchers: [a=b]\n      group: pg-prod\n      away_from: dc2\n"
    text += "      operation: planned\n"
    if approval:
        text += f"      approval: {approval}\n"
    cfg = parse_config(text, Path("orchestrate.yaml"))
    note = AlertNote(alertname="A", fingerprint="f", status="firing")
    request = request_for(cfg.alerts.rules[0], note, cfg)
    assert request.approval_required is expected
    assert isinstance(request, FailoverRequest) and request.target == "dc1"  # away from dc2, never back to it


def test_automatic_approval_still_says_the_groups_policy_waits() -> None:
    text = MINIMAL_CONFIG.replace(
        "      name: postgres\n",
        "      name: postgres\n    approval:\n      alert_triggered: false\n      planned: true\n",
    )
    text += "alerts:\n  rules:\n    - name: r\n      matchers: [a=b]\n      group: pg-prod\n      away_from: dc1\n"
    text += "      operation: planned\n      approval: automatic\n"
    cfg = parse_config(text, Path("orchestrate.yaml"))
    note = AlertNote(alertname="A", fingerprint="f", status="firing")
    assert request_for(cfg.alerts.rules[0], note, cfg).approval_required


SITE_RULE = """\
alerts:
  rules:
    - name: dc1-dark
      matchers: [alertname=DatacenterDown, site=dc1]
      site: dc1
      operation: unplanned
"""


async def test_a_site_rule_starts_the_sites_failover_with_approval_and_the_alert() -> None:
    cfg = parse_config(MINIMAL_CONFIG + SITE_RULE, Path("orchestrate.yaml"))
    ops = FakeOperations()
    alert = {"labels": {"alertname": "DatacenterDown", "site": "dc1"}}
    (decision,) = await take(notification(alert), cfg.alerts, cfg, ops, now=NOW)
    assert decision.action is Action.STARTED and decision.site == "dc1" and decision.group is None
    assert decision.workflow_id == "site-failover/dc1" and "failover of site dc1 started" in decision.reason
    (request,) = ops.started
    assert isinstance(request, SiteFailoverRequest)
    assert request.operation is Operation.UNPLANNED and request.approval_required
    assert request.alert is not None and request.alert.rule == "dc1-dark"
    assert set(ops.asked) == {Target(TargetKind.SITE, "dc1")}
    (again,) = await take(notification(alert), cfg.alerts, cfg, ops, now=NOW)
    assert again.action is Action.JOINED and len(ops.started) == 1
