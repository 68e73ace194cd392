"""What one group operation knows while it runs, and the steps every path shares.

The planned, unplanned and resume paths each get an :class:`OperationContext`: the request, the group as the
worker resolved it, the step runner, and the bookkeeping the ``progress`` query reports. The shared steps live
here too: observing roles and choosing the sides, preflight, the approval wait, hooks, and what follows a
promotion (start the application, post-hooks, reprotect).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import metrics, visibility
    from workflows.failover.steps import StepFailedError, StepRunner
    from workflows.groups import GroupConfig
    from workflows.models import (
        GROUP_REPORT_SIGNAL,
        AlertNote,
        FailoverRequest,
        FailoverResult,
        Finding,
        GroupOnCluster,
        GroupReport,
        HookInput,
        Operation,
        Outcome,
        Phase,
        PreflightInput,
        PreflightReport,
        Progress,
        ReprotectInput,
        ResolveInput,
        RolesInput,
        RolesReport,
        ScaleInput,
        Verdict,
        WorkloadsSnapshot,
    )


REPROTECT_ALONGSIDE_START = "reprotect-alongside-start"
"""Patch: after the promotion, the old side is reprotected while the application starts, not after it."""


class OperationContext:
    """One operation's state and shared steps.

    Args:
        request: the workflow's input.
    """

    def __init__(self, request: FailoverRequest) -> None:
        self.request = request
        self.runner = StepRunner()
        self.runner.group = request.group
        self._group: GroupConfig | None = None
        self.phase = Phase.PREFLIGHT
        self.message = "starting"
        self.source: str | None = None
        self.target: str | None = None
        self.findings: tuple[Finding, ...] = ()
        self.report: PreflightReport | None = None
        self.lag: float | None = None
        self.loss_window: float | None = None
        self.last_sync: datetime | None = None
        self.last_sync_source = ""
        self.approval_pending = False
        self.approved_by: str | None = None
        self.changed = False
        """A write was issued: a failure from now on is no longer a plain refusal."""
        self.promote_sent = False
        """The target's promotion was requested: abort is refused from here on."""
        self.peer_promotion_requested = False
        """The source's demote was requested on a backend whose demote also promotes the target
        (:attr:`Backend.demote_may_promote_peer`): the Primary may end up on either side."""
        self.compensating = False
        """The saga undoes what was done (after a failure, an abort or a cancellation)."""
        self.compensated: list[str] = []
        self.fence_workflow: str | None = None
        self.left_to_do: tuple[str, ...] = ()
        self.finished = False
        self.application_started = False
        """The application runs on the new primary (a site failover's next tier may start)."""
        self._reports: list[asyncio.Future[None]] = []
        self.alerts: list[AlertNote] = [request.alert] if request.alert is not None else []
        """The alert that started the operation, then those that joined it or resolved while it ran."""

    # ------------------------------------------------------------------------------------------ state

    @property
    def group(self) -> GroupConfig:
        """The group as the worker's configuration defines it (resolved at the start)."""
        if self._group is None:
            raise RuntimeError("the group is not resolved yet")
        return self._group

    @property
    def name(self) -> str:
        """The group's name."""
        return self.request.group

    def progress(self) -> Progress:
        """Phase, steps, findings, lag and data-loss window."""
        return Progress(
            group=self.request.group,
            operation=self.request.operation,
            source=self.source,
            target=self.target,
            phase=self.phase,
            message=self.message,
            steps=self.runner.records(),
            findings=self.findings,
            lag_seconds=self.lag,
            rpo_seconds=self._group.rpo.total_seconds() if self._group else None,
            data_loss_window_seconds=self.loss_window,
            last_sync_seen=self.last_sync,
            last_sync_source=self.last_sync_source,
            approval_pending=self.approval_pending,
            approved_by=self.approved_by,
            aborted_by=self.runner.aborted_by,
            compensated=tuple(self.compensated),
            fence_workflow=self.fence_workflow,
            left_to_do=self.left_to_do,
            leaves_primary_on=self.leaves_primary_on(),
            triggered_by=self.request.triggered_by,
            alerts=tuple(self.alerts),
        )

    def leaves_primary_on(self) -> str | None:
        """Where the Primary belongs if the operation ends now (what a later ``resume`` expects to find)."""
        if not self.promote_sent:
            return None if self.peer_promotion_requested else self.source
        return None if self.compensating else self.target

    def set_phase(self, phase: Phase, message: str) -> None:
        """Record the phase (search attribute and Web UI details too)."""
        self.phase = phase
        self.message = message
        workflow.upsert_search_attributes([visibility.PHASE.value_set(phase.value)])
        workflow.set_current_details(f"**{phase.value}**: {message}")
        self._report_to_parent()

    def _report_to_parent(self) -> None:
        """Tell the site failover that started this operation (if one did) where it is."""
        parent = workflow.info().parent
        if parent is None:
            return
        handle = workflow.get_external_workflow_handle(parent.workflow_id, run_id=parent.run_id)
        report = GroupReport(
            group=self.name, phase=self.phase, message=self.message, application_started=self.application_started
        )
        self._reports.append(asyncio.ensure_future(handle.signal(GROUP_REPORT_SIGNAL, report)))

    async def reports_sent(self) -> None:
        """Wait until every report to the parent was delivered (or failed: a parent gone needs none)."""
        await asyncio.gather(*self._reports, return_exceptions=True)

    def end(self, outcome: Outcome, phase: Phase, message: str) -> FailoverResult:
        """The result, with the final phase recorded (and counted in the operations' metrics)."""
        self.set_phase(phase, message)
        metrics.operation_ended(self.name, self.request.operation.value, outcome.value, self.loss_window)
        return FailoverResult(outcome=outcome, message=message, progress=self.progress())

    def refuse(self, message: str) -> FailoverResult:
        """End without having changed anything."""
        return self.end(Outcome.REFUSED, Phase.REFUSED, message)

    # ------------------------------------------------------------------------------------------ observation

    async def resolve(self) -> GroupConfig:
        """Ask the worker for the group's configuration (its own file: never the client's)."""
        self._group = await self.runner.run("resolve group", None, "resolve_group", ResolveInput(group=self.name))
        return self._group

    async def choose_and_check(self) -> FailoverResult | None:
        """Observe the roles, choose source and target, and run preflight; a refusal when the operation cannot go.

        Run before the approval wait and again after it: a decision is taken on fresh observations.
        """
        roles: RolesReport = await self.runner.run("observe roles", None, "observe_roles", RolesInput(group=self.name))
        refusal = self._choose_sides(roles)
        if refusal:
            return self.refuse(refusal)
        assert self.source is not None and self.target is not None
        report: PreflightReport = await self.runner.run(
            "preflight",
            None,
            "preflight",
            PreflightInput(
                group=self.name,
                operation=self.effective_operation,
                source=self.source,
                target=self.target,
                force=self.request.force,
            ),
            timeout=self.group.timeouts.preflight,
        )
        self.findings = report.findings
        self.lag = report.lag_seconds
        self.report = report
        if report.refused:
            failed = "; ".join(
                f"{f.check}: {f.observed}" + (f" ({f.remedy})" if f.remedy else "")
                for f in report.findings
                if f.verdict is Verdict.FAIL
            )
            return self.refuse(f"refused by preflight: {failed}")
        return None

    @property
    def effective_operation(self) -> Operation:
        """Unplanned, or planned (a failback is a planned failover back)."""
        return Operation.UNPLANNED if self.request.operation is Operation.UNPLANNED else Operation.PLANNED

    def _choose_sides(self, roles: RolesReport) -> str | None:
        """Pick source and target from the observed roles; return a refusal message when impossible."""
        request, group = self.request, self.group
        clusters = group.clusters
        if request.target is not None and request.target not in clusters:
            return f"unknown target {request.target!r}: group {group.name} lives on {', '.join(clusters)}"
        primaries = roles.primaries()
        unplanned = request.operation is Operation.UNPLANNED
        if roles.unreachable and not unplanned:
            lost = ", ".join(roles.unreachable)
            return (
                f"{lost} does not answer: a planned failover needs both sites; if {lost} is lost, run "
                f"`orchestrate failover --group {group.name} --unplanned`"
            )
        if roles.errors and not unplanned:
            seen = "; ".join(f"{c}: {e}" for c, e in sorted(roles.errors.items()))
            return f"cannot read the group on every side: {seen}"
        if unplanned:
            target = request.target
            if target is None:
                candidates = [
                    c for c in clusters if c not in primaries and c not in roles.unreachable and c not in roles.errors
                ]
                if len(candidates) != 1:
                    return "cannot tell which cluster to promote: pass --to CLUSTER"
                target = candidates[0]
            self.target, self.source = target, group.peer_of(target)
            return None
        if len(primaries) != 1:
            seen = ", ".join(f"{c}: {s.role.value}" for c, s in sorted(roles.statuses.items()))
            return f"expected exactly one Primary, observed {seen or 'none'}"
        source = primaries[0]
        target = request.target or group.peer_of(source)
        if target == source:
            return f"{group.name} already runs on {target}: nothing to do"
        self.source, self.target = source, target
        return None

    async def approval(self) -> FailoverResult | None:
        """Wait for ``approve`` (or ``abort``, or the policy's timeout), then observe and check again.

        Returns:
            ``None`` when the operation may go on; otherwise how it ended (aborted, timed out, refused).
        """
        request = self.request
        # The worker's policy applies whatever the client asked: a client can add an approval, never skip one.
        alert_triggered = request.alert is not None or request.triggered_by.startswith("alert")
        policy = self.group.approval.required(
            unplanned=self.effective_operation is Operation.UNPLANNED, alert=alert_triggered
        )
        if not (request.approval_required or policy):
            return None
        timeout = self.group.approval.timeout
        self.set_phase(
            Phase.WAITING_FOR_APPROVAL,
            f"waiting for `orchestrate approve --group {self.name}` (or `abort`); gives up after {timeout}",
        )
        self.approval_pending = True
        try:
            await workflow.wait_condition(lambda: not self.approval_pending, timeout=timeout)
        except TimeoutError:
            self.approval_pending = False
            return self.refuse(f"not approved within {timeout}: nothing was changed")
        if self.runner.aborted_by:
            return self.end(
                Outcome.FAILED_COMPENSATED, Phase.ABORTED, f"aborted by {self.runner.aborted_by} before any change"
            )
        chosen = (self.source, self.target)
        self.set_phase(Phase.PREFLIGHT, f"approved by {self.approved_by}: checking the group again")
        refusal = await self.choose_and_check()
        if refusal is not None:
            return self.refuse(f"after approval: {refusal.message}")
        if (self.source, self.target) != chosen:
            return self.refuse(
                f"the roles changed while waiting for approval ({chosen[0]} -> {chosen[1]} was approved, now "
                f"{self.source} -> {self.target}): nothing was changed; start the operation again"
            )
        return None

    # ------------------------------------------------------------------------------------------ shared steps

    async def hooks(self, stage: str) -> None:
        """Run the group's ``pre`` or ``post`` hooks, each with an idempotency key that its retries keep."""
        hooks = self.group.hooks.pre if stage == "pre" else self.group.hooks.post
        if not hooks:
            return
        assert self.source is not None and self.target is not None
        self.set_phase(Phase.PRE_HOOKS if stage == "pre" else Phase.POST_HOOKS, f"running {stage}-hooks")
        info = workflow.info()
        for hook in hooks:
            await self.runner.run(
                f"{stage}-hook {hook.name}",
                None,
                "run_hook",
                HookInput(
                    group=self.name,
                    hook_name=hook.name,
                    stage=stage,
                    source=self.source,
                    target=self.target,
                    idempotency_key=f"{info.workflow_id}/{info.run_id}/{stage}-hook/{hook.name}",
                ),
                timeout=self.group.timeouts.hooks + timedelta(seconds=10),
            )

    async def stop_source(self, cluster: str) -> dict[str, int]:
        """Scale the group's workloads on ``cluster`` to zero; the replicas they had, to restore them."""
        self.changed = True
        snapshot: WorkloadsSnapshot = await self.runner.run(
            "stop workloads",
            cluster,
            "stop_workloads",
            GroupOnCluster(group=self.name, cluster=cluster),
            cancellable=False,
        )
        return snapshot.replicas

    async def wait_released(self, cluster: str) -> None:
        """Wait until no pod uses the group's volumes on ``cluster`` and no VolumeAttachment remains."""
        await self.runner.wait(
            "wait for volumes released", cluster, "wait_volumes_released", self.name, self.group.timeouts.quiesce
        )

    async def reprotect(self, cluster: str, peer: str, *, resync: bool, show_phase: bool = True) -> None:
        """Make ``cluster`` follow ``peer`` and wait until it has caught up.

        Args:
            cluster: the old side, to follow.
            peer: the Primary it follows.
            resync: discard its divergent writes (after an unplanned failover).
            show_phase: publish the Reprotecting phase (not while the application starts alongside).
        """
        if show_phase:
            self.set_phase(Phase.REPROTECTING, f"{cluster} follows {peer}")
        await self.runner.run(
            "reprotect",
            cluster,
            "reprotect",
            ReprotectInput(group=self.name, cluster=cluster, peer=peer, resync=resync),
        )
        await self.runner.wait("wait for resync", cluster, "wait_resync", self.name, self.group.timeouts.reprotect)

    async def _start_application(self, replicas: dict[str, int], left: list[str]) -> None:
        """Start the workloads on the new primary, wait until they are ready, tell the parent, run post-hooks.

        Removes each part from ``left`` once it is done.
        """
        assert self.target is not None
        target = self.target
        self.set_phase(Phase.STARTING, f"starting workloads on {target}")
        await self.runner.run(
            "start workloads", target, "start_workloads", ScaleInput(group=self.name, cluster=target, replicas=replicas)
        )
        await self.runner.wait(
            "wait for workloads ready", target, "wait_workloads_ready", self.name, self.group.timeouts.start
        )
        left.remove("start workloads")
        self.application_started = True
        self._report_to_parent()
        await self.hooks("post")
        left.remove("post-hooks")

    async def _start_while_reprotecting(self, replicas: dict[str, int], left: list[str]) -> None:
        """Start the application on the new primary and reprotect the old side at the same time.

        The two touch different sites and neither needs the other: a reprotect without resync discards nothing on
        the old side, it only starts following the new primary. Both run to their end; a failure of either is
        raised once both have ended, with every failure named.

        Raises:
            StepFailedError: a step of either failed for good (``left`` still names what did not finish).
        """
        assert self.source is not None and self.target is not None
        source, target = self.source, self.target

        async def reprotect_old_side() -> None:
            await self.reprotect(source, target, resync=False, show_phase=False)
            left.remove("reprotect")

        async def start_then_show_reprotect() -> None:
            await self._start_application(replicas, left)
            if "reprotect" in left:
                self.set_phase(Phase.REPROTECTING, f"{source} follows {target}")

        outcomes = await asyncio.gather(start_then_show_reprotect(), reprotect_old_side(), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        unexpected = [e for e in errors if not isinstance(e, StepFailedError)]
        if unexpected:
            raise unexpected[0]
        step_failures = [e for e in errors if isinstance(e, StepFailedError)]
        if len(step_failures) == 1:
            raise step_failures[0]
        if step_failures:
            first, second = step_failures
            raise StepFailedError(first.step, first.cluster, f"{first.cause}; and {second}", first.error_type)

    async def after_promotion(
        self, replicas: dict[str, int], final_phase: Phase, *, reprotect: bool, resync: bool, note: str = ""
    ) -> FailoverResult:
        """Start the application on the new primary, run post-hooks, reprotect; never roll back from here.

        Args:
            replicas: the workloads' replicas to start.
            final_phase: the phase of a success (Relocated, FailedOver, Resumed).
            reprotect: make the old side follow the new primary (false when a fence or nobody can).
            resync: reprotect with a full resync (the old side may hold writes the new primary lacks).
            note: appended to the success message (e.g. what the fence will do).
        """
        assert self.source is not None and self.target is not None
        source, target, group = self.source, self.target, self.group
        reprotect_first = reprotect and group.backend.old_source_primary_until_reprotect
        left = ["start workloads", "post-hooks"] + (["reprotect"] if reprotect else [])
        try:
            if reprotect_first:
                # Trident leaves the old source promoted until it is reestablished: do it before anything starts.
                await self.reprotect(source, target, resync=resync)
                left.remove("reprotect")
            # Only a reprotect that discards nothing runs alongside: one with a resync waits until the application
            # runs, so that a failed start still finds the old side's divergent writes where they were.
            alongside = reprotect and not reprotect_first and not resync
            if alongside and workflow.patched(REPROTECT_ALONGSIDE_START):
                await self._start_while_reprotecting(replicas, left)
            else:
                await self._start_application(replicas, left)
                if reprotect and not reprotect_first:
                    await self.reprotect(source, target, resync=resync)
                    left.remove("reprotect")
        except StepFailedError as failure:
            self.left_to_do = tuple(left)
            return self.end(
                Outcome.NEEDS_ATTENTION,
                Phase.NEEDS_ATTENTION,
                f"{target} is Primary and holds the data, but {failure}; left to do: {', '.join(left)}; fix the "
                f"cause, then run `orchestrate resume --group {group.name}`",
            )
        if final_phase is Phase.RESUMED:
            # A resume moves nothing: it finishes on the one Primary, which may be where the failed operation began.
            done = f"{group.name} resumed on {target}, the Primary: the application runs there"
        else:
            verb = "relocated" if final_phase is Phase.RELOCATED else "failed over"
            done = f"{group.name} {verb} from {source} to {target}"
        loss = f"; data-loss window {self.loss_window:.1f}s" if self.loss_window is not None else ""
        return self.end(Outcome.SUCCEEDED, final_phase, f"{done}{loss}{note}")
