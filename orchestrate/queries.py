"""Asking Temporal and a running workflow what the workflow is doing, in bounded time.

A query is answered by a worker, not by Temporal: while no worker polls the task queue, or the worker that holds
the workflow is stuck or gone, Temporal keeps the query waiting behind the workflow task (for as long as the
caller waits). ``status``, the busy-group refusal and the CLI's live views must answer during an outage whatever
the worker does, so every query and describe made here has a deadline. A query that meets it raises
:class:`NoAnswerError`, which says what Temporal itself knows instead: the phase the workflow last published in
its search attributes and how long its workflow task has waited for a worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.client import WorkflowExecutionDescription, WorkflowHandle, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from workflows import visibility

ANSWER_TIMEOUT = timedelta(seconds=10)
"""How long a query or describe may take: a worker answers a query in milliseconds unless something is wrong."""

_UNANSWERED = (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)

W = TypeVar("W")
R = TypeVar("R")


class NoAnswerError(Exception):
    """A running workflow did not answer a query: not in time, or Temporal found no worker to ask.

    Its worker is down, stuck or overloaded.

    Attributes:
        workflow_id: the workflow asked.
        phase: the phase it last published (search attribute ``FailoverPhase``), if any.
    """

    def __init__(self, workflow_id: str, why: str, phase: str | None, task: str) -> None:
        self.workflow_id = workflow_id
        self.phase = phase
        published = f"; its last published phase is {phase}" if phase else ""
        super().__init__(
            f"{workflow_id} did not answer {why} ({task}{published}): "
            "is `orchestrate worker` running and connected to this Temporal?"
        )


async def describe(
    handle: WorkflowHandle[Any, Any], *, timeout: timedelta | None = None
) -> WorkflowExecutionDescription | None:
    """The workflow's description, or ``None`` when no workflow of that id ever ran.

    Raises:
        RPCError: Temporal did not answer within ``timeout`` (default :data:`ANSWER_TIMEOUT`), or refused.
    """
    try:
        return await handle.describe(rpc_timeout=timeout or ANSWER_TIMEOUT)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise


async def ask(handle: WorkflowHandle[W, Any], query: Callable[[W], R], *, timeout: timedelta | None = None) -> R:
    """The answer of ``query`` (a ``@workflow.query`` method of the handle's workflow) within ``timeout``.

    ``timeout`` defaults to :data:`ANSWER_TIMEOUT`.

    Raises:
        NoAnswerError: no worker answered in time, Temporal saw none polling to ask, or it refused to hold one
            more query for the workflow (its query buffer is full while no worker takes the workflow's tasks).
        RPCError: anything else Temporal refused (NOT_FOUND: no such workflow).
    """
    timeout = timeout or ANSWER_TIMEOUT
    try:
        return await handle.query(query, rpc_timeout=timeout)
    except RPCError as error:
        if error.status in _UNANSWERED:
            why = f"within {timeout.total_seconds():.0f} s"
        elif error.status in (RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.RESOURCE_EXHAUSTED):
            # "no poller seen for task queue recently"; "consistent query buffer is full" (queries pile up while
            # no worker takes the workflow's tasks): the workflow could not be asked, Temporal itself answered.
            why = f"(Temporal: {error.message})"
        else:
            raise
    raise await _no_answer(handle, why)


async def or_no_answer(answer: Awaitable[R]) -> R | NoAnswerError:
    """``answer``'s value, or the :class:`NoAnswerError` it raised (for messages that name a silent workflow)."""
    try:
        return await answer
    except NoAnswerError as silent:
        return silent


async def tell(
    handle: WorkflowHandle[W, Any],
    update: UpdateMethodMultiParam[[W, str], R],
    arg: str,
    *,
    timeout: timedelta | None = None,
) -> R:
    """Send ``update`` (a ``@workflow.update`` method taking one string, such as ``abort``) and its answer.

    Raises:
        NoAnswerError: no worker took the update within ``timeout`` (default :data:`ANSWER_TIMEOUT`). Temporal
            keeps an update it admitted and hands it to the next worker that takes the workflow, unless Temporal
            restarts first: the caller must say that it may still take effect.
        WorkflowUpdateFailedError: the workflow refused it (its validator).
        RPCError: anything else Temporal refused (NOT_FOUND: no such workflow).
    """
    timeout = timeout or ANSWER_TIMEOUT
    try:
        return await handle.execute_update(update, arg, rpc_timeout=timeout)
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        why = f"within {timeout.total_seconds():.0f} s"
    raise await _no_answer(handle, why)


async def _no_answer(handle: WorkflowHandle[Any, Any], why: str) -> NoAnswerError:
    try:
        description = await describe(handle)
    except RPCError as error:
        return NoAnswerError(handle.id, why, None, f"nor did Temporal describe it: {error.message}")
    if description is None:
        return NoAnswerError(handle.id, why, None, "Temporal no longer knows it")
    return NoAnswerError(
        handle.id, why, description.typed_search_attributes.get(visibility.PHASE), workflow_task_state(description)
    )


def workflow_task_state(description: WorkflowExecutionDescription, now: datetime | None = None) -> str:
    """What the workflow's pending workflow task says about its worker, in words."""
    raw = description.raw_description
    if not raw.HasField("pending_workflow_task"):
        return "no workflow task is pending: the worker took none and answered none"
    task = raw.pending_workflow_task
    now = now or datetime.now(UTC)
    attempt = f", attempt {task.attempt}" if task.attempt > 1 else ""
    if task.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED:
        taken = (now - task.started_time.ToDatetime(tzinfo=UTC)).total_seconds()
        return f"a worker took its workflow task {taken:.0f} s ago and has not finished it{attempt}"
    waiting = (now - task.scheduled_time.ToDatetime(tzinfo=UTC)).total_seconds()
    return f"its workflow task has waited {waiting:.0f} s for a worker{attempt}"
