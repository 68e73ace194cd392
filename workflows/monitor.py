"""The group monitor workflow: remembers the last completed sync seen on a group's primary.

csi-addons and unified report ``lastSyncTime`` on the primary side only, so once the primary's site is lost
nobody can read it any more. The monitor (workflow id ``monitor/<group>``, started by every worker) observes both
sides every ``monitor_interval`` and keeps the newest sync time; an unplanned failover reads it to report its
data-loss window. A new primary (after any failover) starts the memory afresh: a sync in the old direction
measures nothing about the new one. It continues as new every 50 observations to keep its history short.

It follows the worker's configuration: the group is resolved by name before every observation (a changed
interval or replication object takes effect at the next one), and the monitor ends when the group is removed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from workflows import metrics
    from workflows.groups import GroupConfig
    from workflows.models import Frozen, ResolveInput, RolesInput, RolesReport

OBSERVATIONS_PER_RUN = 50
"""About 500 events and 150 KB of history: a worker that takes the monitor over replays it in well under a second
(300 observations made ~1 MB histories whose replay took 7 s per monitor after a worker restart in CI)."""

OBSERVATIONS_PER_RUN_BEFORE_PATCH = 300
"""What runs started before the ``monitor-shorter-runs`` patch keep, so that their replay stays deterministic."""

SHORTER_RUNS_PATCH = "monitor-shorter-runs"


def monitor_id(group: str) -> str:
    """The id of a group's monitor."""
    return f"monitor/{group}"


class MonitorInput(Frozen):
    """The monitor's input (and what it carries across continue-as-new)."""

    group: str
    last_sync_seen: datetime | None = None
    primary: str | None = None


class MonitorState(Frozen):
    """The answer of the ``seen`` query."""

    group: str
    last_sync_seen: datetime | None
    primary: str | None
    observed_at: datetime | None
    unreachable: tuple[str, ...] = ()


@workflow.defn(name="GroupMonitor")
class GroupMonitorWorkflow:
    """Observe a group periodically and remember its last sync."""

    def __init__(self) -> None:
        self._state: MonitorState | None = None

    @workflow.query
    def seen(self) -> MonitorState | None:
        """The newest observation."""
        return self._state

    @workflow.run
    async def run(self, request: MonitorInput) -> None:
        """Observe until continue-as-new."""
        last_sync, primary = request.last_sync_seen, request.primary
        self._state = MonitorState(group=request.group, last_sync_seen=last_sync, primary=primary, observed_at=None)
        interval = timedelta(seconds=30)
        runs = OBSERVATIONS_PER_RUN if workflow.patched(SHORTER_RUNS_PATCH) else OBSERVATIONS_PER_RUN_BEFORE_PATCH
        for _ in range(runs):
            try:
                group: GroupConfig = await workflow.execute_local_activity(
                    "resolve_group",
                    ResolveInput(group=request.group),
                    result_type=GroupConfig,
                    start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
                interval = group.monitor_interval
            except ActivityError as error:
                if isinstance(error.cause, ApplicationError) and error.cause.non_retryable:
                    return  # the group was removed from the configuration
            except ApplicationError as error:  # local activities raise the cause itself
                if error.non_retryable:
                    return
            try:
                report: RolesReport = await workflow.execute_activity(
                    "observe_roles",
                    RolesInput(group=request.group, skip_silent=True),
                    result_type=RolesReport,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
            except ActivityError as error:  # one failed observation changes nothing; the next one may succeed
                if isinstance(error.cause, CancelledError):
                    raise  # the monitor itself is being cancelled
                report = RolesReport(statuses={})
            primaries = report.primaries()
            if len(primaries) == 1:
                if primary is not None and primaries[0] != primary:
                    # The remembered sync shipped data the other way: it says nothing of what the new primary's
                    # peer holds, and kept it would overstate the next unplanned failover's data-loss window.
                    last_sync = None
                primary = primaries[0]
            times = [s.last_sync_time for s in report.statuses.values() if s.last_sync_time is not None]
            if times:
                last_sync = max([*times, *([last_sync] if last_sync else [])])
            if last_sync is not None:
                metrics.replication_lag(request.group, max(0.0, (workflow.now() - last_sync).total_seconds()))
            metrics.reachability(request.group, sorted({*report.statuses, *report.errors}), list(report.unreachable))
            self._state = MonitorState(
                group=request.group,
                last_sync_seen=last_sync,
                primary=primary,
                observed_at=workflow.now(),
                unreachable=report.unreachable,
            )
            await workflow.sleep(interval, summary="next observation")
        workflow.continue_as_new(MonitorInput(group=request.group, last_sync_seen=last_sync, primary=primary))
