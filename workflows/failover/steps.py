"""The step runner: one activity attempt at a time under the workflow's own retry loop.

Running attempts one by one (each with ``maximum_attempts=1``) lets the ``progress`` query show a step's attempts
and last error while it is still retrying. Short steps run as local activities (no task-queue round trip); waits
run as ordinary heartbeating activities so that another worker resumes them after a crash, with a deadline fixed at
the first attempt (a retried wait does not restart its clock). An ``abort`` cancels the running step when it is
cancellable and cuts a retry back-off short.
"""

from __future__ import annotations

import asyncio
import builtins
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from adapters.base import ReplicationStatus, SyncPoint, WriteResult
    from workflows import metrics
    from workflows.groups import GroupConfig
    from workflows.models import (
        PreflightReport,
        ProbeReport,
        RolesReport,
        StepRecord,
        WaitInput,
        WorkloadsSnapshot,
    )

HEARTBEAT_TIMEOUT = timedelta(seconds=30)
"""A worker that dies mid-wait is noticed after this long; longer than one API call's read timeout (15 s)."""
SHORT_STEP = timedelta(seconds=60)
"""Start-to-close timeout of one attempt of a step that only reads or writes a few objects."""
WAIT_MARGIN = timedelta(seconds=30)
"""Added to a wait's remaining time for its attempt's start-to-close timeout (the wait ends itself first)."""
RETRY_BACKOFF = (timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=5), timedelta(seconds=10))
MAX_ATTEMPTS = 5
"""Attempts of a step whose errors are retryable, before the workflow gives up on it."""

LOCAL_ACTIVITIES = frozenset(
    {
        "resolve_group",
        "observe_roles",
        "preflight",
        "check_reachable",
        "stop_workloads",
        "start_workloads",
        "demote",
        "promote",
        "reprotect",
        "prepare_sync_point",
    }
)
"""Steps of a few API calls: local activities in the workflow's worker. Everything else is an ordinary activity:
the waits (heartbeating) and the hooks (no heartbeat: one HTTP call bounded by its own timeout)."""
HEARTBEATING = frozenset(
    {
        "wait_volumes_released",
        "wait_workloads_ready",
        "wait_final_sync",
        "wait_promoted",
        "wait_secondary",
        "wait_resync",
        "transfer_sync_point",
    }
)

RESULT_TYPES: dict[str, type] = {
    "resolve_group": GroupConfig,
    "observe_roles": RolesReport,
    "preflight": PreflightReport,
    "check_reachable": ProbeReport,
    "stop_workloads": WorkloadsSnapshot,
    "prepare_sync_point": SyncPoint,
    "demote": WriteResult,
    "promote": WriteResult,
    "reprotect": WriteResult,
    "wait_final_sync": ReplicationStatus,
    "wait_promoted": ReplicationStatus,
    "wait_secondary": ReplicationStatus,
    "wait_resync": ReplicationStatus,
    "transfer_sync_point": WriteResult,
    "run_hook": str,
    "wait_volumes_released": str,
    "wait_workloads_ready": str,
}
"""Result models of activities referenced by name (the converter needs the type to rebuild pydantic models);
workflow modules may not import the activities themselves (they do I/O)."""


class StepFailedError(Exception):
    """A step failed for good: the message names the step, the cluster and the cause."""

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
class StepState:
    """A step as it runs: what ``progress`` reports."""

    name: str
    cluster: str | None
    started: datetime
    ended: datetime | None = None
    attempts: int = 0
    outcome: str = "running"
    detail: str = ""
    last_error: str | None = None

    def record(self) -> StepRecord:
        """The boundary model of this step."""
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


class StepRunner:
    """Runs a workflow's steps, records them, and carries the operation's abort state.

    Args:
        max_attempts: attempts of a retryable failure before the step fails for good.
        backoff: pauses between attempts (the last one repeats).
    """

    def __init__(self, *, max_attempts: int = MAX_ATTEMPTS, backoff: tuple[timedelta, ...] = RETRY_BACKOFF) -> None:
        self.steps: list[StepState] = []
        self.aborted_by: str | None = None
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._current: workflow.ActivityHandle[Any] | None = None
        self.group = ""
        """The group the steps act on (a label of the step-duration metric)."""

    def records(self) -> tuple[StepRecord, ...]:
        """Every step so far."""
        return tuple(step.record() for step in self.steps)

    def abort(self, requester: str) -> None:
        """Remember the abort and cancel the running cancellable step (if any)."""
        self.aborted_by = requester
        if self._current is not None:
            self._current.cancel()

    def check_abort(self) -> None:
        """Raise :class:`AbortedError` when an abort was requested."""
        if self.aborted_by:
            raise AbortedError(self.aborted_by)

    async def wait(
        self, name: str, cluster: str, activity: str, group: str, timeout: timedelta, *, cancellable: bool = True
    ) -> Any:
        """A heartbeating wait on ``cluster`` whose deadline holds across its attempts."""
        deadline = workflow.now() + timeout
        argument = WaitInput(group=group, cluster=cluster, timeout=timeout, deadline=deadline)
        return await self.run(name, cluster, activity, argument, deadline=deadline, cancellable=cancellable)

    async def run(
        self,
        name: str,
        cluster: str | None,
        activity: str,
        argument: Any,
        *,
        timeout: timedelta = SHORT_STEP,
        deadline: datetime | None = None,
        cancellable: bool = True,
    ) -> Any:
        """Run one activity attempt at a time, recording attempts and errors.

        Args:
            name: the step's name in progress and errors.
            cluster: where it acts.
            activity: the activity's registered name.
            argument: its input model.
            timeout: one attempt's start-to-close timeout (ignored for waits with a ``deadline``).
            deadline: a wait's deadline; each attempt may run until it (plus a margin).
            cancellable: ``abort`` may cancel this step (writes that compensation undoes are not cancelled
                half-way: their undo follows them).

        Raises:
            StepFailedError: a permanent failure, or retryable ones past ``max_attempts``.
            AbortedError: the operation was aborted while the step ran or waited to retry.
            asyncio.CancelledError: the workflow was cancelled.
        """
        if cancellable:
            self.check_abort()
        step = StepState(name=name, cluster=cluster, started=workflow.now())
        self.steps.append(step)
        while True:
            step.attempts += 1
            handle = self._start(name, cluster, activity, argument, timeout, deadline)
            if cancellable:
                self._current = handle
            try:
                result = await handle
            except (ActivityError, ApplicationError, CancelledError, TimeoutError) as error:
                # Ordinary activities fail with ActivityError(cause); local ones raise the cause itself.
                cause = error.cause if isinstance(error, ActivityError) else error
                if isinstance(cause, CancelledError):
                    self._end(step, "cancelled")
                    if self.aborted_by:
                        raise AbortedError(self.aborted_by) from error
                    raise asyncio.CancelledError(f"{name} cancelled") from error
                message, error_type, retryable = describe_cause(cause)
                step.last_error = message
                if not retryable or step.attempts >= self.max_attempts:
                    self._end(step, "failed")
                    raise StepFailedError(name, cluster, message, error_type) from error
                await self._back_off(step, cancellable)
                continue
            finally:
                self._current = None
            step.detail = ""
            self._end(step, "done")
            if cancellable:
                self.check_abort()
            return result

    def _end(self, step: StepState, outcome: str) -> None:
        step.outcome, step.ended = outcome, workflow.now()
        metrics.step_ended(self.group, step.name, step.cluster, outcome, step.started, step.ended)

    def _start(
        self,
        name: str,
        cluster: str | None,
        activity: str,
        argument: Any,
        timeout: timedelta,
        deadline: datetime | None,
    ) -> workflow.ActivityHandle[Any]:
        summary = f"{name}{f' on {cluster}' if cluster else ''}"
        cancellation = workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
        result_type = RESULT_TYPES.get(activity)
        if activity in LOCAL_ACTIVITIES:
            return workflow.start_local_activity(
                activity,
                argument,
                result_type=result_type,
                start_to_close_timeout=timeout,
                retry_policy=RetryPolicy(maximum_attempts=1),
                cancellation_type=cancellation,
                summary=summary,
            )
        if deadline is not None:
            timeout = max(deadline - workflow.now(), timedelta(seconds=1)) + WAIT_MARGIN
        return workflow.start_activity(
            activity,
            argument,
            result_type=result_type,
            start_to_close_timeout=timeout,
            heartbeat_timeout=HEARTBEAT_TIMEOUT if activity in HEARTBEATING else None,
            retry_policy=RetryPolicy(maximum_attempts=1),
            cancellation_type=cancellation,
            summary=summary,
        )

    async def _back_off(self, step: StepState, cancellable: bool) -> None:
        pause = self.backoff[min(step.attempts - 1, len(self.backoff) - 1)]
        step.detail = f"retrying in {pause.total_seconds():.0f}s"
        if not cancellable:
            await workflow.sleep(pause, summary=f"retry {step.name}")
            return
        try:
            await workflow.wait_condition(lambda: self.aborted_by is not None, timeout=pause)
        except builtins.TimeoutError:
            return
        self._end(step, "cancelled")
        self.check_abort()


def describe_cause(cause: BaseException | None) -> tuple[str, str | None, bool]:
    """Message, error type and retryability of an activity failure's cause."""
    if isinstance(cause, ApplicationError):
        return cause.message, cause.type, not cause.non_retryable
    if isinstance(cause, TimeoutError):
        return f"timed out ({cause.type.name if cause.type else 'timeout'})", "Timeout", True
    return str(cause) if cause else "unknown failure", None, True
