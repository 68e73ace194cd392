"""Activity fakes for the workflow tier: an in-memory two-site world registered under the real activity names.

The world keeps each side's replication role and workload replicas, records every call, and can be told to fail a
given activity (retryably N times, or permanently), to never finish the final sync, to hold a promotion until the
test lets it go, or to make a side unreachable. Its preflight refuses an unplanned failover whose source answers
(unless forced), as the real one does. Every wait's input is recorded (a retried wait must keep its deadline), and
:meth:`FakeWorld.sleeping_wait` builds a synchronous wait that sleeps like the real activities (so that a worker's
shutdown reaches it the way it reaches them). Invariants (never two primaries, workloads never on both sites) are
checked after every write.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failover import activity_sleep
from adapters.base import Backend, ReplicationStatus, Role, SyncPoint, WriteResult
from workflows.groups import GroupConfig
from workflows.models import (
    Finding,
    GroupOnCluster,
    HookInput,
    Operation,
    PairInput,
    PreflightInput,
    PreflightReport,
    ProbeReport,
    PromoteInput,
    ReprotectInput,
    ResolveInput,
    RolesInput,
    RolesReport,
    ScaleInput,
    TransferInput,
    Verdict,
    WaitInput,
    WorkloadsSnapshot,
)


@dataclass
class Side:
    role: Role
    replicas: int
    reachable: bool = True
    settling: str | None = None
    """The storage still acts on this side's last request (its status is not completed), described so."""


@dataclass
class Failure:
    times: int | None  # None: forever
    retryable: bool
    error_type: str
    message: str


@dataclass
class FakeWorld:
    sides: dict[str, Side] = field(
        default_factory=lambda: {"dc1": Side(Role.PRIMARY, 1), "dc2": Side(Role.SECONDARY, 0)}
    )
    calls: list[str] = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)
    stall_final_sync: bool = False
    last_sync: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(seconds=3))
    violations: list[str] = field(default_factory=list)
    returns_after_probes: int | None = None
    final_sync_started: asyncio.Event = field(default_factory=asyncio.Event)
    stall_start: asyncio.Event | None = None
    start_waiting: asyncio.Event = field(default_factory=asyncio.Event)
    awaiting_fence: set[str] = field(default_factory=set)
    """Old primaries abandoned by an unplanned failover: the one allowed exception until they are fenced."""
    groups: dict[str, GroupConfig] = field(default_factory=dict)
    """The worker's configuration: activities resolve the group named in their input here."""
    preflight_findings: list[Finding] = field(default_factory=list)
    """Extra findings the fake preflight reports (a FAIL refuses the operation)."""
    on_call: Callable[[str], None] | None = None
    """Called with every recorded call (scenarios change the world at a given step)."""
    secondary_lags: int = 0
    """How many ``wait_secondary`` observations still see the target Primary (a slow demotion)."""
    hook_calls: list[HookInput] = field(default_factory=list)
    ignore_reprotect: set[str] = field(default_factory=set)
    """Clusters whose controller accepts a reprotect but never acts on it (they stay Primary)."""
    promote_gate: asyncio.Event | None = None
    """When set to an event, ``promote`` holds (after recording its call) until the event is set."""
    promote_started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a ``promote`` starts holding at ``promote_gate``."""
    wait_inputs: list[tuple[str, WaitInput]] = field(default_factory=list)
    """Every wait's activity name and input, in call order (deadlines must hold across attempts)."""
    sync_point: SyncPoint | None = None
    """What ``prepare_sync_point`` returns (a Trident group's snapshot handles); ``None`` as the other backends."""
    transferred: list[SyncPoint] = field(default_factory=list)
    """The sync points ``transfer_sync_point`` brought to a target."""

    def fail(
        self,
        name: str,
        *,
        cluster: str | None = None,
        times: int | None = None,
        retryable: bool = False,
        error_type: str = "BackendFailedError",
        message: str = "injected failure",
    ) -> None:
        self.failures[f"{name}:{cluster}" if cluster else name] = Failure(times, retryable, error_type, message)

    def record(self, call: str) -> None:
        self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)

    group_name: str = "pg-prod"
    """The group the scenario runs on."""

    def group(self, name: str | None = None) -> GroupConfig:
        name = name or self.group_name
        if name not in self.groups:
            raise ApplicationError(
                f"unknown group {name!r}: this worker's configuration has {', '.join(sorted(self.groups))}",
                type="GroupNotConfiguredError",
                non_retryable=True,
            )
        return self.groups[name]

    def _maybe_fail(self, name: str, cluster: str | None = None) -> None:
        self.record(f"{name}:{cluster}" if cluster else name)
        if cluster is not None and not self.sides[cluster].reachable:
            raise ApplicationError(f"[cluster {cluster}] no answer", type="ClusterUnreachableError")
        failure = self.failures.get(f"{name}:{cluster}") or self.failures.get(name)
        if failure is None or failure.times == 0:
            return
        if failure.times is not None:
            failure.times -= 1
        raise ApplicationError(
            f"[cluster {cluster}] {failure.message}", type=failure.error_type, non_retryable=not failure.retryable
        )

    def _check(self) -> None:
        counted = {c: s for c, s in self.sides.items() if s.reachable and c not in self.awaiting_fence}
        primaries = [c for c, s in counted.items() if s.role is Role.PRIMARY]
        if len(primaries) > 1:
            self.violations.append(f"two primaries: {primaries}")
        running = [c for c, s in counted.items() if s.replicas > 0]
        if len(running) > 1:
            self.violations.append(f"workloads on both sites: {running}")

    def final_state_violations(self) -> list[str]:
        """At the end of every scenario: one primary, and workloads (if any) only there.

        An old primary still awaiting its fence (abandoned by an unplanned failover) is the one allowed exception.
        """
        counted = {c: s for c, s in self.sides.items() if c not in self.awaiting_fence}
        primaries = [c for c, s in counted.items() if s.role is Role.PRIMARY]
        running = [c for c, s in counted.items() if s.replicas > 0]
        problems = [] if len(primaries) == 1 else [f"end state: primaries {primaries}"]
        if any(c not in primaries for c in running):
            problems.append(f"end state: workloads on {running}, primary {primaries}")
        return problems

    def status(self, cluster: str) -> ReplicationStatus:
        side = self.sides[cluster]
        return ReplicationStatus(
            cluster=cluster,
            backend=Backend.CSI_ADDONS,
            role=side.role,
            current=True,
            completed=side.settling is None,
            healthy=True,
            replicating=side.role is Role.PRIMARY,
            syncing=False,
            last_sync_time=self.last_sync if side.role is Role.PRIMARY else None,
            message=side.settling or f"{cluster} {side.role.value}",
        )

    def sleeping_wait(
        self, name: str, *, started: threading.Event, release: threading.Event
    ) -> Callable[[WaitInput], ReplicationStatus]:
        """A synchronous wait activity called ``name`` that sleeps (heartbeating) until ``release`` is set.

        It sleeps with :func:`activities.failover.activity_sleep`, as the real waits do; ``started`` is set when an
        attempt begins. Run it in a worker with an ``activity_executor``.
        """
        world = self

        @activity.defn(name=name)
        def sleeping(request: WaitInput) -> ReplicationStatus:
            world.wait_inputs.append((name, request))
            world.record(f"{name}:{request.cluster}")
            started.set()
            while not release.is_set():
                activity.heartbeat("still waiting")
                activity_sleep(0.1)
            return world.status(request.cluster)

        return sleeping

    def activities(self, *, overrides: Mapping[str, Callable[..., Any]] | None = None) -> list[Callable[..., Any]]:
        """The fakes under the real activity names; ``overrides`` (by activity name) replace some of them."""
        world = self

        @activity.defn(name="resolve_group")
        async def resolve_group(request: ResolveInput) -> GroupConfig:
            return world.group(request.group)

        @activity.defn(name="observe_roles")
        async def observe_roles(request: RolesInput) -> RolesReport:
            world._maybe_fail("observe_roles")
            clusters = world.group(request.group).clusters
            reachable = [c for c in clusters if world.sides[c].reachable]
            return RolesReport(
                statuses={c: world.status(c) for c in reachable},
                unreachable=tuple(c for c in clusters if c not in reachable),
            )

        @activity.defn(name="preflight")
        async def preflight(request: PreflightInput) -> PreflightReport:
            world._maybe_fail("preflight")
            findings = [Finding(check="fake", observed="ok", verdict=Verdict.PASS), *world.preflight_findings]
            source_ok = world.sides[request.source].reachable
            if request.operation is Operation.UNPLANNED and source_ok and not request.force:
                findings.append(
                    Finding(
                        check=f"{request.source} lost",
                        observed=f"{request.source} answers: the source site is not lost",
                        verdict=Verdict.FAIL,
                        remedy="use a planned failover, or --force if the source must be abandoned anyway",
                    )
                )
            if "refuse" in world.failures:
                findings.append(
                    Finding(
                        check="lag within RPO",
                        observed="last sync 900s ago (RPO 300s)",
                        verdict=Verdict.FAIL,
                        remedy="pass --force",
                    )
                )
            return PreflightReport(
                findings=tuple(findings),
                source_status=world.status(request.source) if source_ok else None,
                target_status=world.status(request.target),
                lag_seconds=3.0,
                source_reachable=source_ok,
            )

        @activity.defn(name="check_reachable")
        async def check_reachable(request: GroupOnCluster) -> ProbeReport:
            world.record(f"check_reachable:{request.cluster}")
            if world.returns_after_probes is not None:
                world.returns_after_probes -= 1
                if world.returns_after_probes <= 0:
                    world.sides[request.cluster].reachable = True
                    world._check()
            answers = world.sides[request.cluster].reachable
            return ProbeReport(
                cluster=request.cluster, answers=answers, verdict="answers" if answers else "unreachable"
            )

        @activity.defn(name="stop_workloads")
        async def stop_workloads(request: GroupOnCluster) -> WorkloadsSnapshot:
            world._maybe_fail("stop_workloads", request.cluster)
            side = world.sides[request.cluster]
            before = side.replicas or 1
            side.replicas = 0
            return WorkloadsSnapshot(replicas={"postgres": before})

        @activity.defn(name="wait_volumes_released")
        async def wait_volumes_released(request: WaitInput) -> str:
            world.wait_inputs.append(("wait_volumes_released", request))
            world._maybe_fail("wait_volumes_released", request.cluster)
            return "released"

        @activity.defn(name="start_workloads")
        async def start_workloads(request: ScaleInput) -> None:
            world._maybe_fail("start_workloads", request.cluster)
            world.sides[request.cluster].replicas = request.replicas.get("postgres", 1)
            world._check()

        @activity.defn(name="wait_workloads_ready")
        async def wait_workloads_ready(request: WaitInput) -> str:
            world.wait_inputs.append(("wait_workloads_ready", request))
            world._maybe_fail("wait_workloads_ready", request.cluster)
            if world.stall_start is not None and request.cluster != "dc1":
                world.start_waiting.set()
                while not world.stall_start.is_set():
                    activity.heartbeat("0/1 ready")
                    await asyncio.sleep(0.1)
            return "ready"

        @activity.defn(name="prepare_sync_point")
        async def prepare_sync_point(request: GroupOnCluster) -> SyncPoint | None:
            world._maybe_fail("prepare_sync_point", request.cluster)
            return world.sync_point

        @activity.defn(name="transfer_sync_point")
        async def transfer_sync_point(request: TransferInput) -> WriteResult:
            world.wait_inputs.append(("transfer_sync_point", request))
            world._maybe_fail("transfer_sync_point", request.cluster)
            world.transferred.append(request.sync_point)
            return WriteResult(cluster=request.cluster, changed=True)

        @activity.defn(name="demote")
        async def demote(request: PairInput) -> WriteResult:
            world._maybe_fail("demote", request.cluster)
            world.sides[request.cluster].role = Role.SECONDARY
            return WriteResult(cluster=request.cluster, changed=True)

        @activity.defn(name="wait_final_sync")
        async def wait_final_sync(request: WaitInput) -> ReplicationStatus:
            world.wait_inputs.append(("wait_final_sync", request))
            world.final_sync_started.set()
            world._maybe_fail("wait_final_sync", request.cluster)
            if world.stall_final_sync:
                deadline = asyncio.get_running_loop().time() + request.timeout.total_seconds()
                while asyncio.get_running_loop().time() < deadline:
                    activity.heartbeat("final sync running")
                    await asyncio.sleep(0.1)
                raise ApplicationError(
                    f"[cluster {request.cluster}] final sync complete: not reached within "
                    f"{request.timeout.total_seconds():.0f}s",
                    type="BackendFailedError",
                    non_retryable=True,
                )
            return world.status(request.cluster)

        @activity.defn(name="promote")
        async def promote(request: PromoteInput) -> WriteResult:
            world._maybe_fail("promote", request.cluster)
            if world.promote_gate is not None:
                world.promote_started.set()
                while not world.promote_gate.is_set():
                    await asyncio.sleep(0.05)
            if request.force:
                world.awaiting_fence.add(request.peer)
            world.sides[request.cluster].role = Role.PRIMARY
            world._check()
            return WriteResult(cluster=request.cluster, changed=True)

        @activity.defn(name="wait_promoted")
        async def wait_promoted(request: WaitInput) -> ReplicationStatus:
            world.wait_inputs.append(("wait_promoted", request))
            world._maybe_fail("wait_promoted", request.cluster)
            return world.status(request.cluster)

        @activity.defn(name="reprotect")
        async def reprotect(request: ReprotectInput) -> WriteResult:
            world._maybe_fail("reprotect", request.cluster)
            world.record(f"reprotect-resync={request.resync}")
            if request.cluster in world.ignore_reprotect:
                return WriteResult(cluster=request.cluster, changed=True)
            world.sides[request.cluster].role = Role.SECONDARY
            world.awaiting_fence.discard(request.cluster)
            return WriteResult(cluster=request.cluster, changed=True)

        @activity.defn(name="wait_secondary")
        async def wait_secondary(request: WaitInput) -> ReplicationStatus:
            world.wait_inputs.append(("wait_secondary", request))
            world._maybe_fail("wait_secondary", request.cluster)
            for _ in range(world.secondary_lags):
                activity.heartbeat("still Primary")
                await asyncio.sleep(0.05)
            world.secondary_lags = 0
            if world.sides[request.cluster].role is not Role.SECONDARY:
                raise ApplicationError(
                    f"[cluster {request.cluster}] Secondary (current generation): not reached; still Primary",
                    type="BackendFailedError",
                    non_retryable=True,
                )
            return world.status(request.cluster)

        @activity.defn(name="wait_resync")
        async def wait_resync(request: WaitInput) -> ReplicationStatus:
            world.wait_inputs.append(("wait_resync", request))
            world._maybe_fail("wait_resync", request.cluster)
            return world.status(request.cluster)

        @activity.defn(name="run_hook")
        async def run_hook(request: HookInput) -> str:
            world.hook_calls.append(request)
            world._maybe_fail(f"hook-{request.hook_name}")
            return "200"

        fakes: list[Callable[..., Any]] = [
            resolve_group,
            wait_secondary,
            observe_roles,
            preflight,
            check_reachable,
            stop_workloads,
            wait_volumes_released,
            start_workloads,
            wait_workloads_ready,
            prepare_sync_point,
            transfer_sync_point,
            demote,
            wait_final_sync,
            promote,
            wait_promoted,
            reprotect,
            wait_resync,
            run_hook,
        ]
        replaced = overrides or {}
        return [replaced.get(f.__name__, f) for f in fakes]
