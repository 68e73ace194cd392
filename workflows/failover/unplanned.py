"""The unplanned path: the source site is lost (or, forced, abandoned): promote the target without it.

When the source still answers (a forced unplanned failover) it is first stopped, its volumes released and it is
demoted and observed Secondary, with the same saga as a planned failover, so that two primaries never serve.
When it does not answer, the fence workflow (``fence/<group>``) is started just before the promotion is requested:
whatever happens to the rest of this operation, the old primary is stopped and demoted with resync when it
returns. An ``abort`` is honoured up to the promotion.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows.failover.context import OperationContext
    from workflows.failover.fence import GroupFenceWorkflow, fence_id
    from workflows.failover.planned import compensate, repromote, restart_workloads
    from workflows.failover.saga import Saga
    from workflows.failover.steps import AbortedError, StepFailedError
    from workflows.models import (
        FailoverResult,
        FenceRequest,
        Outcome,
        PairInput,
        Phase,
        PreflightReport,
        PromoteInput,
    )


FENCE_BEFORE_PROMOTE = "fence-before-promote"
"""Patch: the fence starts before the promote (and is told when the promotion is abandoned)."""


async def run_unplanned(ctx: OperationContext) -> FailoverResult:
    """Promote ``ctx.target`` (forced), start the application there, and leave the old side to the fence."""
    assert ctx.source is not None and ctx.target is not None and ctx.report is not None
    source, target, group, runner = ctx.source, ctx.target, ctx.group, ctx.runner
    report = ctx.report
    source_lost = not report.source_reachable
    if not source_lost:
        stopped = await _stop_and_demote_source(ctx)
        if stopped is not None:
            return stopped
    try:
        runner.check_abort()
    except AbortedError:
        return ctx.end(
            Outcome.FAILED_COMPENSATED, Phase.ABORTED, f"aborted by {runner.aborted_by} before the promotion"
        )

    ctx.set_phase(
        Phase.PROMOTING, f"promoting {target} (unplanned: {source} is {'lost' if source_lost else 'demoted'})"
    )
    # The window is measured at the promotion: what the target holds then is what survives.
    ctx.last_sync, ctx.last_sync_source = last_sync_seen(report, ctx.request.last_sync_seen)
    if ctx.last_sync is not None:
        ctx.loss_window = max(0.0, (workflow.now() - ctx.last_sync).total_seconds())
    ctx.changed = True
    ctx.promote_sent = True
    # Before the promotion is requested: from the moment its write may land, the old side is guarded. (Histories
    # recorded before this patch started the fence right after the promote step.)
    fence_first = source_lost and workflow.patched(FENCE_BEFORE_PROMOTE)
    if fence_first:
        await start_fence(ctx, source, target)
    try:
        try:
            await runner.run(
                "promote",
                target,
                "promote",
                PromoteInput(group=ctx.name, cluster=target, peer=source, force=True),
                cancellable=False,
            )
        finally:
            if source_lost and not fence_first:
                await start_fence(ctx, source, target)
        await runner.wait(
            "wait for promotion", target, "wait_promoted", ctx.name, group.timeouts.promote, cancellable=False
        )
    except StepFailedError as failure:
        guard = f"; {ctx.fence_workflow} still guards {source}" if ctx.fence_workflow else ""
        if fence_first and ctx.fence_workflow:
            # Only now may the fence end without acting, should the old side answer with the target Secondary.
            await workflow.get_external_workflow_handle(ctx.fence_workflow).signal(
                GroupFenceWorkflow.promotion_abandoned
            )
        ctx.left_to_do = ("promote", "start workloads", "post-hooks")
        return ctx.end(
            Outcome.NEEDS_ATTENTION,
            Phase.NEEDS_ATTENTION,
            f"unplanned failover of {group.name} to {target} did not complete: {failure}{guard}",
        )
    replicas = {w.name: w.replicas for w in group.workloads}
    note = f"; {ctx.fence_workflow} demotes {source} with resync when it answers again" if ctx.fence_workflow else ""
    return await ctx.after_promotion(replicas, Phase.FAILED_OVER, reprotect=not source_lost, resync=True, note=note)


async def _stop_and_demote_source(ctx: OperationContext) -> FailoverResult | None:
    """A forced unplanned failover whose source answers: stop it and demote it first (undone on failure)."""
    assert ctx.source is not None and ctx.target is not None
    source, target, group, runner = ctx.source, ctx.target, ctx.group, ctx.runner
    saga = Saga()
    replicas = {w.name: w.replicas for w in group.workloads}
    try:
        runner.check_abort()
        ctx.set_phase(Phase.QUIESCING, f"stopping workloads on {source} (it still answers)")
        # Pushed before the stop: a stop that fails half-way (one workload of two scaled down) is undone too.
        saga.push(f"restart workloads on {source}", lambda: restart_workloads(ctx, source, replicas))
        replicas.update(await ctx.stop_source(source))
        await ctx.wait_released(source)
        ctx.set_phase(Phase.DEMOTING, f"demoting {source} before {target} is promoted")
        saga.push(f"re-promote {source}", lambda: repromote(ctx, source, target))
        await runner.run(
            "demote", source, "demote", PairInput(group=ctx.name, cluster=source, peer=target), cancellable=False
        )
        if not group.backend.old_source_primary_until_reprotect:
            # Trident has no demote: its source stays promoted (stopped, volumes released) until it is
            # reestablished, which follows the promotion before anything starts.
            await runner.wait("wait for Secondary", source, "wait_secondary", ctx.name, group.timeouts.demote)
    except (StepFailedError, AbortedError, asyncio.CancelledError) as failure:
        return await compensate(ctx, saga, failure)
    return None


async def start_fence(ctx: OperationContext, old_primary: str, new_primary: str) -> None:
    """Start ``fence/<group>`` (abandoned by this workflow: it outlives it); join one that already runs."""
    info = workflow.info()
    request = FenceRequest(
        group=ctx.name,
        old_primary=old_primary,
        new_primary=new_primary,
        operation=f"{info.workflow_id}/{info.run_id}",
        poll_initial=ctx.request.fence_poll_initial,
        poll_max=ctx.request.fence_poll_max,
    )
    with contextlib.suppress(WorkflowAlreadyStartedError):  # a fence from an earlier operation still waits
        await workflow.start_child_workflow(
            GroupFenceWorkflow.run,
            request,
            id=fence_id(ctx.name),
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            static_summary=f"fence of {ctx.name}: demote {old_primary} with resync when it answers again",
        )
    ctx.fence_workflow = fence_id(ctx.name)


REMEMBERED_SYNC_SOURCE = "the newest sync the group monitor saw before the source was lost"


def last_sync_seen(report: PreflightReport, remembered: datetime | None) -> tuple[datetime | None, str]:
    """The newest completed sync anyone saw (the sides' own reports, or the group monitor's memory) and its source.

    The source is the backend's ``last_sync_source`` (what that time is: a Dell poll time is not a data time) or
    :data:`REMEMBERED_SYNC_SOURCE`; ``""`` when no time is known.
    """
    seen = [
        (s.last_sync_time, s.last_sync_source)
        for s in (report.source_status, report.target_status)
        if s is not None and s.last_sync_time is not None
    ]
    if remembered is not None:
        seen.append((remembered, REMEMBERED_SYNC_SOURCE))
    if not seen:
        return None, ""
    return max(seen, key=lambda time_and_source: time_and_source[0])
