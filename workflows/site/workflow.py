"""The site failover workflow (``site-failover/<site>``): every group whose primary is in a site, tier by tier.

The plan comes from the clusters (activity ``plan_site``). Each group moves as a child ``GroupFailover`` with the
id ``failover/<group>``, the same workflow a single-group failover runs, so every safety rule of a group operation
holds here too, and a group can never have two operations at once: a group that already has one running is joined
(its result awaited), not started twice. Children are abandoned, not cancelled, if the site workflow ends: a group
operation is never cut off half-way.

Tiers run in ascending ``priority``; a tier starts once every group of the previous tier has its application
started on the new side or has ended (children report their phase by signal). Within a tier at most ``parallel``
groups are between their start and that same milestone. ``abort`` stops starting groups and returns the running
ones, whose own ``abort`` the client then asks for (each refuses once its promotion is sent, as it does alone).
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows import visibility
    from workflows.failover import GroupFailoverWorkflow, operation_id
    from workflows.failover.workflow import MAX_ALERTS
    from workflows.models import (
        ALERT_SIGNAL,
        GROUP_REPORT_SIGNAL,
        AlertNote,
        FailoverRequest,
        FailoverResult,
        GroupReport,
        Operation,
        Outcome,
        Phase,
    )
    from workflows.site.models import (
        GroupsInput,
        GroupState,
        JoinInput,
        OperationsReport,
        PlannedGroup,
        SiteFailoverRequest,
        SiteFailoverResult,
        SiteGroupProgress,
        SiteInput,
        SitePhase,
        SitePlan,
        SiteProgress,
    )

PLAN_TIMEOUT = timedelta(minutes=2)
GROUP_EXECUTION_TIMEOUT = timedelta(days=30)
JOIN_TIMEOUT = timedelta(days=30)
JOIN_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
SHORT_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))

SEVERITY = (Outcome.SUCCEEDED, Outcome.DRY_RUN, Outcome.REFUSED, Outcome.FAILED_COMPENSATED, Outcome.NEEDS_ATTENTION)
"""Outcomes from best to worst: the site's outcome is the worst of its groups'."""


def site_operation_id(site: str) -> str:
    """The id of a site's failover."""
    return f"site-failover/{site}"


@workflow.defn(name="SiteFailover")
class SiteFailoverWorkflow:
    """Move every group whose primary is in a site to its other cluster."""

    def __init__(self) -> None:
        self._site = ""
        self._phase = SitePhase.PLANNING
        self._message = "observing the site's groups"
        self._operation: Operation | None = None
        self._parallel = 0
        self._plan: SitePlan | None = None
        self._groups: dict[str, SiteGroupProgress] = {}
        self._tiers: tuple[int, ...] = ()
        self._current_tier: int | None = None
        self._in_flight = 0
        self._aborted_by: str | None = None
        self._busy: set[str] = set()
        self._last_sync_seen: dict[str, datetime] = {}
        self._started: datetime | None = None
        self._triggered_by = ""
        self._alerts: list[AlertNote] = []

    # ----------------------------------------------------------------------------------------- messages

    @workflow.query
    def progress(self) -> SiteProgress:
        """The whole site: every group's tier, state, phase and outcome."""
        return SiteProgress(
            site=self._site,
            phase=self._phase,
            message=self._message,
            operation=self._operation,
            parallel=self._parallel,
            tiers=self._tiers,
            current_tier=self._current_tier,
            groups=tuple(self._groups.values()),
            skipped=self._plan.skipped if self._plan else (),
            aborted_by=self._aborted_by,
            started=self._started,
            triggered_by=self._triggered_by,
            alerts=tuple(self._alerts),
        )

    @workflow.signal(name=ALERT_SIGNAL)
    def alert(self, note: AlertNote) -> None:
        """Record an alert that joined the site failover or resolved while it ran (it changes nothing else)."""
        if len(self._alerts) < MAX_ALERTS:
            self._alerts.append(note)

    @workflow.signal(name=GROUP_REPORT_SIGNAL)
    def group_report(self, report: GroupReport) -> None:
        """A child's phase (and whether its application runs on the new side)."""
        entry = self._groups.get(report.group)
        if entry is None or entry.state is GroupState.ENDED:
            return
        self._update(
            report.group,
            phase=report.phase,
            message=report.message,
            application_started=entry.application_started or report.application_started,
        )

    @workflow.update
    def abort(self, requester: str) -> list[str]:
        """Start no more groups; the groups still moving (whose own ``abort`` the caller asks for next)."""
        self._aborted_by = requester
        self._message = f"aborted by {requester}: no more groups start; the running ones are asked to abort"
        return [g.group for g in self._groups.values() if g.state in (GroupState.RUNNING, GroupState.JOINED)]

    @abort.validator
    def _validate_abort(self, requester: str) -> None:
        if self._phase is SitePhase.ENDED:
            raise ValueError("the site failover has already ended")
        if self._aborted_by:
            raise ValueError(f"already aborted by {self._aborted_by}")

    # ----------------------------------------------------------------------------------------- run

    @workflow.run
    async def run(self, request: SiteFailoverRequest) -> SiteFailoverResult:
        """Plan, then move the groups tier by tier; the result has every group's outcome."""
        self._site, self._parallel = request.site, max(1, request.parallel)
        self._started = workflow.now()
        self._triggered_by = request.triggered_by
        self._alerts[:0] = [request.alert] if request.alert is not None else []
        try:
            plan: SitePlan = await workflow.execute_activity(
                "plan_site",
                SiteInput(site=request.site, to_site=request.to_site),
                result_type=SitePlan,
                start_to_close_timeout=PLAN_TIMEOUT,
                retry_policy=SHORT_RETRY,
            )
        except ActivityError as error:
            cause = error.cause or error
            return self._end(Outcome.REFUSED, f"could not observe the site, nothing was changed: {cause}")
        self._plan = plan
        refusal = self._choose_operation(request, plan)
        if refusal is not None:
            return self._end(Outcome.REFUSED, refusal)
        if not plan.groups:
            attention = [s for s in plan.skipped if s.attention]
            outcome = Outcome.NEEDS_ATTENTION if attention else Outcome.SUCCEEDED
            return self._end(outcome, f"nothing to move: no group has its primary in {request.site}")
        await self._register(plan)
        self._phase = SitePhase.MOVING
        self._message = f"{self._operation.value if self._operation else ''} failover of {len(plan.groups)} group(s)"
        moves: list[asyncio.Task[None]] = []
        for tier in self._tiers:
            if self._aborted_by:
                break
            self._current_tier = tier
            members = [g for g in plan.groups if g.priority == tier]
            moves += [asyncio.create_task(self._move(g, request)) for g in members]
            await workflow.wait_condition(functools.partial(self._tier_done, tuple(g.group for g in members)))
        await asyncio.gather(*moves)
        for entry in list(self._groups.values()):
            if entry.state is GroupState.WAITING:
                self._update(entry.group, state=GroupState.NOT_STARTED, message=f"aborted by {self._aborted_by}")
        return self._summarise()

    def _choose_operation(self, request: SiteFailoverRequest, plan: SitePlan) -> str | None:
        if not plan.clusters:
            return f"unknown site {request.site!r}: no configured cluster is in it"
        if request.operation is Operation.PLANNED and not plan.site_answers:
            return (
                f"no cluster of {request.site} answers ({', '.join(plan.clusters)}): a planned failover needs the "
                "site; if it is lost, run an unplanned one (--unplanned)"
            )
        self._operation = request.operation or (Operation.PLANNED if plan.site_answers else Operation.UNPLANNED)
        return None

    async def _register(self, plan: SitePlan) -> None:
        """One progress entry per group; groups with a pending fence are refused, busy ones will be joined."""
        operations: OperationsReport = await workflow.execute_activity(
            "group_operations",
            GroupsInput(groups=tuple(g.group for g in plan.groups)),
            result_type=OperationsReport,
            start_to_close_timeout=PLAN_TIMEOUT,
            retry_policy=SHORT_RETRY,
        )
        for planned in plan.groups:
            entry = SiteGroupProgress(
                group=planned.group,
                backend=planned.backend,
                tier=planned.priority,
                source=planned.source,
                target=planned.target,
                workflow_id=operation_id(planned.group),
            )
            if planned.group in operations.fence_pending:
                entry = entry.model_copy(
                    update={
                        "state": GroupState.NOT_STARTED,
                        "outcome": Outcome.REFUSED,
                        "message": "its old primary is not fenced yet: see "
                        f"`orchestrate status --group {planned.group}`",
                    }
                )
            self._groups[planned.group] = entry
        self._busy = set(operations.busy)
        self._last_sync_seen = dict(operations.last_sync_seen)
        self._tiers = tuple(sorted({g.priority for g in plan.groups}))

    def _tier_done(self, groups: tuple[str, ...]) -> bool:
        """Every group has its application started on the new side, or has ended (or will not start)."""
        return all(
            self._groups[g].application_started or self._groups[g].state in (GroupState.ENDED, GroupState.NOT_STARTED)
            for g in groups
        )

    def _update(self, group: str, **changes: object) -> None:
        self._groups[group] = self._groups[group].model_copy(update=changes)

    # ----------------------------------------------------------------------------------------- one group

    async def _move(self, planned: PlannedGroup, request: SiteFailoverRequest) -> None:
        """Move one group (or join its running operation) and record how it ended."""
        name = planned.group
        if self._groups[name].state is GroupState.NOT_STARTED:
            return
        # Several waiters may wake on the same free slot: the one that runs first takes it, the others wait again.
        while not (self._in_flight < self._parallel or self._aborted_by):
            await workflow.wait_condition(lambda: self._in_flight < self._parallel or self._aborted_by is not None)
        if self._aborted_by:
            self._update(name, state=GroupState.NOT_STARTED, message=f"not started: aborted by {self._aborted_by}")
            return
        self._in_flight += 1
        self._update(name, state=GroupState.RUNNING, started=workflow.now(), message="starting")
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._in_flight -= 1

        try:
            gate = asyncio.create_task(workflow.wait_condition(lambda: self._groups[name].application_started))
            outcome = asyncio.create_task(self._run_group(planned, request))
            await workflow.wait([gate, outcome], return_when=asyncio.FIRST_COMPLETED)
            release()
            result = await outcome
            gate.cancel()
        finally:
            release()
        self._record(name, result)

    async def _run_group(self, planned: PlannedGroup, request: SiteFailoverRequest) -> FailoverResult | str:
        """The child's result, the joined operation's, or why neither could be had."""
        name = planned.group
        if name not in self._busy:
            try:
                handle = await workflow.start_child_workflow(
                    GroupFailoverWorkflow.run,
                    self._child_request(planned, request),
                    id=operation_id(name),
                    parent_close_policy=ParentClosePolicy.ABANDON,
                    execution_timeout=GROUP_EXECUTION_TIMEOUT,
                    search_attributes=self._child_attributes(planned, request),
                    static_summary=f"{self._operation_name()} failover of {name} (site failover of {self._site})",
                )
            except WorkflowAlreadyStartedError:
                pass  # started meanwhile by someone else: join it
            else:
                try:
                    return await handle
                except ChildWorkflowError as error:  # terminated or timed out: it never returned a result
                    return f"the group's operation ended without a result: {error.cause or error}"
        self._update(name, state=GroupState.JOINED, message="joined the operation already running on the group")
        try:
            joined: FailoverResult = await workflow.execute_activity(
                "wait_group_operation",
                JoinInput(group=name),
                result_type=FailoverResult,
                start_to_close_timeout=JOIN_TIMEOUT,
                heartbeat_timeout=JOIN_HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(non_retryable_error_types=["JoinedOperationFailed"]),
            )
        except ActivityError as error:
            return f"the joined operation could not be followed: {error.cause or error}"
        return joined

    def _operation_name(self) -> str:
        return self._operation.value if self._operation else "planned"

    def _child_request(self, planned: PlannedGroup, request: SiteFailoverRequest) -> FailoverRequest:
        return FailoverRequest(
            group=planned.group,
            operation=self._operation or Operation.PLANNED,
            target=planned.target,
            force=request.force,
            dry_run=request.dry_run,
            triggered_by=f"{site_operation_id(self._site)} ({request.triggered_by})",
            last_sync_seen=self._last_sync_seen.get(planned.group) if self._operation is Operation.UNPLANNED else None,
            approval_required=request.approval_required,
            alert=request.alert,
        )

    def _child_attributes(self, planned: PlannedGroup, request: SiteFailoverRequest) -> TypedSearchAttributes:
        triggered_by = f"{site_operation_id(self._site)} ({request.triggered_by})"
        return TypedSearchAttributes(
            [
                SearchAttributePair(visibility.GROUP, planned.group),
                SearchAttributePair(visibility.SITE, self._site),
                SearchAttributePair(visibility.OPERATION, self._operation_name()),
                SearchAttributePair(visibility.PHASE, Phase.PREFLIGHT.value),
                SearchAttributePair(visibility.TRIGGERED_BY, triggered_by),
            ]
        )

    def _record(self, name: str, result: FailoverResult | str) -> None:
        if isinstance(result, str):
            self._update(
                name, state=GroupState.ENDED, ended=workflow.now(), outcome=Outcome.NEEDS_ATTENTION, message=result
            )
            return
        progress = result.progress
        self._update(
            name,
            state=GroupState.ENDED,
            ended=workflow.now(),
            outcome=result.outcome,
            phase=progress.phase,
            message=result.message,
            data_loss_window_seconds=progress.data_loss_window_seconds,
            findings=progress.findings,
        )

    # ----------------------------------------------------------------------------------------- the end

    def _summarise(self) -> SiteFailoverResult:
        entries = list(self._groups.values())
        worst = max((e.outcome or Outcome.REFUSED for e in entries), key=SEVERITY.index, default=Outcome.SUCCEEDED)
        if self._plan is not None and any(s.attention for s in self._plan.skipped):
            worst = max(worst, Outcome.NEEDS_ATTENTION, key=SEVERITY.index)
        tally = self.progress().counts()
        counts = ", ".join(f"{n} {k}" for k, n in sorted(tally.items()))
        kind = "dry run of the site failover" if any(e.outcome is Outcome.DRY_RUN for e in entries) else "site failover"
        aborted = f"; aborted by {self._aborted_by}" if self._aborted_by else ""
        return self._end(worst, f"{kind} of {self._site} ({self._operation_name()}): {counts}{aborted}")

    def _end(self, outcome: Outcome, message: str) -> SiteFailoverResult:
        self._phase = SitePhase.ENDED
        self._current_tier = None
        self._message = message
        return SiteFailoverResult(outcome=outcome, message=message, progress=self.progress())
