"""The failover activities: thin wrappers that resolve a group's cluster and adapter, call it, and heartbeat.

Each activity is a plain ``def`` (the Kubernetes client is synchronous; the worker runs them in a thread pool) and
is idempotent by construction: adapters and workload scaling "set desired, then observe", so a retry after a
worker crash repeats no harmful write. Waits follow their objects with watches (:mod:`clusters.watch`: a change
is acted on within milliseconds) and heartbeat their latest observation, so the Web UI and the progress query show
what is being waited for; a retried wait resumes where the old one left off.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict, TypeVar

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities.errors import domain_errors
from activities.groups import GroupLookup, workload_ref
from activities.preflight import Preflight
from adapters.base import ReplicationAdapter, ReplicationStatus, Role, SyncPoint, WriteResult
from adapters.registry import adapter_for
from adapters.waiting import Predicate, wait_for_resync, wait_for_status
from clusters.api import PODS, VOLUME_ATTACHMENTS, ClusterApi
from clusters.errors import (
    BackendFailedError,
    ClusterUnreachableError,
    InvalidSpecError,
    OrchestratorError,
    RetryableError,
)
from clusters.reachability import probe_once
from clusters.registry import ClusterRegistry
from clusters.watch import WatchScope, observations
from clusters.workloads import (
    RESOURCES,
    VolumesInUse,
    WorkloadState,
    bound_volumes,
    read_workload,
    scale_workload,
    volumes_in_use,
    workload_pvcs,
    workload_state,
)
from workflows.groups import GroupConfig, HeaderSource, WorkloadConfig
from workflows.models import (
    GroupOnCluster,
    HookInput,
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
    WaitInput,
    WorkloadsSnapshot,
)

T = TypeVar("T")

SILENCE_MEMORY = 10.0
"""Seconds a cluster that gave no answer is reported unreachable to the monitors without being asked again."""
ROLE_READ_TIMEOUT = (2.0, 2.0)
"""(connect, read) seconds of the reads that observe both sides' roles: those of a reachability probe."""

FIRST_POLL = 0.05
"""Seconds before a wait's second observation: most steps finish within a second."""
MAX_POLL = 2.0
"""Longest pause between observations of a long wait (a final sync that takes minutes)."""


def _ordered(group: GroupConfig, *, reverse: bool = False) -> list[WorkloadConfig]:
    return sorted(group.workloads, key=lambda w: w.order, reverse=reverse)


def _deadline(request: WaitInput) -> datetime:
    """The wait's deadline: fixed by the workflow at the first attempt, so that a retry does not restart it."""
    return request.deadline or datetime.now(UTC) + request.timeout


def _remaining(request: WaitInput) -> float:
    return max(0.0, (_deadline(request) - datetime.now(UTC)).total_seconds())


def _heartbeat(detail: str) -> None:
    if activity.in_activity():
        activity.heartbeat(detail)


class FailoverActivities:
    """Activities bound to one worker's configuration, cluster registry and HTTP client.

    Args:
        registry: one API client per configured cluster, shared by all activity threads.
        groups: the worker's own configuration by group name (the only source of what an activity acts on).
        http: the client for hooks.
    """

    def __init__(self, registry: ClusterRegistry, groups: GroupLookup, http: httpx.Client | None = None) -> None:
        self.registry = registry
        self.groups = groups
        self.http = http or httpx.Client()
        self._silent_since: dict[str, float] = {}
        self._silent_lock = threading.Lock()

    def group(self, name: str) -> GroupConfig:
        """The group called ``name`` in this worker's configuration."""
        return self.groups(name)

    def api(self, group: GroupConfig, cluster: str) -> ClusterApi:
        """The API of one of the group's clusters (an input naming another cluster is refused)."""
        if cluster not in group.clusters:
            raise InvalidSpecError(f"group {group.name} does not live on {cluster}", cluster=cluster)
        return self.registry.api(cluster)

    def adapter(self, group: GroupConfig, cluster: str, api: ClusterApi | None = None) -> ReplicationAdapter:
        """The group's adapter on ``cluster`` (reading through ``api``, a view of that cluster's API, when given)."""
        return adapter_for(api or self.api(group, cluster), group.replication_target(cluster))

    # ------------------------------------------------------------------------------------------- observation

    @activity.defn(name="resolve_group")
    @domain_errors
    def resolve_group(self, request: ResolveInput) -> GroupConfig:
        """The group's configuration as this worker has it (hook headers are references, never values)."""
        return self.group(request.group)

    @activity.defn(name="observe_roles")
    @domain_errors
    def observe_roles(self, request: RolesInput) -> RolesReport:
        """Observe both sides: a side that does not answer is listed, one that answers with an error too."""
        group = self.group(request.group)
        statuses: dict[str, ReplicationStatus] = {}
        unreachable: list[str] = []
        errors: dict[str, str] = {}
        for cluster in group.clusters:
            if request.skip_silent and self._silent_recently(cluster):
                unreachable.append(cluster)
                continue
            try:
                # Reads with the probe's short timeout: a hung API server costs seconds, not a read timeout.
                quick = self.registry.api(cluster).with_timeout(ROLE_READ_TIMEOUT)
                statuses[cluster] = self.adapter(group, cluster, api=quick).observe()
                self._heard_from(cluster, answered=True)
            except ClusterUnreachableError:
                unreachable.append(cluster)
                self._heard_from(cluster, answered=False)
            except OrchestratorError as exc:
                errors[cluster] = exc.describe()
                self._heard_from(cluster, answered=True)
        return RolesReport(statuses=statuses, unreachable=tuple(unreachable), errors=errors)

    def _silent_recently(self, cluster: str) -> bool:
        with self._silent_lock:
            since = self._silent_since.get(cluster)
        return since is not None and time.monotonic() - since < SILENCE_MEMORY

    def _heard_from(self, cluster: str, *, answered: bool) -> None:
        with self._silent_lock:
            if answered:
                self._silent_since.pop(cluster, None)
            else:
                self._silent_since[cluster] = time.monotonic()

    @activity.defn(name="check_reachable")
    @domain_errors
    def check_reachable(self, request: GroupOnCluster) -> ProbeReport:
        """One probe of ``cluster``: whether its API answers usably (not 401/403, TLS failure or 5xx)."""
        found = probe_once(self.api(self.group(request.group), request.cluster))
        return ProbeReport(
            cluster=request.cluster,
            answers=found.verdict.value == "answers",
            verdict=found.verdict.value,
            detail=found.detail,
        )

    @activity.defn(name="preflight")
    @domain_errors
    def preflight(self, request: PreflightInput) -> PreflightReport:
        """Check everything an operation needs, and report each check with what was observed."""
        return Preflight(self, self.group(request.group), request).run()

    # ------------------------------------------------------------------------------------------- workloads

    @activity.defn(name="stop_workloads")
    @domain_errors
    def stop_workloads(self, request: GroupOnCluster) -> WorkloadsSnapshot:
        """Scale the group's workloads to zero (reverse start order) and return the replicas they had."""
        group = self.group(request.group)
        api = self.api(group, request.cluster)
        replicas: dict[str, int] = {}
        for workload in _ordered(group, reverse=True):
            ref = workload_ref(workload)
            document = api.get(RESOURCES[ref.kind], ref.name, group.namespace)
            # A retried stop sees 0 already: remember the configured count, not the 0.
            replicas[workload.name] = workload_state(ref, document).desired or workload.replicas
            scale_workload(api, group.namespace, ref, 0, current=document)
        return WorkloadsSnapshot(replicas=replicas)

    @activity.defn(name="wait_volumes_released")
    @domain_errors
    def wait_volumes_released(self, request: WaitInput) -> str:
        """Wait until no pod uses the group's PVCs and no VolumeAttachment remains for their PVs.

        The PVCs are the union of the configured ones, those the workloads use (their claim templates and pods)
        and those the replication objects list: an empty status list alone never ends the wait.
        """
        group = self.group(request.group)
        api = self.api(group, request.cluster)
        volumes: tuple[list[str], set[str]] | None = None

        def observe(reads: ClusterApi) -> VolumesInUse:
            nonlocal volumes
            if volumes is None:  # once, from the watched pods: the PVCs and the PVs they are bound to
                pvcs = self.group_pvcs(group, request.cluster, api=reads)
                volumes = (pvcs, bound_volumes(reads, group.namespace, pvcs))
            return volumes_in_use(reads, group.namespace, volumes[0], volumes[1])

        scopes = (WatchScope(PODS, group.namespace), WatchScope(VOLUME_ATTACHMENTS))
        in_use = self._watch_until(api, scopes, observe, lambda found: found.idle, request)
        if not in_use.idle:
            raise BackendFailedError(
                f"quiesce: {in_use.describe()} after {request.timeout}",
                cluster=request.cluster,
                object_ref=f"namespace {group.namespace}",
            )
        return in_use.describe()

    def group_pvcs(
        self,
        group: GroupConfig,
        cluster: str,
        status: ReplicationStatus | None = None,
        api: ClusterApi | None = None,
    ) -> list[str]:
        """Every PVC of the group on ``cluster``: configured, used by its workloads, listed by its replication.

        Args:
            group: the group.
            cluster: where to look.
            status: the replication status the caller just observed on ``cluster``; observed here when not given.
            api: a view of the cluster's API to read through (e.g. a watch's), when not the cluster's own.
        """
        api = api or self.api(group, cluster)
        names = set(group.replication.pvcs)
        names.update(workload_pvcs(api, group.namespace, [workload_ref(w) for w in group.workloads]))
        if status is None:
            try:
                status = self.adapter(group, cluster, api=api).observe()
            except OrchestratorError:
                status = None
        if status is not None and group.backend.volumes_are_pvcs:
            names.update(v.name for v in status.volumes)
        return sorted(names)

    @activity.defn(name="start_workloads")
    @domain_errors
    def start_workloads(self, request: ScaleInput) -> None:
        """Scale the group's workloads up (in start order) to the remembered or configured replicas."""
        group = self.group(request.group)
        api = self.api(group, request.cluster)
        for workload in _ordered(group):
            replicas = request.replicas.get(workload.name, workload.replicas)
            scale_workload(api, group.namespace, workload_ref(workload), replicas)

    @activity.defn(name="wait_workloads_ready")
    @domain_errors
    def wait_workloads_ready(self, request: WaitInput) -> str:
        """Wait until every workload has all its replicas ready."""
        group = self.group(request.group)
        api = self.api(group, request.cluster)
        workloads = _ordered(group)
        scopes = tuple(WatchScope(RESOURCES[w.kind], group.namespace, name=w.name) for w in workloads)

        def observe(reads: ClusterApi) -> list[WorkloadState]:
            return [read_workload(reads, group.namespace, workload_ref(w)) for w in workloads]

        states = self._watch_until(api, scopes, observe, lambda found: all(s.settled for s in found), request)
        detail = _readiness(states)
        if not all(s.settled for s in states):
            raise BackendFailedError(
                f"start: workloads not ready after {request.timeout}: {detail}", cluster=request.cluster
            )
        return detail

    def _watch_until(
        self,
        api: ClusterApi,
        scopes: tuple[WatchScope, ...],
        observe: Callable[[ClusterApi], T],
        done: Callable[[T], bool],
        request: WaitInput,
    ) -> T:
        """Observe on every change of ``scopes`` until ``done`` or the wait's deadline; the last observation.

        Retryable errors are retried until the deadline, then raised.
        """
        found = observations(
            api, scopes, observe, deadline=time.monotonic() + _remaining(request), sleep=activity_sleep
        )
        with contextlib.closing(found):
            for observed in found:
                if isinstance(observed, RetryableError):
                    if datetime.now(UTC) >= _deadline(request):
                        raise observed
                    continue
                _heartbeat(_describe(observed))
                if done(observed) or datetime.now(UTC) >= _deadline(request):
                    return observed
        raise AssertionError("observations never end")

    # ------------------------------------------------------------------------------------------- replication

    @activity.defn(name="demote")
    @domain_errors
    def demote(self, request: PairInput) -> WriteResult:
        """Ask the source to become Secondary (planned: no forced resync)."""
        group = self.group(request.group)
        peer = self.adapter(group, request.peer)
        return self.adapter(group, request.cluster).demote(peer=peer)

    @activity.defn(name="wait_final_sync")
    @domain_errors
    def wait_final_sync(self, request: WaitInput) -> ReplicationStatus:
        """Wait until the demoted source reports the final sync complete."""
        adapter = self.adapter(self.group(request.group), request.cluster)
        return self._wait(adapter, adapter.final_sync_complete, "final sync complete", request)

    @activity.defn(name="prepare_sync_point")
    @domain_errors
    def prepare_sync_point(self, request: GroupOnCluster) -> SyncPoint | None:
        """On the source: create what the target must reach before promotion (Trident snapshots)."""
        operation_id = None
        if activity.in_activity():
            info = activity.info()
            operation_id = f"{info.workflow_id}/{info.workflow_run_id}"
        adapter = self.adapter(self.group(request.group), request.cluster)
        return adapter.prepare_sync_point(operation_id=operation_id, watch=True)

    @activity.defn(name="transfer_sync_point")
    @domain_errors
    def transfer_sync_point(self, request: TransferInput) -> WriteResult:
        """On the target: bring the source's sync point here and wait until it has arrived (Trident snapshots)."""
        adapter = self.adapter(self.group(request.group), request.cluster)
        return adapter.transfer_sync_point(
            request.sync_point, timeout=_remaining(request), progress=_heartbeat, sleep=activity_sleep, watch=True
        )

    @activity.defn(name="promote")
    @domain_errors
    def promote(self, request: PromoteInput) -> WriteResult:
        """Ask ``cluster`` to become Primary."""
        group = self.group(request.group)
        peer = self.adapter(group, request.peer) if request.peer else None
        adapter = self.adapter(group, request.cluster)
        return adapter.promote(force=request.force, sync_point=request.sync_point, peer=peer)

    @activity.defn(name="wait_promoted")
    @domain_errors
    def wait_promoted(self, request: WaitInput) -> ReplicationStatus:
        """Wait until ``cluster`` reports Primary."""
        adapter = self.adapter(self.group(request.group), request.cluster)
        return self._wait(adapter, adapter.promoted, "promoted", request)

    @activity.defn(name="wait_secondary")
    @domain_errors
    def wait_secondary(self, request: WaitInput) -> ReplicationStatus:
        """Wait until ``cluster`` reports Secondary for its current generation (before its peer is re-promoted)."""
        adapter = self.adapter(self.group(request.group), request.cluster)
        return self._wait(adapter, _observed_secondary, "Secondary (current generation)", request)

    @activity.defn(name="reprotect")
    @domain_errors
    def reprotect(self, request: ReprotectInput) -> WriteResult:
        """Make ``cluster`` follow ``peer`` as Secondary."""
        group = self.group(request.group)
        peer = self.adapter(group, request.peer)
        return self.adapter(group, request.cluster).reprotect(resync=request.resync, peer=peer)

    @activity.defn(name="wait_resync")
    @domain_errors
    def wait_resync(self, request: WaitInput) -> ReplicationStatus:
        """Wait until ``cluster`` follows its peer and has caught up."""
        group = self.group(request.group)
        here, peer = self.adapter(group, request.cluster), self.adapter(group, group.peer_of(request.cluster))
        return wait_for_resync(here, peer, **_pacing(request))

    def _wait(
        self, adapter: ReplicationAdapter, predicate: Predicate, what: str, request: WaitInput
    ) -> ReplicationStatus:
        return wait_for_status(adapter, predicate, what=what, **_pacing(request))

    # ------------------------------------------------------------------------------------------- hooks

    @activity.defn(name="run_hook")
    @domain_errors
    def run_hook(self, request: HookInput) -> str:
        """Call one configured HTTP hook with the operation's context; a non-2xx answer fails the step.

        The URL and headers come from this worker's configuration (the input only names the hook); header values
        are read from their environment variable or file now and appear in no result, error or log. Every
        attempt of a step sends the same ``Idempotency-Key``.
        """
        group = self.group(request.group)
        hook = group.hook(request.stage, request.hook_name)
        if hook is None:
            raise InvalidSpecError(f"group {group.name} has no {request.stage}-hook {request.hook_name!r}")
        payload = {
            "group": group.name,
            "stage": request.stage,
            "source": request.source,
            "target": request.target,
            "hook": hook.name,
            "idempotency_key": request.idempotency_key,
        }
        headers = {name: header_value(hook.name, name, source) for name, source in hook.headers.items()}
        if request.idempotency_key:
            headers["Idempotency-Key"] = request.idempotency_key
        try:
            response = self.http.request(
                hook.method, hook.url, json=payload, headers=headers, timeout=hook.timeout.total_seconds()
            )
        except httpx.HTTPError as exc:
            raise ClusterUnreachableError(
                f"hook {hook.name}: {type(exc).__name__}: no answer from {hook.url}", object_ref=hook.url
            ) from None
        if response.status_code >= 300:
            answer = _redacted(response.text, headers.values())[:200]
            raise BackendFailedError(f"hook {hook.name} answered {response.status_code}: {answer}", object_ref=hook.url)
        return f"hook {hook.name}: {response.status_code}"


def header_value(hook: str, header: str, source: HeaderSource) -> str:
    """A hook header's value, read from its reference (the message of a failure names the reference only)."""
    if source.value is not None:
        return source.value
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None:
            raise InvalidSpecError(f"hook {hook}: header {header}: environment variable {source.env} is not set")
        return value
    assert source.file is not None
    try:
        return Path(source.file).read_text().strip()
    except OSError as exc:
        raise InvalidSpecError(f"hook {hook}: header {header}: cannot read {source.file} ({exc.strerror})") from None


def _redacted(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every header value replaced (a hook that echoes its request must not leak a token)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _readiness(states: list[WorkloadState]) -> str:
    return ", ".join(f"{s.ref}: {s.ready}/{s.desired} ready" for s in states)


def _describe(observed: object) -> str:
    """The heartbeat detail of a wait's observation."""
    if isinstance(observed, VolumesInUse):
        return observed.describe()
    if isinstance(observed, list):
        return _readiness(observed)
    return str(observed)


class _Pacing(TypedDict):
    """How every activity wait observes: watched, heartbeating, until the request's deadline."""

    timeout: float
    interval: float
    max_interval: float
    progress: Callable[[ReplicationStatus], None]
    sleep: Callable[[float], None]
    watch: bool


def _pacing(request: WaitInput) -> _Pacing:
    return _Pacing(
        timeout=_remaining(request),
        interval=FIRST_POLL,
        max_interval=MAX_POLL,
        progress=lambda status: _heartbeat(status.message),
        sleep=activity_sleep,
        watch=True,
    )


def _observed_secondary(status: ReplicationStatus) -> bool:
    return status.role is Role.SECONDARY and status.current


def activity_sleep(seconds: float) -> None:
    """Sleep inside an activity, waking early when Temporal cancels it (so compensation is not delayed).

    A worker shutting down also cancels its activities: that is no operator's cancellation, so it leaves as a
    retryable failure and the step resumes on another worker.
    """
    if activity.in_activity():
        activity.wait_for_cancelled_sync(seconds)
        if activity.is_cancelled():
            details = activity.cancellation_details()
            if activity.is_worker_shutdown() or (details is not None and details.worker_shutdown):
                raise ApplicationError("the worker is shutting down; another worker resumes", type="WorkerShutdown")
            raise CancelledError("activity cancelled")
        return
    time.sleep(seconds)
