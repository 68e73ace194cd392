"""The failover activities: thin wrappers that resolve a group's cluster and adapter, call it, and heartbeat.

Each activity is a plain ``def`` (the Kubernetes client is synchronous; the worker runs them in a thread pool) and
is idempotent by construction: adapters and workload scaling "set desired, then observe", so a retry after a
worker crash repeats no harmful write. Waits poll and heartbeat their latest observation, so the Web UI and the
progress query show what is being waited for; a retried wait resumes where the old one left off.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
from temporalio import activity
from temporalio.exceptions import CancelledError

from activities.errors import domain_errors
from adapters.base import ReplicationAdapter, ReplicationStatus, Role, SyncPoint, WriteResult
from adapters.registry import adapter_for
from adapters.waiting import Predicate, poll_intervals, wait_for_status
from clusters.errors import BackendFailedError, ClusterUnreachableError, OrchestratorError
from clusters.registry import ClusterRegistry
from clusters.workloads import WorkloadRef, read_workload, scale_workload, volumes_in_use
from workflows.groups import GroupConfig, WorkloadConfig
from workflows.models import (
    Finding,
    GroupOnCluster,
    HookInput,
    Operation,
    PairInput,
    PreflightInput,
    PreflightReport,
    PromoteInput,
    ReprotectInput,
    RolesInput,
    RolesReport,
    ScaleInput,
    Verdict,
    WaitInput,
    WorkloadsSnapshot,
)

FIRST_POLL = 0.05
"""Seconds before a wait's second observation: most steps finish within a second."""
MAX_POLL = 2.0
"""Longest pause between observations of a long wait (a final sync that takes minutes)."""


def _ordered(group: GroupConfig, *, reverse: bool = False) -> list[WorkloadConfig]:
    return sorted(group.workloads, key=lambda w: w.order, reverse=reverse)


def _ref(workload: WorkloadConfig) -> WorkloadRef:
    return WorkloadRef(kind=workload.kind, name=workload.name)


def _heartbeat(detail: str) -> None:
    if activity.in_activity():
        activity.heartbeat(detail)


class FailoverActivities:
    """Activities bound to one worker's cluster registry and HTTP client.

    Args:
        registry: one API client per configured cluster, shared by all activity threads.
        http: the client for hooks.
    """

    def __init__(self, registry: ClusterRegistry, http: httpx.Client | None = None) -> None:
        self.registry = registry
        self.http = http or httpx.Client()

    def adapter(self, group: GroupConfig, cluster: str) -> ReplicationAdapter:
        """The group's adapter on ``cluster``."""
        return adapter_for(self.registry.api(cluster), group.replication_target(cluster))

    # ------------------------------------------------------------------------------------------- observation

    @activity.defn(name="observe_roles")
    @domain_errors
    def observe_roles(self, request: RolesInput) -> RolesReport:
        """Observe both sides; an unreachable side is listed, not fatal."""
        statuses: dict[str, ReplicationStatus] = {}
        unreachable: list[str] = []
        for cluster in request.group.clusters:
            try:
                self.registry.api(cluster).ping()
                statuses[cluster] = self.adapter(request.group, cluster).observe()
            except ClusterUnreachableError:
                unreachable.append(cluster)
        return RolesReport(statuses=statuses, unreachable=tuple(unreachable))

    @activity.defn(name="check_reachable")
    @domain_errors
    def check_reachable(self, request: GroupOnCluster) -> bool:
        """Whether ``cluster`` answers within the short reachability timeout."""
        try:
            self.registry.api(request.cluster).ping()
        except ClusterUnreachableError:
            return False
        return True

    @activity.defn(name="preflight")
    @domain_errors
    def preflight(self, request: PreflightInput) -> PreflightReport:
        """Check everything an operation needs, and report each check with what was observed."""
        return Preflight(self, request).run()

    # ------------------------------------------------------------------------------------------- workloads

    @activity.defn(name="stop_workloads")
    @domain_errors
    def stop_workloads(self, request: GroupOnCluster) -> WorkloadsSnapshot:
        """Scale the group's workloads to zero (reverse start order) and return the replicas they had."""
        api = self.registry.api(request.cluster)
        namespace = request.group.namespace
        replicas: dict[str, int] = {}
        for workload in _ordered(request.group, reverse=True):
            state = read_workload(api, namespace, _ref(workload))
            # A retried stop sees 0 already: remember the configured count, not the 0.
            replicas[workload.name] = state.desired or workload.replicas
            scale_workload(api, namespace, _ref(workload), 0)
        return WorkloadsSnapshot(replicas=replicas)

    @activity.defn(name="wait_volumes_released")
    @domain_errors
    def wait_volumes_released(self, request: WaitInput) -> str:
        """Wait until no pod uses the group's PVCs and no VolumeAttachment remains for their PVs."""
        api = self.registry.api(request.cluster)
        group = request.group
        pvcs = list(group.replication.pvcs) or self._group_pvcs(group, request.cluster)
        deadline = datetime.now(UTC) + request.timeout
        intervals = poll_intervals(FIRST_POLL, MAX_POLL)
        while True:
            in_use = volumes_in_use(api, group.namespace, pvcs)
            _heartbeat(in_use.describe())
            if in_use.idle:
                return in_use.describe()
            if datetime.now(UTC) >= deadline:
                raise BackendFailedError(
                    f"quiesce: {in_use.describe()} after {request.timeout}",
                    cluster=request.cluster,
                    object_ref=f"namespace {group.namespace}",
                )
            activity_sleep(next(intervals))

    def _group_pvcs(self, group: GroupConfig, cluster: str) -> list[str]:
        status = self.adapter(group, cluster).observe()
        return [volume.name for volume in status.volumes]

    @activity.defn(name="start_workloads")
    @domain_errors
    def start_workloads(self, request: ScaleInput) -> None:
        """Scale the group's workloads up (in start order) to the remembered or configured replicas."""
        api = self.registry.api(request.cluster)
        for workload in _ordered(request.group):
            replicas = request.replicas.get(workload.name, workload.replicas)
            scale_workload(api, request.group.namespace, _ref(workload), replicas)

    @activity.defn(name="wait_workloads_ready")
    @domain_errors
    def wait_workloads_ready(self, request: WaitInput) -> str:
        """Wait until every workload has all its replicas ready."""
        api = self.registry.api(request.cluster)
        deadline = datetime.now(UTC) + request.timeout
        intervals = poll_intervals(FIRST_POLL, MAX_POLL)
        while True:
            states = [read_workload(api, request.group.namespace, _ref(w)) for w in _ordered(request.group)]
            detail = ", ".join(f"{s.ref}: {s.ready}/{s.desired} ready" for s in states)
            _heartbeat(detail)
            if all(s.settled for s in states):
                return detail
            if datetime.now(UTC) >= deadline:
                raise BackendFailedError(
                    f"start: workloads not ready after {request.timeout}: {detail}", cluster=request.cluster
                )
            activity_sleep(next(intervals))

    # ------------------------------------------------------------------------------------------- replication

    @activity.defn(name="demote")
    @domain_errors
    def demote(self, request: PairInput) -> WriteResult:
        """Ask the source to become Secondary (planned: no forced resync)."""
        peer = self.adapter(request.group, request.peer)
        return self.adapter(request.group, request.cluster).demote(peer=peer)

    @activity.defn(name="wait_final_sync")
    @domain_errors
    def wait_final_sync(self, request: WaitInput) -> ReplicationStatus:
        """Wait until the demoted source reports the final sync complete."""
        adapter = self.adapter(request.group, request.cluster)
        return self._wait(adapter, adapter.final_sync_complete, "final sync complete", request)

    @activity.defn(name="prepare_sync_point")
    @domain_errors
    def prepare_sync_point(self, request: GroupOnCluster) -> SyncPoint | None:
        """On the source: create what the target must reach before promotion (Trident snapshots)."""
        operation_id = None
        if activity.in_activity():
            info = activity.info()
            operation_id = f"{info.workflow_id}/{info.workflow_run_id}"
        return self.adapter(request.group, request.cluster).prepare_sync_point(operation_id=operation_id)

    @activity.defn(name="promote")
    @domain_errors
    def promote(self, request: PromoteInput) -> WriteResult:
        """Ask ``cluster`` to become Primary."""
        peer = self.adapter(request.group, request.peer) if request.peer else None
        adapter = self.adapter(request.group, request.cluster)
        return adapter.promote(force=request.force, sync_point=request.sync_point, peer=peer)

    @activity.defn(name="wait_promoted")
    @domain_errors
    def wait_promoted(self, request: WaitInput) -> ReplicationStatus:
        """Wait until ``cluster`` reports Primary."""
        adapter = self.adapter(request.group, request.cluster)
        return self._wait(adapter, adapter.promoted, "promoted", request)

    @activity.defn(name="reprotect")
    @domain_errors
    def reprotect(self, request: ReprotectInput) -> WriteResult:
        """Make ``cluster`` follow ``peer`` as Secondary."""
        peer = self.adapter(request.group, request.peer)
        return self.adapter(request.group, request.cluster).reprotect(resync=request.resync, peer=peer)

    @activity.defn(name="wait_resync")
    @domain_errors
    def wait_resync(self, request: WaitInput) -> ReplicationStatus:
        """Wait until ``cluster`` follows its peer and has caught up."""
        adapter = self.adapter(request.group, request.cluster)
        return self._wait(adapter, adapter.resync_complete, "resync complete", request)

    def _wait(
        self, adapter: ReplicationAdapter, predicate: Predicate, what: str, request: WaitInput
    ) -> ReplicationStatus:
        return wait_for_status(
            adapter,
            predicate,
            what=what,
            timeout=request.timeout.total_seconds(),
            interval=FIRST_POLL,
            max_interval=MAX_POLL,
            progress=lambda status: _heartbeat(status.message),
            sleep=activity_sleep,
        )

    # ------------------------------------------------------------------------------------------- hooks

    @activity.defn(name="run_hook")
    @domain_errors
    def run_hook(self, request: HookInput) -> str:
        """Call one HTTP hook with the operation's context; a non-2xx answer fails the step."""
        hooks = request.group.hooks.pre if request.stage == "pre" else request.group.hooks.post
        hook = next(h for h in hooks if h.name == request.hook_name)
        payload = {
            "group": request.group.name,
            "stage": request.stage,
            "source": request.source,
            "target": request.target,
            "hook": hook.name,
        }
        try:
            response = self.http.request(
                hook.method, hook.url, json=payload, headers=hook.headers, timeout=hook.timeout.total_seconds()
            )
        except httpx.HTTPError as exc:
            raise ClusterUnreachableError(f"hook {hook.name}: {exc}", object_ref=hook.url) from exc
        if response.status_code >= 300:
            raise BackendFailedError(
                f"hook {hook.name} answered {response.status_code}: {response.text[:200]}", object_ref=hook.url
            )
        return f"hook {hook.name}: {response.status_code}"


def activity_sleep(seconds: float) -> None:
    """Sleep inside an activity, waking early when Temporal cancels it (so compensation is not delayed)."""
    if activity.in_activity():
        activity.wait_for_cancelled_sync(seconds)
        if activity.is_cancelled():
            raise CancelledError("activity cancelled")
        return
    time.sleep(seconds)


class Preflight:
    """The checks before an operation, each recorded as a :class:`Finding`."""

    def __init__(self, owner: FailoverActivities, request: PreflightInput) -> None:
        self.owner = owner
        self.request = request
        self.findings: list[Finding] = []

    def add(self, check: str, observed: str, verdict: Verdict, remedy: str | None = None) -> None:
        """Record one check."""
        self.findings.append(Finding(check=check, observed=observed, verdict=verdict, remedy=remedy))

    def observe(self, cluster: str) -> tuple[bool, ReplicationStatus | None]:
        """Reachability and status of one side, recorded as findings."""
        try:
            self.owner.registry.api(cluster).ping()
        except ClusterUnreachableError:
            return False, None
        try:
            return True, self.owner.adapter(self.request.group, cluster).observe()
        except OrchestratorError as exc:
            self.add(
                f"replication objects on {cluster}",
                exc.describe(),
                Verdict.FAIL,
                "create the group's replication objects or fix the group's configuration",
            )
            return True, None

    def run(self) -> PreflightReport:
        """Run every check for the request's operation."""
        request = self.request
        source, target = request.source, request.target
        target_reachable, target_status = self.observe(target)
        source_reachable, source_status = self.observe(source)
        unplanned = request.operation is Operation.UNPLANNED
        self._reachability(source, source_reachable, target, target_reachable, unplanned)
        if target_status is not None:
            self._target_role(target, target_status)
        if source_status is not None and not unplanned:
            self._source_role(source, source_status)
        lag = self._lag(source_status)
        if target_reachable:
            self._workloads(target, expect_running=False)
        if source_reachable and not unplanned:
            self._workloads(source, expect_running=True)
        return PreflightReport(
            findings=tuple(self.findings),
            source_status=source_status,
            target_status=target_status,
            lag_seconds=lag,
            source_reachable=source_reachable,
        )

    def _reachability(self, source: str, source_ok: bool, target: str, target_ok: bool, unplanned: bool) -> None:
        if target_ok:
            self.add(f"{target} reachable", "answers", Verdict.PASS)
        else:
            self.add(
                f"{target} reachable",
                "no answer",
                Verdict.FAIL,
                f"the target must be reachable: restore access to {target}",
            )
        if unplanned:
            if source_ok and not self.request.force:
                self.add(
                    f"{source} lost",
                    f"{source} answers: the source site is not lost",
                    Verdict.FAIL,
                    f"use a planned failover (orchestrate failover --group {self.request.group.name}) which "
                    "loses no data, or --force if the source must be abandoned anyway",
                )
            elif source_ok:
                self.add(f"{source} lost", f"{source} answers; forced", Verdict.WARN)
            else:
                self.add(f"{source} lost", f"{source} does not answer", Verdict.PASS)
        elif source_ok:
            self.add(f"{source} reachable", "answers", Verdict.PASS)
        else:
            self.add(
                f"{source} reachable",
                "no answer",
                Verdict.FAIL,
                "a planned failover needs both sites; if the site is lost use --unplanned",
            )

    def _target_role(self, target: str, status: ReplicationStatus) -> None:
        if status.role is Role.SECONDARY and status.current:
            self.add(f"{target} is Secondary", status.message, Verdict.PASS)
        else:
            self.add(
                f"{target} is Secondary",
                status.message or status.role.value,
                Verdict.FAIL,
                f"{target} must be a current Secondary before it can be promoted",
            )
        if status.failure:
            self.add(f"{target} not degraded", status.failure, Verdict.FAIL, "fix the replication error first")

    def _source_role(self, source: str, status: ReplicationStatus) -> None:
        if status.role is Role.PRIMARY and status.current:
            self.add(f"{source} is Primary", status.message, Verdict.PASS)
        else:
            self.add(
                f"{source} is Primary",
                status.message or status.role.value,
                Verdict.FAIL,
                f"the group's primary is not {source}: check `orchestrate status --group {self.request.group.name}`",
            )
        if status.failure or not status.healthy:
            self.add(
                f"{source} healthy", status.failure or status.message, Verdict.FAIL, "fix the replication error first"
            )
        else:
            self.add(f"{source} healthy", "not degraded", Verdict.PASS)

    def _lag(self, source_status: ReplicationStatus | None) -> float | None:
        group = self.request.group
        rpo = group.rpo.total_seconds()
        last = source_status.last_sync_time if source_status else None
        if last is None:
            if self.request.operation is not Operation.UNPLANNED:
                self.add("lag within RPO", "the backend reports no last sync time", Verdict.WARN)
            return None
        lag = max(0.0, (datetime.now(UTC) - last).total_seconds())
        observed = f"last sync {lag:.1f}s ago (RPO {rpo:.0f}s)"
        if lag <= rpo:
            self.add("lag within RPO", observed, Verdict.PASS)
        elif self.request.force:
            self.add("lag within RPO", observed + "; forced", Verdict.WARN)
        else:
            self.add(
                "lag within RPO",
                observed,
                Verdict.FAIL,
                "wait for replication to catch up, or pass --force to accept the lag",
            )
        return lag

    def _workloads(self, cluster: str, *, expect_running: bool) -> None:
        api = self.owner.registry.api(cluster)
        for workload in self.request.group.workloads:
            try:
                state = read_workload(api, self.request.group.namespace, _ref(workload))
            except OrchestratorError as exc:
                self.add(
                    f"{workload.kind} {workload.name} on {cluster}",
                    exc.describe(),
                    Verdict.FAIL,
                    f"create {workload.kind} {workload.name} on {cluster} (scaled to 0 on the secondary)",
                )
                continue
            if not expect_running and state.desired > 0:
                self.add(
                    f"{workload.kind} {workload.name} stopped on {cluster}",
                    f"{state.desired} replica(s) desired on the target",
                    Verdict.FAIL,
                    f"scale {workload.name} to 0 on {cluster}: workloads must never run on both sites",
                )
            else:
                self.add(
                    f"{workload.kind} {workload.name} on {cluster}",
                    f"{state.ready}/{state.desired} ready",
                    Verdict.PASS,
                )
