"""The group failover workflow: planned failover, unplanned failover with fence-on-return, and failback.

Shape (DESIGN.md section 2): roles -> preflight -> approval -> pre-hooks -> quiesce -> demote -> final sync ->
promote -> start -> post-hooks -> reprotect. Every forward step before the promotion pushes its undo onto a saga;
a failure, an ``abort`` or a cancellation in those steps runs the undos newest first and the workflow ends
"failed and compensated". Once the target is promoted the new side holds the data: later failures are retried and
then surfaced for the operator ("needs attention"), never rolled back into a second primary.

Activities run one attempt at a time under the workflow's own retry loop, so the ``progress`` query can show
each step's attempts and last error while it is still retrying; a worker lost mid-step shows up as a heartbeat
timeout, which is retryable: the retry resumes the (idempotent) step on another worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from adapters.base import ReplicationStatus, Role, SyncPoint
    from workflows import visibility
    from workflows.groups import GroupConfig
    from workflows.models import (
        FailoverRequest,
        FailoverResult,
        Finding,
        GroupOnCluster,
        HookInput,
        Operation,
        Outcome,
        PairInput,
        Phase,
        PreflightInput,
        PreflightReport,
        Progress,
        PromoteInput,
        ReprotectInput,
        RolesInput,
        RolesReport,
        ScaleInput,
        StepRecord,
        WaitInput,
        WorkloadsSnapshot,
    )

T = TypeVar("T")

HEARTBEAT_TIMEOUT = timedelta(seconds=10)
"""A worker that dies mid-wait is noticed after this long and the wait resumes on another worker."""
SHORT_STEP = timedelta(seconds=60)
"""Start-to-close timeout of one attempt of a step that only reads or writes a few objects."""
RETRY_BACKOFF = (timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=5), timedelta(seconds=10))
LOCAL_ACTIVITIES = frozenset(
    {
        "observe_roles",
        "preflight",
        "check_reachable",
        "stop_workloads",
        "start_workloads",
        "demote",
        "promote",
        "reprotect",
    }
)
"""Steps of a few API calls: run as local activities in the workflow's worker, without a task-queue round trip.
Waits stay ordinary activities: they heartbeat, and another worker resumes them after a crash."""
MAX_ATTEMPTS = 5
"""Attempts of a step whose errors are retryable, before the workflow gives up on it."""


class StepFailedError(Exception):
    """A forward step failed for good: the message names the step, the cluster and the cause."""

    def __init__(self, step: str, cluster: str | None, cause: str, error_type: str | None) -> None:
        self.step = step
        self.cluster = cluster
        self.cause = cause
        self.error_type = error_type
        where = f" on {cluster}" if cluster else ""
        super().__init__(f"step '{step}'{where} failed: {cause}")


class AbortedError(Exception):
    """The operator aborted the operation."""


@dataclass
class _Step:
    name: str
    cluster: str | None
    started: datetime
    ended: datetime | None = None
    attempts: int = 0
    outcome: str = "running"
    detail: str = ""
    last_error: str | None = None

    def record(self) -> StepRecord:
        return StepRecord(
            name=self.name,
            cluster=self.cluster,
            started=self.started,
            ended=self.ended,
            attempts=self.attempts,
            outcome=self.outcome,
            detail=self.detail,
            last_error=self.last_error,
        )


@dataclass
class _Saga:
    undo: list[tuple[str, Callable[[], Awaitable[None]]]] = field(default_factory=list)

    def push(self, name: str, action: Callable[[], Awaitable[None]]) -> None:
        self.undo.append((name, action))


@workflow.defn(name="GroupFailover")
class GroupFailoverWorkflow:
    """Move one protection group's primary to the other cluster."""

    def __init__(self) -> None:
        self._request: FailoverRequest | None = None
        self._phase = Phase.PREFLIGHT
        self._message = "starting"
        self._source: str | None = None
        self._target: str | None = None
        self._steps: list[_Step] = []
        self._findings: tuple[Finding, ...] = ()
        self._lag: float | None = None
        self._loss_window: float | None = None
        self._last_sync: datetime | None = None
        self._approval_pending = False
        self._approved_by: str | None = None
        self._aborted_by: str | None = None
        self._point_of_no_return = False
        self._compensated: list[str] = []
        self._current: workflow.ActivityHandle[Any] | None = None
        self._finished = False

    # ----------------------------------------------------------------------------------------- messages

    @workflow.query
    def progress(self) -> Progress:
        """Phase, steps, findings, lag and data-loss window."""
        request = self._require_request()
        return Progress(
            group=request.group.name,
            operation=request.operation,
            source=self._source,
            target=self._target,
            phase=self._phase,
            message=self._message,
            steps=tuple(step.record() for step in self._steps),
            findings=self._findings,
            lag_seconds=self._lag,
            rpo_seconds=request.group.rpo.total_seconds(),
            data_loss_window_seconds=self._loss_window,
            last_sync_seen=self._last_sync,
            approval_pending=self._approval_pending,
            approved_by=self._approved_by,
            aborted_by=self._aborted_by,
            compensated=tuple(self._compensated),
        )

    @workflow.update
    def approve(self, approver: str) -> str:
        """Let an operation that waits for approval go on."""
        self._approved_by = approver
        self._approval_pending = False
        return f"approved by {approver}"

    @approve.validator
    def _validate_approve(self, approver: str) -> None:
        if not self._approval_pending:
            raise ValueError(f"nothing to approve: the operation is in phase {self._phase.value}")

    @workflow.update
    def abort(self, requester: str) -> str:
        """Stop the operation; what was done so far is undone (before the target's promotion only)."""
        self._aborted_by = requester
        self._approval_pending = False
        if self._current is not None:
            self._current.cancel()
        return f"abort requested by {requester}: compensating"

    @abort.validator
    def _validate_abort(self, requester: str) -> None:
        if self._finished:
            raise ValueError("the operation has already finished")
        if self._point_of_no_return:
            raise ValueError(
                f"too late to abort: {self._target} is already promoted and holds the data; "
                "the operation will finish (or wait for you) on the new primary"
            )
        if self._aborted_by:
            raise ValueError(f"already aborted by {self._aborted_by}")

    # ----------------------------------------------------------------------------------------- run

    @workflow.run
    async def run(self, request: FailoverRequest) -> FailoverResult:
        """Run the operation and report how it ended."""
        self._request = request
        try:
            result = await self._run(request)
        finally:
            self._finished = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _run(self, request: FailoverRequest) -> FailoverResult:
        roles = await self._step("observe roles", None, "observe_roles", RolesInput(group=request.group))
        refusal = self._choose_sides(request, roles)
        if refusal:
            return self._end(Outcome.REFUSED, Phase.REFUSED, refusal)
        assert self._source is not None and self._target is not None
        source, target = self._source, self._target

        report: PreflightReport = await self._step(
            "preflight",
            None,
            "preflight",
            PreflightInput(
                group=request.group,
                operation=self._effective_operation(request),
                source=source,
                target=target,
                force=request.force,
            ),
            timeout=request.group.timeouts.preflight,
        )
        self._findings = report.findings
        self._lag = report.lag_seconds
        if report.refused:
            failed = "; ".join(
                f"{f.check}: {f.observed}" + (f" ({f.remedy})" if f.remedy else "")
                for f in report.findings
                if f.verdict.value == "fail"
            )
            return self._end(Outcome.REFUSED, Phase.REFUSED, f"refused by preflight: {failed}")
        if request.dry_run:
            return self._end(
                Outcome.DRY_RUN,
                Phase.DRY_RUN,
                f"dry run: preflight passed; would move {request.group.name} from {source} to {target}",
            )

        if request.approval_required:
            self._set_phase(Phase.WAITING_FOR_APPROVAL, "waiting for `orchestrate approve` (or `abort`)")
            self._approval_pending = True
            await workflow.wait_condition(lambda: not self._approval_pending)
            if self._aborted_by:
                return self._end(
                    Outcome.FAILED_COMPENSATED, Phase.ABORTED, f"aborted by {self._aborted_by} before any change"
                )

        if self._effective_operation(request) is Operation.UNPLANNED:
            return await self._unplanned(request, source, target, report)
        return await self._planned(request, source, target)

    def _effective_operation(self, request: FailoverRequest) -> Operation:
        return Operation.UNPLANNED if request.operation is Operation.UNPLANNED else Operation.PLANNED

    def _choose_sides(self, request: FailoverRequest, roles: RolesReport) -> str | None:
        """Pick source and target from the observed roles; return a refusal message when impossible."""
        clusters = request.group.clusters
        if request.target is not None and request.target not in clusters:
            return f"unknown target {request.target!r}: group {request.group.name} lives on {', '.join(clusters)}"
        primaries = roles.primaries()
        if roles.unreachable and request.operation is not Operation.UNPLANNED:
            lost = ", ".join(roles.unreachable)
            return (
                f"{lost} does not answer: a planned failover needs both sites; if {lost} is lost, run "
                f"`orchestrate failover --group {request.group.name} --unplanned`"
            )
        if request.operation is Operation.UNPLANNED:
            target = request.target
            if target is None:
                candidates = [c for c in clusters if c not in primaries and c not in roles.unreachable]
                if len(candidates) != 1:
                    return "cannot tell which cluster to promote: pass --to CLUSTER"
                target = candidates[0]
            self._target, self._source = target, request.group.peer_of(target)
            return None
        if len(primaries) != 1:
            seen = ", ".join(f"{c}: {s.role.value}" for c, s in sorted(roles.statuses.items()))
            unreachable = f"; unreachable: {', '.join(roles.unreachable)}" if roles.unreachable else ""
            return f"expected exactly one Primary, observed {seen or 'none'}{unreachable}"
        source = primaries[0]
        target = request.target or request.group.peer_of(source)
        if target == source:
            return f"{request.group.name} already runs on {target}: nothing to do"
        self._source, self._target = source, target
        return None

    # ----------------------------------------------------------------------------------------- planned

    async def _planned(self, request: FailoverRequest, source: str, target: str) -> FailoverResult:
        group = request.group
        saga = _Saga()
        try:
            self._check_abort()
            await self._hooks(request, "pre", source, target)

            self._set_phase(Phase.QUIESCING, f"stopping workloads on {source}")
            snapshot: WorkloadsSnapshot = await self._step(
                "stop workloads",
                source,
                "stop_workloads",
                GroupOnCluster(group=group, cluster=source),
                cancellable=False,
            )
            saga.push(f"restart workloads on {source}", lambda: self._restart(request, source, snapshot))
            await self._wait(
                "wait for volumes released", source, "wait_volumes_released", group, group.timeouts.quiesce
            )

            self._set_phase(Phase.DEMOTING, f"demoting {source}")
            sync_point: SyncPoint | None = await self._step(
                "prepare sync point",
                source,
                "prepare_sync_point",
                GroupOnCluster(group=group, cluster=source),
                timeout=group.timeouts.demote,
            )
            saga.push(f"re-promote {source}", lambda: self._repromote(request, source, target))
            await self._step(
                "demote", source, "demote", PairInput(group=group, cluster=source, peer=target), cancellable=False
            )

            self._set_phase(Phase.WAITING_FOR_FINAL_SYNC, f"waiting for the final sync from {source}")
            await self._wait("wait for final sync", source, "wait_final_sync", group, group.timeouts.final_sync)

            self._set_phase(Phase.PROMOTING, f"promoting {target}")
            saga.push(f"return {target} to Secondary", lambda: self._redemote(request, target, source))
            await self._step(
                "promote",
                target,
                "promote",
                PromoteInput(group=group, cluster=target, peer=source, force=False, sync_point=sync_point),
                cancellable=False,
            )
            await self._wait("wait for promotion", target, "wait_promoted", group, group.timeouts.promote)
        except (StepFailedError, AbortedError, asyncio.CancelledError) as failure:
            return await self._compensate(saga, failure)

        self._point_of_no_return = True
        return await self._after_promotion(
            request, source, target, snapshot.replicas, Phase.RELOCATED, reprotect_resync=False
        )

    async def _after_promotion(
        self,
        request: FailoverRequest,
        source: str,
        target: str,
        replicas: dict[str, int],
        final_phase: Phase,
        *,
        reprotect_resync: bool,
        source_lost: bool = False,
    ) -> FailoverResult:
        group = request.group
        reprotect_first = not source_lost and group.backend.old_source_primary_until_reprotect
        try:
            if reprotect_first:
                await self._reprotect(request, source, target, resync=reprotect_resync)
            self._set_phase(Phase.STARTING, f"starting workloads on {target}")
            await self._step(
                "start workloads", target, "start_workloads", ScaleInput(group=group, cluster=target, replicas=replicas)
            )
            await self._wait("wait for workloads ready", target, "wait_workloads_ready", group, group.timeouts.start)
            await self._hooks(request, "post", source, target)
            if source_lost:
                await self._fence_on_return(request, source, target)
            elif not reprotect_first:
                await self._reprotect(request, source, target, resync=reprotect_resync)
        except StepFailedError as failure:
            return self._end(
                Outcome.NEEDS_ATTENTION,
                Phase.NEEDS_ATTENTION,
                f"{target} is Primary and holds the data, but {failure}; fix it and re-run the step "
                f"(`orchestrate status --group {group.name}` shows what is left)",
            )
        verb = "relocated" if final_phase is Phase.RELOCATED else "failed over"
        loss = f"; data-loss window {self._loss_window:.1f}s" if self._loss_window is not None else ""
        return self._end(Outcome.SUCCEEDED, final_phase, f"{group.name} {verb} from {source} to {target}{loss}")

    async def _reprotect(self, request: FailoverRequest, source: str, target: str, *, resync: bool) -> None:
        group = request.group
        self._set_phase(Phase.REPROTECTING, f"{source} follows {target}")
        await self._step(
            "reprotect", source, "reprotect", ReprotectInput(group=group, cluster=source, peer=target, resync=resync)
        )
        await self._wait("wait for resync", source, "wait_resync", group, group.timeouts.reprotect)

    # ----------------------------------------------------------------------------------------- unplanned

    async def _unplanned(
        self, request: FailoverRequest, source: str, target: str, report: PreflightReport
    ) -> FailoverResult:
        group = request.group
        try:
            if report.source_reachable:
                # Forced while the source answers: its workloads must stop before the target starts.
                self._set_phase(Phase.QUIESCING, f"stopping workloads on {source} (it still answers)")
                await self._step(
                    "stop workloads",
                    source,
                    "stop_workloads",
                    GroupOnCluster(group=group, cluster=source),
                    cancellable=False,
                )
            self._set_phase(Phase.PROMOTING, f"promoting {target} (unplanned: {source} is lost)")
            # The window is measured at the promotion: what the target holds then is what survives.
            self._last_sync = self._last_sync_seen(report, request)
            if self._last_sync is not None:
                self._loss_window = max(0.0, (workflow.now() - self._last_sync).total_seconds())
            await self._step(
                "promote",
                target,
                "promote",
                PromoteInput(group=group, cluster=target, peer=source, force=True),
                cancellable=False,
            )
            self._point_of_no_return = True
            await self._wait("wait for promotion", target, "wait_promoted", group, group.timeouts.promote)
        except StepFailedError as failure:
            return self._end(
                Outcome.NEEDS_ATTENTION,
                Phase.NEEDS_ATTENTION,
                f"unplanned failover of {group.name} to {target} did not complete: {failure}",
            )
        replicas = {w.name: w.replicas for w in group.workloads}
        return await self._after_promotion(
            request,
            source,
            target,
            replicas,
            Phase.FAILED_OVER,
            reprotect_resync=True,
            source_lost=not report.source_reachable,
        )

    @staticmethod
    def _last_sync_seen(report: PreflightReport, request: FailoverRequest) -> datetime | None:
        """The newest completed sync anyone saw: the sides' own reports, or the group monitor's memory."""
        times = [
            s.last_sync_time
            for s in (report.source_status, report.target_status)
            if s is not None and s.last_sync_time is not None
        ]
        if request.last_sync_seen is not None:
            times.append(request.last_sync_seen)
        return max(times) if times else None

    async def _fence_on_return(self, request: FailoverRequest, source: str, target: str) -> None:
        """Wait (durably, with backoff) until the old primary answers, then stop and demote it with resync."""
        self._set_phase(Phase.FENCING_ON_RETURN, f"waiting for {source} to return, to fence it")
        delay = request.fence_poll_initial
        probe = GroupOnCluster(group=request.group, cluster=source)
        while not await self._step("probe old primary", source, "check_reachable", probe):
            self._message = f"{source} still unreachable; next probe in {delay.total_seconds():.0f}s"
            await workflow.sleep(delay, summary=f"wait for {source} to return")
            delay = min(delay * 2, request.fence_poll_max)
        self._message = f"{source} is back: stopping its workloads and demoting it with resync"
        await self._step("stop workloads on returning site", source, "stop_workloads", probe)
        await self._wait(
            "wait for volumes released", source, "wait_volumes_released", request.group, request.group.timeouts.quiesce
        )
        await self._reprotect(request, source, target, resync=True)

    # ----------------------------------------------------------------------------------------- compensation

    async def _restart(self, request: FailoverRequest, cluster: str, snapshot: WorkloadsSnapshot) -> None:
        await self._step(
            "restart workloads",
            cluster,
            "start_workloads",
            ScaleInput(group=request.group, cluster=cluster, replicas=snapshot.replicas),
            cancellable=False,
        )
        await self._wait(
            "wait for workloads ready",
            cluster,
            "wait_workloads_ready",
            request.group,
            request.group.timeouts.start,
            cancellable=False,
        )

    async def _repromote(self, request: FailoverRequest, source: str, target: str) -> None:
        await self._step(
            "re-promote",
            source,
            "promote",
            PromoteInput(group=request.group, cluster=source, peer=target, force=False),
            cancellable=False,
        )
        await self._wait(
            "wait for re-promotion",
            source,
            "wait_promoted",
            request.group,
            request.group.timeouts.promote,
            cancellable=False,
        )

    async def _redemote(self, request: FailoverRequest, target: str, source: str) -> None:
        await self._step(
            "return to Secondary",
            target,
            "reprotect",
            ReprotectInput(group=request.group, cluster=target, peer=source, resync=False),
            cancellable=False,
        )

    async def _compensate(self, saga: _Saga, failure: BaseException) -> FailoverResult:
        cancelled = isinstance(failure, asyncio.CancelledError)
        if isinstance(failure, AbortedError) or self._aborted_by:
            cause = f"aborted by {self._aborted_by}"
        elif cancelled:
            cause = "the workflow was cancelled"
        else:
            cause = str(failure)
        self._set_phase(Phase.COMPENSATING, f"{cause}; undoing {len(saga.undo)} step(s)")
        problems: list[str] = []
        for name, undo in reversed(saga.undo):
            try:
                # Shielded: a cancelled workflow must still put the source back.
                await asyncio.shield(asyncio.ensure_future(undo()))
                self._compensated.append(name)
            except StepFailedError as error:
                problems.append(f"{name}: {error}")
        if problems:
            return self._end(
                Outcome.NEEDS_ATTENTION,
                Phase.NEEDS_ATTENTION,
                f"{cause}; compensation incomplete: {'; '.join(problems)}",
            )
        undone = ", ".join(self._compensated) or "nothing to undo"
        phase = Phase.ABORTED if self._aborted_by else Phase.FAILED_COMPENSATED
        result = self._end(Outcome.FAILED_COMPENSATED, phase, f"{cause}; undone: {undone}")
        if cancelled:
            raise failure
        return result

    def _check_abort(self) -> None:
        if self._aborted_by:
            raise AbortedError(self._aborted_by)

    # ----------------------------------------------------------------------------------------- steps

    async def _hooks(self, request: FailoverRequest, stage: str, source: str, target: str) -> None:
        hooks = request.group.hooks.pre if stage == "pre" else request.group.hooks.post
        if not hooks:
            return
        self._set_phase(Phase.PRE_HOOKS if stage == "pre" else Phase.POST_HOOKS, f"running {stage}-hooks")
        for hook in hooks:
            await self._step(
                f"{stage}-hook {hook.name}",
                None,
                "run_hook",
                HookInput(group=request.group, hook_name=hook.name, stage=stage, source=source, target=target),
                timeout=request.group.timeouts.hooks,
            )

    async def _wait(
        self,
        name: str,
        cluster: str,
        activity: str,
        group: GroupConfig,
        timeout: timedelta,
        *,
        cancellable: bool = True,
    ) -> Any:
        """A heartbeating wait on ``cluster`` whose attempt lasts as long as its own deadline."""
        wait = WaitInput(group=group, cluster=cluster, timeout=timeout)
        return await self._step(name, cluster, activity, wait, timeout=timeout, cancellable=cancellable)

    async def _step(
        self,
        name: str,
        cluster: str | None,
        activity: str,
        argument: Any,
        *,
        timeout: timedelta = SHORT_STEP,
        cancellable: bool = True,
    ) -> Any:
        """Run one activity attempt at a time, recording attempts and errors; raise :class:`StepFailedError`.

        Args:
            name: the step's name in progress and errors.
            cluster: where it acts.
            activity: the activity's registered name.
            argument: its input model.
            timeout: one attempt's start-to-close timeout.
            cancellable: ``abort`` may cancel this step (writes that compensation undoes are not cancelled
                half-way: their undo follows them).
        """
        if cancellable:
            self._check_abort()
        step = _Step(name=name, cluster=cluster, started=workflow.now())
        self._steps.append(step)
        result_type = _RESULT_TYPES.get(activity)
        while True:
            step.attempts += 1
            summary = f"{name}{f' on {cluster}' if cluster else ''}"
            cancellation = workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            if activity in LOCAL_ACTIVITIES:
                handle = workflow.start_local_activity(
                    activity,
                    argument,
                    result_type=result_type,
                    start_to_close_timeout=timeout,
                    retry_policy=RetryPolicy(maximum_attempts=1),
                    cancellation_type=cancellation,
                    summary=summary,
                )
            else:
                handle = workflow.start_activity(
                    activity,
                    argument,
                    result_type=result_type,
                    start_to_close_timeout=timeout + timedelta(seconds=30),
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=RetryPolicy(maximum_attempts=1),
                    cancellation_type=cancellation,
                    summary=summary,
                )
            if cancellable:
                self._current = handle
            try:
                result = await handle
            except (ActivityError, ApplicationError, CancelledError, TimeoutError) as error:
                # Ordinary activities fail with ActivityError(cause); local ones raise the cause itself.
                cause = error.cause if isinstance(error, ActivityError) else error
                if isinstance(cause, CancelledError):
                    step.outcome, step.ended = "cancelled", workflow.now()
                    if self._aborted_by:
                        raise AbortedError(self._aborted_by) from error
                    raise asyncio.CancelledError(f"{name} cancelled") from error
                message, error_type, retryable = _describe_cause(cause)
                step.last_error = message
                if not retryable or step.attempts >= MAX_ATTEMPTS:
                    step.outcome, step.ended = "failed", workflow.now()
                    raise StepFailedError(name, cluster, message, error_type) from error
                backoff = RETRY_BACKOFF[min(step.attempts - 1, len(RETRY_BACKOFF) - 1)]
                step.detail = f"retrying in {backoff.total_seconds():.0f}s"
                await workflow.sleep(backoff, summary=f"retry {name}")
                continue
            finally:
                self._current = None
            step.outcome, step.ended, step.detail = "done", workflow.now(), ""
            if self._aborted_by and cancellable:
                raise AbortedError(self._aborted_by)
            return result

    # ----------------------------------------------------------------------------------------- bookkeeping

    def _set_phase(self, phase: Phase, message: str) -> None:
        self._phase = phase
        self._message = message
        workflow.upsert_search_attributes([visibility.PHASE.value_set(phase.value)])
        workflow.set_current_details(f"**{phase.value}**: {message}")

    def _end(self, outcome: Outcome, phase: Phase, message: str) -> FailoverResult:
        self._set_phase(phase, message)
        return FailoverResult(outcome=outcome, message=message, progress=self.progress())

    def _require_request(self) -> FailoverRequest:
        if self._request is None:
            raise ApplicationError("the workflow has not started yet", non_retryable=True)
        return self._request


def _describe_cause(cause: BaseException | None) -> tuple[str, str | None, bool]:
    """Message, error type and retryability of an activity failure's cause."""
    if isinstance(cause, ApplicationError):
        return cause.message, cause.type, not cause.non_retryable
    if isinstance(cause, TimeoutError):
        return f"timed out ({cause.type.name if cause.type else 'timeout'})", "Timeout", True
    return str(cause) if cause else "unknown failure", None, True


_RESULT_TYPES: dict[str, type] = {
    "observe_roles": RolesReport,
    "preflight": PreflightReport,
    "stop_workloads": WorkloadsSnapshot,
    "prepare_sync_point": SyncPoint,
    "wait_final_sync": ReplicationStatus,
    "wait_promoted": ReplicationStatus,
    "wait_resync": ReplicationStatus,
    "check_reachable": bool,
    "run_hook": str,
    "wait_volumes_released": str,
    "wait_workloads_ready": str,
}
"""Result models of activities referenced by name (the converter needs the type to rebuild pydantic models)."""


__all__ = ["GroupFailoverWorkflow", "Role"]
