"""The fence workflow (``fence/<group>``): the old primary of an unplanned failover never comes back as a primary.

Started just before an unplanned failover requests the target's promotion, independent of what that operation
does next. It probes the old primary with back-off (capped) until its API answers, checks that the new primary
really is Primary, then stops the group's workloads on the old side, waits until its volumes are released, and
demotes it with a full resync from the new primary. Only when the failover signals that it abandoned the promotion
(``promotion_abandoned``) may the fence end without acting, once the old side answers and the new one is still
Secondary: until then a Secondary target only means "not promoted yet". It never gives up: a failing step is
retried with back-off, and the workflow continues as new before its history grows long, carrying where it was.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from adapters.base import Role
    from workflows.failover.steps import StepFailedError, StepRunner
    from workflows.groups import GroupConfig
    from workflows.models import (
        FenceRequest,
        FenceState,
        GroupOnCluster,
        ProbeReport,
        ReprotectInput,
        ResolveInput,
        RolesInput,
        RolesReport,
    )

HISTORY_LIMIT = 2_000
"""Events after which the fence continues as new (Temporal's hard limit is 51,200)."""
CHECK_SIDES = "fence-checks-its-sides"
"""Patch: the fence checks its two sides against the worker's configuration before its first probe."""
STEP_BACKOFF = (timedelta(seconds=2), timedelta(seconds=5), timedelta(seconds=10))


def fence_id(group: str) -> str:
    """The id of a group's fence."""
    return f"fence/{group}"


@workflow.defn(name="GroupFence")
class GroupFenceWorkflow:
    """Wait for the lost primary to return, then stop it and demote it with resync."""

    def __init__(self) -> None:
        self._request: FenceRequest | None = None
        self._stage = "waiting"
        self._message = "starting"
        self._waiting_since: datetime | None = None
        self._next_probe: datetime | None = None
        self._probes = 0
        self._last_error: str | None = None
        self._runner = StepRunner(max_attempts=3, backoff=STEP_BACKOFF)
        self._promotion_abandoned = False

    @workflow.signal
    def promotion_abandoned(self) -> None:
        """The unplanned failover gave up promoting the new side: a Secondary there means there is nothing to fence."""
        self._promotion_abandoned = True

    @workflow.query
    def state(self) -> FenceState:
        """Where the fence is: waiting (since when, next probe), stopping, reprotecting or done."""
        request = self._request
        assert request is not None
        return FenceState(
            group=request.group,
            old_primary=request.old_primary,
            new_primary=request.new_primary,
            stage=self._stage,
            message=self._message,
            waiting_since=self._waiting_since,
            next_probe_at=self._next_probe,
            probes=self._probes,
            last_error=self._last_error,
            steps=self._runner.records()[-10:],
            done=self._stage in ("fenced", "not-needed", "refused"),
        )

    @workflow.run
    async def run(self, request: FenceRequest) -> FenceState:
        """Fence, retrying for as long as it takes."""
        self._request = request
        self._runner.group = request.group
        self._stage = request.stage
        self._waiting_since = request.waiting_since or workflow.now()
        self._probes = request.probes
        self._promotion_abandoned = self._promotion_abandoned or request.promotion_abandoned
        old, new = request.old_primary, request.new_primary
        delay = request.delay or request.poll_initial
        sides_checked = False  # once per run, before its first probe
        workflow.set_current_details(f"fence {old}: waiting for it to answer, then demote it with resync from {new}")
        while True:
            if workflow.info().get_current_history_length() > HISTORY_LIMIT:
                workflow.continue_as_new(
                    request.model_copy(
                        update={
                            "stage": self._stage,
                            "waiting_since": self._waiting_since,
                            "probes": self._probes,
                            "delay": delay,
                            "promotion_abandoned": self._promotion_abandoned,
                        }
                    )
                )
            try:
                if self._stage == "waiting" and not sides_checked:
                    if workflow.patched(CHECK_SIDES):
                        refusal = await self._check_request(request)
                        if refusal is not None:
                            return refusal
                    sides_checked = True
                if self._stage == "waiting":
                    ready = await self._old_primary_answers(request)
                    if ready is None:
                        return self.state()
                    if not ready:
                        await self._pause(delay, f"{old} {self._message}")
                        delay = min(delay * 2, request.poll_max)
                        continue
                    self._stage = "stopping"
                if self._stage == "stopping":
                    self._message = f"{old} answers: stopping its workloads"
                    probe = GroupOnCluster(group=request.group, cluster=old)
                    await self._runner.run("stop workloads on returning site", old, "stop_workloads", probe)
                    group = await self._group(request)
                    await self._runner.wait(
                        "wait for volumes released",
                        old,
                        "wait_volumes_released",
                        request.group,
                        group.timeouts.quiesce,
                    )
                    self._stage = "reprotecting"
                if self._stage == "reprotecting":
                    self._message = f"demoting {old} with resync from {new}"
                    group = await self._group(request)
                    await self._runner.run(
                        "reprotect with resync",
                        old,
                        "reprotect",
                        ReprotectInput(group=request.group, cluster=old, peer=new, resync=True),
                    )
                    await self._runner.wait(
                        "wait for resync", old, "wait_resync", request.group, group.timeouts.reprotect
                    )
                    self._stage = "fenced"
                    self._message = f"{old} fenced: Secondary, resynced from {new}"
                    self._next_probe = None
                    return self.state()
            except StepFailedError as failure:
                self._last_error = str(failure)
                await self._pause(delay, f"{self._stage}: {failure}; retrying")
                delay = min(delay * 2, request.poll_max)

    async def _old_primary_answers(self, request: FenceRequest) -> bool | None:
        """Probe the old primary; ``None`` when fencing is not needed (the new side never became Primary)."""
        old, new = request.old_primary, request.new_primary
        self._probes += 1
        probe: ProbeReport = await self._runner.run(
            "probe old primary", old, "check_reachable", GroupOnCluster(group=request.group, cluster=old)
        )
        if not probe.answers:
            self._message = f"{probe.verdict} ({probe.detail})" if probe.detail else probe.verdict
            return False
        roles: RolesReport = await self._runner.run(
            "observe roles", None, "observe_roles", RolesInput(group=request.group)
        )
        status = roles.statuses.get(new)
        if self._promotion_abandoned and status is not None and status.role is Role.SECONDARY and status.current:
            self._stage = "not-needed"
            self._message = (
                f"not fenced: {new} is not Primary ({status.message}), so {old} keeps the primary role; check "
                f"`orchestrate status --group {request.group}`"
            )
            return None
        if status is None or status.role is not Role.PRIMARY:
            seen = status.message if status else roles.errors.get(new, "no answer")
            self._message = f"answers, but {new} is not observed Primary yet ({seen})"
            return False
        return True

    async def _check_request(self, request: FenceRequest) -> FenceState | None:
        """The sides must be the group's two clusters in the worker's configuration (never a client's guess)."""
        group = await self._group(request)
        old, new = request.old_primary, request.new_primary
        if old in group.clusters and new == group.peer_of(old):
            return None
        self._stage = "refused"
        self._message = f"not fenced: {old} -> {new} are not the two clusters of {group.name} ({group.clusters})"
        return self.state()

    async def _group(self, request: FenceRequest) -> GroupConfig:
        group: GroupConfig = await self._runner.run(
            "resolve group", None, "resolve_group", ResolveInput(group=request.group)
        )
        return group

    async def _pause(self, delay: timedelta, message: str) -> None:
        self._next_probe = workflow.now() + delay
        self._message = f"{message}; next attempt in {delay.total_seconds():.0f}s"
        await workflow.sleep(delay, summary="fence: wait before the next attempt")
