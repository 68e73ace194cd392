"""The planned path (and failback): quiesce, demote, final sync, promote, with a saga until the promotion.

Every forward step before the promotion pushes its undo first. A failure, an ``abort`` or a cancellation there
runs the undos newest first: return the target to Secondary and wait until it reports so, only then re-promote
the source, then restart its workloads. Once the promotion is requested ``abort`` is refused; once it completed
the new side holds the data and nothing is rolled back.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from adapters.base import SyncPoint
    from workflows.failover.context import OperationContext
    from workflows.failover.saga import CompensationReport, Saga
    from workflows.failover.steps import AbortedError, StepFailedError
    from workflows.models import (
        FailoverResult,
        GroupOnCluster,
        Outcome,
        PairInput,
        Phase,
        PromoteInput,
        ReprotectInput,
        ScaleInput,
        TransferInput,
    )

TRANSFER_SYNC_POINT = "transfer-sync-point"
"""Patch: a sync point (Trident's snapshots) is transferred to the target before the promotion names it."""


async def run_planned(ctx: OperationContext) -> FailoverResult:
    """Move the group from ``ctx.source`` to ``ctx.target`` losing no acknowledged write."""
    assert ctx.source is not None and ctx.target is not None
    source, target, group = ctx.source, ctx.target, ctx.group
    runner = ctx.runner
    saga = Saga()
    replicas = {w.name: w.replicas for w in group.workloads}
    try:
        runner.check_abort()
        await ctx.hooks("pre")

        ctx.set_phase(Phase.QUIESCING, f"stopping workloads on {source}")
        # Pushed before the stop: a stop that fails half-way (one workload of two scaled down) is undone too.
        saga.push(f"restart workloads on {source}", lambda: restart_workloads(ctx, source, replicas))
        replicas.update(await ctx.stop_source(source))
        await ctx.wait_released(source)

        ctx.set_phase(Phase.DEMOTING, f"demoting {source}")
        sync_point: SyncPoint | None = await runner.run(
            "prepare sync point",
            source,
            "prepare_sync_point",
            GroupOnCluster(group=ctx.name, cluster=source),
            timeout=group.timeouts.demote,
        )
        saga.push(f"re-promote {source}", lambda: repromote(ctx, source, target))
        ctx.peer_promotion_requested = group.backend.demote_may_promote_peer
        await runner.run(
            "demote", source, "demote", PairInput(group=ctx.name, cluster=source, peer=target), cancellable=False
        )

        ctx.set_phase(Phase.WAITING_FOR_FINAL_SYNC, f"waiting for the final sync from {source}")
        await runner.wait("wait for final sync", source, "wait_final_sync", ctx.name, group.timeouts.final_sync)
        if sync_point is not None and workflow.patched(TRANSFER_SYNC_POINT):
            await transfer_sync_point(ctx, target, sync_point)

        runner.check_abort()
        ctx.set_phase(Phase.PROMOTING, f"promoting {target}")
        saga.push(f"return {target} to Secondary", lambda: return_to_secondary(ctx, target, source))
        ctx.promote_sent = True
        await runner.run(
            "promote",
            target,
            "promote",
            PromoteInput(group=ctx.name, cluster=target, peer=source, force=False, sync_point=sync_point),
            cancellable=False,
        )
        await runner.wait(
            "wait for promotion", target, "wait_promoted", ctx.name, group.timeouts.promote, cancellable=False
        )
    except (StepFailedError, AbortedError, asyncio.CancelledError) as failure:
        return await compensate(ctx, saga, failure)

    return await ctx.after_promotion(replicas, Phase.RELOCATED, reprotect=True, resync=False)


async def transfer_sync_point(ctx: OperationContext, target: str, sync_point: SyncPoint) -> None:
    """Wait until the target holds the sync point (Trident: a mirror update carrying each snapshot succeeded).

    Upstream Trident fails a promotion whose snapshot has not reached the destination and does not retry it, so
    the snapshots are transferred first. Nothing is promoted yet: an abort or a failure here only needs the
    source's undos.
    """
    ctx.set_phase(Phase.WAITING_FOR_FINAL_SYNC, f"transferring the final snapshots to {target}")
    timeout = ctx.group.timeouts.final_sync
    deadline = workflow.now() + timeout
    argument = TransferInput(group=ctx.name, cluster=target, sync_point=sync_point, timeout=timeout, deadline=deadline)
    await ctx.runner.run("transfer sync point", target, "transfer_sync_point", argument, deadline=deadline)


async def _write_then_wait(
    ctx: OperationContext,
    cluster: str,
    write: tuple[str, str, Any],
    wait: tuple[str, str],
    timeout: timedelta,
) -> None:
    """An undo: one non-cancellable write (step name, activity, input), then a non-cancellable wait until it shows.

    Undos are never cancelled half-way: an abort that reached compensation must not leave an undo unverified.
    """
    step, activity, argument = write
    await ctx.runner.run(step, cluster, activity, argument, cancellable=False)
    wait_step, wait_activity = wait
    await ctx.runner.wait(wait_step, cluster, wait_activity, ctx.name, timeout, cancellable=False)


async def restart_workloads(ctx: OperationContext, cluster: str, replicas: dict[str, int]) -> None:
    """Undo of the quiesce: scale the workloads back up and wait until they are ready."""
    await _write_then_wait(
        ctx,
        cluster,
        ("restart workloads", "start_workloads", ScaleInput(group=ctx.name, cluster=cluster, replicas=replicas)),
        ("wait for workloads ready", "wait_workloads_ready"),
        ctx.group.timeouts.start,
    )


async def repromote(ctx: OperationContext, source: str, target: str) -> None:
    """Undo of the demote: make the source Primary again (only reached once the target is Secondary)."""
    await _write_then_wait(
        ctx,
        source,
        ("re-promote", "promote", PromoteInput(group=ctx.name, cluster=source, peer=target, force=False)),
        ("wait for re-promotion", "wait_promoted"),
        ctx.group.timeouts.promote,
    )


async def return_to_secondary(ctx: OperationContext, target: str, source: str) -> None:
    """Undo of the promote: ask the target to follow the source again and wait until it reports Secondary."""
    await _write_then_wait(
        ctx,
        target,
        ("return to Secondary", "reprotect", ReprotectInput(group=ctx.name, cluster=target, peer=source, resync=False)),
        ("wait for Secondary", "wait_secondary"),
        ctx.group.timeouts.promote,
    )


async def compensate(ctx: OperationContext, saga: Saga, failure: BaseException) -> FailoverResult:
    """Undo what was done, newest first; stop at the first undo that fails ("needs attention")."""
    cancelled = isinstance(failure, asyncio.CancelledError)
    aborted_by = ctx.runner.aborted_by
    if aborted_by:
        cause = f"aborted by {aborted_by}"
    elif cancelled:
        cause = "the workflow was cancelled"
    else:
        cause = str(failure)
    ctx.compensating = True
    ctx.set_phase(Phase.COMPENSATING, f"{cause}; undoing {len(saga.undo)} step(s)")
    report: CompensationReport = await saga.compensate()
    ctx.compensated.extend(report.undone)
    if report.failed is not None:
        ctx.left_to_do = (report.failed.split(":", 1)[0], *report.left)
        return ctx.end(
            Outcome.NEEDS_ATTENTION,
            Phase.NEEDS_ATTENTION,
            f"{cause}; compensation stopped at {report.failed}; still to undo: {', '.join(ctx.left_to_do)} "
            f"(undone: {', '.join(report.undone) or 'nothing'}); nothing more was changed: check "
            f"`orchestrate status --group {ctx.name}`, fix the cause, then `orchestrate resume --group {ctx.name}` "
            "starts the application where the one Primary is",
        )
    undone = ", ".join(report.undone) or "nothing to undo"
    phase = Phase.ABORTED if aborted_by else Phase.FAILED_COMPENSATED
    result = ctx.end(Outcome.FAILED_COMPENSATED, phase, f"{cause}; undone: {undone}")
    if cancelled:
        raise failure
    return result
