"""The resume path: finish what an operation that ended "needs attention" left, from fresh observations.

Resume re-observes the group and requires exactly one Primary (two mean the old side is not fenced yet: resume
refuses and leaves that to the fence), and that Primary settled (a request the storage still acts on may yet move
the role, as Dell's FAILOVER_REMOTE does). The Primary is the target: the other side's workloads are stopped when it
answers (the application never runs on both sites), then the application is started on the target, the post-hooks
run again (each call carries a new idempotency key), and the other side is reprotected unless it does not answer
or a fence will do it.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.failover.context import OperationContext
    from workflows.failover.steps import StepFailedError
    from workflows.models import FailoverResult, Outcome, Phase, RolesInput, RolesReport

SETTLED_PRIMARY = "resume-requires-settled-primary"
"""Patch: a resume recorded before this refusal existed went on to stop the other side: its replay must too."""


async def run_resume(ctx: OperationContext) -> FailoverResult:
    """Start, hooks and reprotect on the group's current Primary."""
    group, request = ctx.group, ctx.request
    roles: RolesReport = await ctx.runner.run("observe roles", None, "observe_roles", RolesInput(group=ctx.name))
    primaries = roles.primaries()
    seen = ", ".join(f"{c}: {s.role.value}" for c, s in sorted(roles.statuses.items())) or "none"
    expected = request.expected_primary
    if group.backend.old_source_primary_until_reprotect and len(primaries) == 2 and expected in primaries:
        primaries = [expected]  # Trident: the old source stays promoted until it is reestablished
    if len(primaries) != 1:
        hint = (
            "; the old primary is not fenced yet: its fence demotes it when it answers"
            if len(primaries) > 1 and request.fence_pending
            else ""
        )
        return ctx.refuse(f"resume needs exactly one Primary, observed {seen}{hint}")
    target = primaries[0]
    if expected is not None and target != expected:
        return ctx.refuse(
            f"resume expected {expected} as the Primary (where the unfinished operation left the group), but "
            f"observed {seen}; nothing was changed: check `orchestrate status --group {ctx.name}`"
        )
    settling = roles.statuses[target]
    if not settling.completed and workflow.patched(SETTLED_PRIMARY):
        # Dell's FAILOVER_REMOTE keeps the old source reporting isSource until the action ends: starting the
        # application there would write to a side the array is about to demote.
        return ctx.refuse(
            f"{target} reports Primary but the storage has not completed its last request there "
            f"({settling.message}); nothing was changed: resume once `orchestrate status --group {ctx.name}` shows "
            "it settled"
        )
    source = group.peer_of(target)
    if source in roles.errors:
        return ctx.refuse(
            f"{source} answers but cannot be read ({roles.errors[source]}): resume cannot make sure the "
            "application is stopped there; nothing was changed"
        )
    ctx.source, ctx.target = source, target
    ctx.promote_sent = True  # nothing to undo: abort has no meaning for a resume
    source_answers = source not in roles.unreachable
    if source_answers:
        ctx.set_phase(Phase.QUIESCING, f"making sure nothing runs on {source}")
        try:
            await ctx.stop_source(source)
            await ctx.wait_released(source)
        except StepFailedError as failure:
            return ctx.end(
                Outcome.NEEDS_ATTENTION,
                Phase.NEEDS_ATTENTION,
                f"cannot make sure the application is stopped on {source}: {failure}; nothing was started on {target}",
            )
    reprotect = source_answers and not request.fence_pending
    if request.fence_pending:
        note = f"; {source} is left to the fence (fence/{ctx.name})"
    elif not source_answers:
        note = f"; {source} does not answer: reprotect it later with `orchestrate resume --group {ctx.name}`"
    else:
        note = ""
    replicas = {w.name: w.replicas for w in group.workloads}
    ctx.changed = True
    return await ctx.after_promotion(replicas, Phase.RESUMED, reprotect=reprotect, resync=False, note=note)
