"""What one Alertmanager notification does: per alert, start, join, record or ignore (and say why).

For each alert: start the group's failover, join the one running, or ignore it with the reason. The decisions are
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

from pydantic import BaseModel, ConfigDict

from orchestrate.alerts.payload import Alert, Notification
from orchestrate.alerts.rules import AlertRule, AlertSettings, Approval
from orchestrate.config import OrchestratorConfig
from workflows.models import AlertNote, FailoverRequest, Operation


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
    workflow_id: str | None = None


class Started(BaseModel):
    """What :meth:`Operations.start` did: started a new operation, or found one running and joined it."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    joined: bool


class RefusedError(Exception):
    """The operation could not start for a reason the sender cannot fix by retrying (e.g. a pending fence)."""


class Operations(Protocol):
    """The effects the intake needs (Temporal in production, a fake in unit tests)."""

    async def last_move(self, group: str) -> datetime | None:
        """When the group's last operation that moved it ended (``None``: never, or not on record)."""
        ...

    async def start(self, request: FailoverRequest) -> Started:
        """Start the group's operation, or join the running one (the alert is then recorded on it).

        Raises:
            RefusedError: it may not start now (the message says why).
        """
        ...

    async def record(self, group: str, note: AlertNote) -> str | None:
        """Record ``note`` on the group's running operation; its workflow id, or ``None`` when none runs."""
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


def request_for(rule: AlertRule, note: AlertNote, config: OrchestratorConfig) -> FailoverRequest:
    """The failover request an alert matching ``rule`` makes (approval as the rule and the group's policy say)."""
    group = config.group(rule.group)
    if rule.approval is Approval.REQUIRED:
        approval = True
    elif rule.approval is Approval.AUTOMATIC:
        approval = False
    else:
        unplanned = rule.operation is Operation.UNPLANNED
        approval = unplanned or group.approval.required(unplanned=unplanned, alert=True)
    return FailoverRequest(
        group=group.name,
        operation=rule.operation,
        approval_required=approval,
        triggered_by=f"alertmanager:{note.alertname or note.fingerprint}",
        alert=note,
    )


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
    handled: dict[str, str] = {}
    """Group -> workflow id of what an earlier alert of this notification started or joined."""
    for alert in notification.alerts:
        base = {"alertname": alert.name, "fingerprint": alert.fingerprint, "status": alert.status}
        rule = settings.first_match(alert.labels)
        if rule is None:
            decisions.append(Decision(**base, action=Action.IGNORED, reason="no rule matches its labels"))
            continue
        note = note_for(alert, notification, rule, received_at)
        target = {"rule": rule.name, "group": rule.group}
        if alert.status == "resolved":
            recorded = await operations.record(rule.group, note)
            reason = "a resolved alert starts, cancels and aborts nothing"
            if recorded is None:
                decisions.append(Decision(**base, **target, action=Action.IGNORED, reason=f"{reason}; nothing runs"))
            else:
                decisions.append(
                    Decision(
                        **base,
                        **target,
                        action=Action.RECORDED,
                        workflow_id=recorded,
                        reason=f"{reason}; recorded on the running operation",
                    )
                )
            continue
        if rule.group in handled:
            workflow_id = await operations.record(rule.group, note) or handled[rule.group]
            decisions.append(
                Decision(
                    **base,
                    **target,
                    action=Action.JOINED,
                    workflow_id=workflow_id,
                    reason="another alert of this notification already started or joined it",
                )
            )
            continue
        decisions.append(await _fire(rule, note, base, config, operations, received_at, handled))
    return decisions


async def _fire(
    rule: AlertRule,
    note: AlertNote,
    base: dict[str, str],
    config: OrchestratorConfig,
    operations: Operations,
    received_at: datetime,
    handled: dict[str, str],
) -> Decision:
    target = {"rule": rule.name, "group": rule.group}
    running = await operations.record(rule.group, note)
    if running is not None:
        handled[rule.group] = running
        return Decision(
            **base, **target, action=Action.JOINED, workflow_id=running, reason="an operation already runs on it"
        )
    moved = await operations.last_move(rule.group)
    if moved is not None and received_at - moved < rule.cooldown:
        left = rule.cooldown - (received_at - moved)
        return Decision(
            **base,
            **target,
            action=Action.IGNORED,
            reason=f"group {rule.group} moved at {moved:%Y-%m-%d %H:%M:%S} UTC, within rule {rule.name}'s cooldown "
            f"of {_span(rule.cooldown)} ({_span(left)} left); nothing started",
        )
    try:
        started = await operations.start(request_for(rule, note, config))
    except RefusedError as refused:
        return Decision(**base, **target, action=Action.IGNORED, reason=f"not started: {refused}")
    handled[rule.group] = started.workflow_id
    if started.joined:
        return Decision(
            **base,
            **target,
            action=Action.JOINED,
            workflow_id=started.workflow_id,
            reason="an operation already runs on it",
        )
    return Decision(
        **base,
        **target,
        action=Action.STARTED,
        workflow_id=started.workflow_id,
        reason=f"{rule.operation.value} failover of {rule.group} started"
        + (" (waits for approval)" if request_for(rule, note, config).approval_required else ""),
    )


def _span(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return " ".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if v) or "0s"
