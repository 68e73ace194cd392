"""What one Alertmanager notification does: per alert, start, join, record or ignore (and say why).

For each alert: start the rule's failover (of a group, or of a site), join the one running, or ignore it with the
reason. The decisions are
made here; the effects (Temporal) sit behind :class:`Operations`.

Rules of the intake:
- Only firing alerts start anything. A resolved alert never starts, cancels or aborts anything; it is recorded on
  the group's running operation, if one runs.
- One operation per group at a time (its workflow id): a repeated notification, an HA peer's copy, a retry or a
  second matching alert joins the running operation (recorded on it) instead of starting another.
- A group that moved within its rule's cooldown is not moved again by an alert; the refusal is answered and
  counted.
- The operation is the one the CLI would start; its preflight runs in the worker as always (an unplanned rule is
  still refused while the orchestrator can reach the source).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from orchestrate.alerts.payload import Alert, Notification
from orchestrate.alerts.rules import AlertRule, AlertSettings, Approval, Target
from orchestrate.config import OrchestratorConfig
from workflows.models import AlertNote, FailoverRequest, Operation
from workflows.site.models import SiteFailoverRequest


class Action(StrEnum):
    """What the intake did with one alert."""

    STARTED = "started"
    JOINED = "joined"
    RECORDED = "recorded"
    IGNORED = "ignored"


class Decision(BaseModel):
    """The answer for one alert of a notification."""

    model_config = ConfigDict(frozen=True)

    alertname: str
    fingerprint: str
    status: str
    action: Action
    reason: str
    rule: str | None = None
    group: str | None = None
    site: str | None = None
    workflow_id: str | None = None
    kind: str = Field(default="", exclude=True)
    """A short label of why (the metrics' ``kind``): the action, or for an ignored alert no-rule, resolved,
    cooldown or refused. Not part of the answer: ``reason`` says it in full."""


class Started(BaseModel):
    """What :meth:`Operations.start` did: started a new operation, or found one running and joined it."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    joined: bool


class RefusedError(Exception):
    """The operation could not start for a reason the sender cannot fix by retrying (e.g. a pending fence)."""


AnyRequest = FailoverRequest | SiteFailoverRequest


class Operations(Protocol):
    """The effects the intake needs (Temporal in production, a fake in unit tests)."""

    async def last_move(self, target: Target) -> datetime | None:
        """When the target's last operation that moved something ended (``None``: never, or not on record)."""
        ...

    async def start(self, request: AnyRequest) -> Started:
        """Start the operation, or join the running one (the alert is then recorded on it).

        Raises:
            RefusedError: it may not start now (the message says why).
        """
        ...

    async def record(self, target: Target, note: AlertNote) -> str | None:
        """Record ``note`` on the target's running operation; its workflow id, or ``None`` when none runs."""
        ...


def note_for(alert: Alert, notification: Notification, rule: AlertRule, received_at: datetime) -> AlertNote:
    """The record of ``alert`` the operation keeps."""
    return AlertNote(
        alertname=alert.name,
        fingerprint=alert.fingerprint,
        status=alert.status,
        group_key=notification.group_key,
        receiver=notification.receiver,
        external_url=notification.external_url,
        starts_at=alert.starts_at,
        rule=rule.name,
        received_at=received_at,
    )


def request_for(rule: AlertRule, note: AlertNote, config: OrchestratorConfig) -> AnyRequest:
    """The request an alert matching ``rule`` makes (approval as the rule and the groups' policies say)."""
    unplanned = rule.operation is Operation.UNPLANNED
    triggered_by = f"alertmanager:{note.alertname or note.fingerprint}"
    if rule.group is not None:
        group = config.group(rule.group)
        target = None
        if rule.away_from is not None:
            target = next(c for c in group.clusters if config.cluster(c).site != rule.away_from)
        return FailoverRequest(
            group=rule.group,
            operation=rule.operation,
            target=target,
            approval_required=waits_for_approval(rule, config),
            triggered_by=triggered_by,
            alert=note,
        )
    return SiteFailoverRequest(
        site=rule.site or "",
        operation=rule.operation,
        approval_required=rule.approval is Approval.REQUIRED or (rule.approval is None and unplanned),
        triggered_by=triggered_by,
        alert=note,
    )


def waits_for_approval(rule: AlertRule, config: OrchestratorConfig) -> bool:
    """Whether what the rule starts waits for ``approve`` (for a site: any of its groups)."""
    if rule.approval is Approval.REQUIRED:
        return True
    unplanned = rule.operation is Operation.UNPLANNED
    groups = [config.group(rule.group)] if rule.group is not None else config.groups_in_site(rule.site or "")
    policy = any(g.approval.required(unplanned=unplanned, alert=True) for g in groups)  # the worker enforces it
    return policy or (unplanned and rule.approval is None)


async def take(
    notification: Notification,
    settings: AlertSettings,
    config: OrchestratorConfig,
    operations: Operations,
    *,
    now: datetime | None = None,
) -> list[Decision]:
    """Decide (and do) what each alert of ``notification`` asks for, in order."""
    received_at = now or datetime.now(UTC)
    decisions: list[Decision] = []
    handled: dict[Target, str] = {}
    """Target -> workflow id of what an earlier alert of this notification started or joined."""
    for alert in notification.alerts:
        rule = settings.first_match(alert.labels)
        if rule is None:
            decisions.append(
                Decision(
                    alertname=alert.name,
                    fingerprint=alert.fingerprint,
                    status=alert.status,
                    action=Action.IGNORED,
                    reason="no rule matches its labels",
                    kind="no-rule",
                )
            )
            continue
        note = note_for(alert, notification, rule, received_at)
        action, kind, reason, workflow_id = await _decide(rule, note, config, operations, received_at, handled)
        decisions.append(
            Decision(
                alertname=alert.name,
                fingerprint=alert.fingerprint,
                status=alert.status,
                action=action,
                reason=reason,
                kind=kind or action.value,
                rule=rule.name,
                group=rule.group,
                site=rule.site,
                workflow_id=workflow_id,
            )
        )
    return decisions


async def _decide(
    rule: AlertRule,
    note: AlertNote,
    config: OrchestratorConfig,
    operations: Operations,
    received_at: datetime,
    handled: dict[Target, str],
) -> tuple[Action, str, str, str | None]:
    """What to do with one alert matching ``rule``: (action, kind when ignored, reason, workflow id)."""
    target = rule.target
    if note.status == "resolved":
        recorded = await operations.record(target, note)
        reason = "a resolved alert starts, cancels and aborts nothing"
        if recorded is None:
            return Action.IGNORED, "resolved", f"{reason}; nothing runs for {target}", None
        return Action.RECORDED, "", f"{reason}; recorded on the running operation", recorded
    if target in handled:
        joined = await operations.record(target, note) or handled[target]
        return Action.JOINED, "", "another alert of this notification already started or joined it", joined
    running = await operations.record(target, note)
    if running is not None:
        handled[target] = running
        return Action.JOINED, "", f"an operation already runs on {target}", running
    moved = await operations.last_move(target)
    if moved is not None and received_at - moved < rule.cooldown:
        left = rule.cooldown - (received_at - moved)
        reason = (
            f"{target} moved at {moved:%Y-%m-%d %H:%M:%S} UTC, within rule {rule.name}'s cooldown of "
            f"{_span(rule.cooldown)} ({_span(left)} left); nothing started"
        )
        return Action.IGNORED, "cooldown", reason, None
    try:
        started = await operations.start(request_for(rule, note, config))
    except RefusedError as refused:
        return Action.IGNORED, "refused", f"not started: {refused}", None
    handled[target] = started.workflow_id
    if started.joined:
        return Action.JOINED, "", f"an operation already runs on {target}", started.workflow_id
    waits = " (waits for approval)" if waits_for_approval(rule, config) else ""
    return Action.STARTED, "", f"{rule.operation.value} failover of {target} started{waits}", started.workflow_id


def _span(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return " ".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if v) or "0s"
