"""The group failover workflow (``failover/<group>``): its messages and the dispatch to the paths.

Every outcome is a result: refused (nothing changed), failed and compensated, needs attention, or succeeded. No
exception escapes ``run`` (one that did would fail the workflow task, which Temporal retries forever: the CLI would
hang and the group stay busy), except a cancellation after its compensation.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.failover.context import OperationContext
    from workflows.failover.planned import run_planned
    from workflows.failover.resume import run_resume
    from workflows.failover.steps import AbortedError, StepFailedError
    from workflows.failover.unplanned import run_unplanned
    from workflows.models import (
        ALERT_SIGNAL,
        AlertNote,
        FailoverRequest,
        FailoverResult,
        Operation,
        Outcome,
        Phase,
        Progress,
    )


MAX_ALERTS = 100
"""Alerts an operation records at most: a flapping alert repeated for hours must not grow its history unbounded."""


def operation_id(group: str) -> str:
    """The id of a group's operation: one at a time per group, whoever starts it (CLI, webhook, site failover)."""
    return f"failover/{group}"


@workflow.defn(name="GroupFailover")
class GroupFailoverWorkflow:
    """Move one protection group's primary to the other cluster (or finish a move with ``resume``)."""

    def __init__(self) -> None:
        self._ctx: OperationContext | None = None
        self._early_alerts: list[AlertNote] = []
        """Alerts signalled before ``run`` made the context (a signal can come first in the first task)."""

    def _context(self) -> OperationContext:
        if self._ctx is None:
            raise RuntimeError("the workflow has not started yet")
        return self._ctx

    # ----------------------------------------------------------------------------------------- messages

    @workflow.query
    def progress(self) -> Progress:
        """Phase, steps, findings, lag and data-loss window."""
        return self._context().progress()

    @workflow.signal(name=ALERT_SIGNAL)
    def alert(self, note: AlertNote) -> None:
        """Record an alert that joined the operation or resolved while it ran (it changes nothing else)."""
        alerts = self._ctx.alerts if self._ctx is not None else self._early_alerts
        if len(alerts) < MAX_ALERTS:
            alerts.append(note)

    @workflow.update
    def approve(self, approver: str) -> str:
        """Let an operation that waits for approval go on."""
        ctx = self._context()
        ctx.approved_by = approver
        ctx.approval_pending = False
        return f"approved by {approver}"

    @approve.validator
    def _validate_approve(self, approver: str) -> None:
        ctx = self._context()
        if not ctx.approval_pending:
            raise ValueError(f"nothing to approve: the operation is in phase {ctx.phase.value}")

    @workflow.update
    def abort(self, requester: str) -> str:
        """Stop the operation; what was done so far is undone (only before the target's promotion)."""
        ctx = self._context()
        ctx.approval_pending = False
        ctx.runner.abort(requester)
        return f"abort requested by {requester}: compensating"

    @abort.validator
    def _validate_abort(self, requester: str) -> None:
        ctx = self._context()
        if ctx.finished:
            raise ValueError("the operation has already finished")
        if ctx.promote_sent:
            raise ValueError(
                f"too late to abort: the promotion of {ctx.target} was requested and it may hold the data; "
                "the operation will finish (or wait for you) on the new primary"
            )
        if ctx.runner.aborted_by:
            raise ValueError(f"already aborted by {ctx.runner.aborted_by}")

    # ----------------------------------------------------------------------------------------- run

    @workflow.run
    async def run(self, request: FailoverRequest) -> FailoverResult:
        """Run the operation and report how it ended."""
        ctx = self._ctx = OperationContext(request)
        ctx.alerts.extend(self._early_alerts)
        try:
            result = await self._dispatch(ctx)
        except AbortedError:
            result = ctx.end(
                Outcome.FAILED_COMPENSATED, Phase.ABORTED, f"aborted by {ctx.runner.aborted_by} before any change"
            )
        except StepFailedError as failure:
            if ctx.changed:
                result = ctx.end(Outcome.NEEDS_ATTENTION, Phase.NEEDS_ATTENTION, f"{failure}")
            else:
                result = ctx.refuse(f"could not check the group, nothing was changed: {failure}")
        except asyncio.CancelledError:
            ctx.finished = True
            raise
        except Exception as error:  # a defect must end the operation visibly, not loop its workflow task
            workflow.logger.exception("group operation failed unexpectedly")
            result = ctx.end(
                Outcome.NEEDS_ATTENTION,
                Phase.NEEDS_ATTENTION,
                f"internal error ({type(error).__name__}: {error}); "
                f"{'changes were made: ' if ctx.changed else 'nothing was changed; '}"
                f"check `orchestrate status --group {request.group}`",
            )
        ctx.finished = True
        await ctx.reports_sent()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _dispatch(self, ctx: OperationContext) -> FailoverResult:
        await ctx.resolve()
        if ctx.request.operation is Operation.RESUME:
            return await run_resume(ctx)
        refusal = await ctx.choose_and_check()
        if refusal is not None:
            return refusal
        if ctx.request.dry_run:
            return ctx.end(
                Outcome.DRY_RUN,
                Phase.DRY_RUN,
                f"dry run: preflight passed; would move {ctx.name} from {ctx.source} to {ctx.target}",
            )
        ended = await ctx.approval()
        if ended is not None:
            return ended
        if ctx.effective_operation is Operation.UNPLANNED:
            return await run_unplanned(ctx)
        return await run_planned(ctx)
