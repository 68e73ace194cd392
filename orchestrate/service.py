"""Starting and inspecting operations: what the CLI and the webhook share (no console output here).

One operation per group: the workflow id is ``failover/<group>``. The CLI starts with a FAIL conflict policy (a
busy group is refused and the running operation named); the webhook joins the running one.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.site import monitor_state
from adapters.base import ReplicationStatus, Role
from adapters.registry import adapter_for
from clusters.errors import ClusterUnreachableError, KubeconfigError, OrchestratorError
from clusters.registry import ClusterRegistry
from orchestrate.config import OrchestratorConfig
from orchestrate.queries import ANSWER_TIMEOUT, NoAnswerError, ask, describe, or_no_answer
from workflows import visibility
from workflows.failover import GroupFailoverWorkflow, GroupFenceWorkflow, fence_id, operation_id
from workflows.groups import GroupConfig
from workflows.models import AlertNote, FailoverRequest, FailoverResult, FenceState, Operation, Phase, Progress
from workflows.monitor import GroupMonitorWorkflow, MonitorInput, monitor_id

EXECUTION_TIMEOUT = timedelta(days=30)
"""Generous: fence-on-return may wait days for a lost site; the timeout only stops a workflow that loops."""


def workflow_id(group: str) -> str:
    """The id of a group's operation."""
    return operation_id(group)


class GroupBusyError(Exception):
    """Another operation runs on the group."""

    def __init__(self, group: str, progress: Progress | NoAnswerError | None) -> None:
        self.group = group
        self.progress = progress if isinstance(progress, Progress) else None
        if isinstance(progress, Progress):
            running = (
                f"a {progress.operation.value} operation ({progress.source} -> {progress.target}) in phase "
                f"{progress.phase.value}: {progress.message}"
            )
        elif progress is not None:
            running = f"another operation, which did not say what it does ({progress})"
        else:
            running = "another operation"
        super().__init__(
            f"group {group} is busy: {running}; follow it with `orchestrate status --group {group}` "
            f"or stop it with `orchestrate abort --group {group}`"
        )


class FencePendingError(Exception):
    """The group's old primary is not fenced yet: no new move may start before it is (only ``resume``)."""

    def __init__(self, group: str, fence: FenceState) -> None:
        self.group = group
        self.fence = fence
        since = f" since {fence.waiting_since:%Y-%m-%d %H:%M:%S}" if fence.waiting_since else ""
        super().__init__(
            f"group {group} is not safe to move: its old primary {fence.old_primary} is not fenced yet "
            f"({fence_id(group)}, waiting{since}: {fence.message}); it may still hold a Primary replica. "
            f"Wait until `orchestrate status --group {group}` shows it fenced (or restore access to "
            f"{fence.old_primary}); `orchestrate resume --group {group}` finishes what is left on "
            f"{fence.new_primary} meanwhile"
        )


def approval_needed(group: GroupConfig, operation: Operation, *, alert: bool) -> bool:
    """Whether the group's policy wants ``approve`` before this operation changes anything."""
    return group.approval.required(unplanned=operation is Operation.UNPLANNED, alert=alert)


async def start_operation(
    client: Client,
    config: OrchestratorConfig,
    request: FailoverRequest,
    *,
    join_running: bool = False,
) -> WorkflowHandle[GroupFailoverWorkflow, FailoverResult]:
    """Start the group's workflow (or, with ``join_running``, return the running one).

    Raises:
        GroupBusyError: without ``join_running``, when an operation already runs on the group.
        FencePendingError: the group's old primary still waits for its fence (a resume is let through).
        NoAnswerError: the group's fence runs but did not say whether the old primary is fenced (nothing starts
            before it does).
    """
    group = config.group(request.group)
    fence = await fence_state(client, group.name)
    pending = fence is not None and not fence.done
    if pending and request.operation is not Operation.RESUME:
        assert fence is not None
        raise FencePendingError(group.name, fence)
    if request.operation is Operation.RESUME:
        request = request.model_copy(
            update={"fence_pending": pending, "expected_primary": await expected_primary(client, group.name, fence)}
        )
    if request.operation is Operation.UNPLANNED and request.last_sync_seen is None:
        seen = await monitor_state(client, group.name)
        if seen is not None and seen.last_sync_seen is not None:
            request = request.model_copy(update={"last_sync_seen": seen.last_sync_seen})
    target_site = config.cluster(request.target).site if request.target else ""
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(visibility.GROUP, group.name),
            SearchAttributePair(visibility.SITE, target_site),
            SearchAttributePair(visibility.OPERATION, request.operation.value),
            SearchAttributePair(visibility.PHASE, Phase.PREFLIGHT.value),
            SearchAttributePair(visibility.TRIGGERED_BY, request.triggered_by),
        ]
    )
    try:
        return await client.start_workflow(
            GroupFailoverWorkflow.run,
            request,
            id=workflow_id(group.name),
            task_queue=config.temporal.task_queue,
            execution_timeout=EXECUTION_TIMEOUT,
            id_conflict_policy=(
                WorkflowIDConflictPolicy.USE_EXISTING if join_running else WorkflowIDConflictPolicy.FAIL
            ),
            search_attributes=attributes,
            static_summary=(
                f"resume of {group.name}"
                if request.operation is Operation.RESUME
                else f"{request.operation.value} failover of {group.name}"
                + (f" to {request.target}" if request.target else "")
            ),
            static_details=f"triggered by {request.triggered_by}{alert_details(request.alert)}; namespace "
            f"{group.namespace}; backend {group.backend.value}; clusters {', '.join(group.clusters)}",
        )
    except WorkflowAlreadyStartedError:
        pass  # the client turns the server's ALREADY_EXISTS into this
    except RPCError as error:
        if error.status is not RPCStatusCode.ALREADY_EXISTS:
            raise
    raise GroupBusyError(group.name, await or_no_answer(running_progress(client, group.name)))


def alert_details(alert: AlertNote | None) -> str:
    """What the Web UI's details say about the alert that started an operation ("" when none did)."""
    if alert is None:
        return ""
    return (
        f" (alert {alert.alertname}, fingerprint {alert.fingerprint}, rule {alert.rule}, groupKey {alert.group_key}"
        f"{', from ' + alert.external_url if alert.external_url else ''})"
    )


async def expected_primary(client: Client, group: str, fence: FenceState | None) -> str | None:
    """Where the unfinished operation left the primary: the pending fence's new primary, else what it recorded.

    An operation that stopped before requesting the promotion leaves it on its source, one whose compensation
    stopped after requesting it on either side (``None``: resume takes the one Primary it observes), any other on
    its target (also for operations recorded before ``leaves_primary_on`` existed).
    """
    if fence is not None and not fence.done:
        return fence.new_primary
    found = await last_operation(client, group)
    if found is None:
        return None
    _, state = found
    progress = state.progress if isinstance(state, FailoverResult) else state
    if not isinstance(progress, Progress):
        return None
    if "leaves_primary_on" in progress.model_fields_set:
        return progress.leaves_primary_on
    return progress.target


async def fence_state(client: Client, group: str) -> FenceState | None:
    """The group's fence: its state while it runs, its result once done; ``None`` when it never ran.

    Raises:
        NoAnswerError: the fence runs and its worker did not answer in time.
    """
    description = await describe(client.get_workflow_handle(fence_id(group)))
    if description is None:
        return None
    # The described run, not the id's newest: a fence started meanwhile is not waited for.
    run = client.get_workflow_handle_for(GroupFenceWorkflow.run, description.id, run_id=description.run_id)
    if description.status is WorkflowExecutionStatus.RUNNING:
        return await ask(run, GroupFenceWorkflow.state)
    if description.status is WorkflowExecutionStatus.COMPLETED:
        return await run.result(follow_runs=False, rpc_timeout=ANSWER_TIMEOUT)
    return None


async def ensure_monitors(client: Client, config: OrchestratorConfig) -> None:
    """Start every configured group's monitor unless it already runs."""
    for group in config.groups:
        await client.start_workflow(
            GroupMonitorWorkflow.run,
            MonitorInput(group=group.name),
            id=monitor_id(group.name),
            task_queue=config.temporal.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"monitor of {group.name}: remembers the last completed sync",
        )


async def running_progress(client: Client, group: str) -> Progress | None:
    """The progress of the group's running operation, or ``None`` when none runs.

    Raises:
        NoAnswerError: the operation runs and its worker did not answer in time.
    """
    handle = client.get_workflow_handle_for(GroupFailoverWorkflow.run, workflow_id(group))
    description = await describe(handle)
    if description is None or description.status is not WorkflowExecutionStatus.RUNNING:
        return None
    return await ask(handle, GroupFailoverWorkflow.progress)


async def last_operation(client: Client, group: str) -> tuple[WorkflowExecutionDescription, Any] | None:
    """The group's newest operation (running or not) and its result or failure text.

    Raises:
        NoAnswerError: the operation runs and its worker did not answer in time.
    """
    description = await describe(client.get_workflow_handle(workflow_id(group)))
    if description is None:
        return None
    return description, await operation_state(client, description)


async def operation_state(client: Client, description: WorkflowExecutionDescription) -> Any:
    """What the described run of a group operation says (progress, result, or how it ended).

    Its progress while it runs, its result once completed, its status name otherwise. Always the described run,
    never a newer run of the same id: an operation started between the describe and this call (a completed run's
    id is free again) would make "the result" wait for that new run to end.

    Raises:
        NoAnswerError: the run is running and its worker did not answer in time.
    """
    run = client.get_workflow_handle_for(GroupFailoverWorkflow.run, description.id, run_id=description.run_id)
    if description.status is WorkflowExecutionStatus.COMPLETED:
        return await run.result(follow_runs=False, rpc_timeout=ANSWER_TIMEOUT)
    if description.status is WorkflowExecutionStatus.RUNNING:
        return await ask(run, GroupFailoverWorkflow.progress)
    return description.status.name if description.status else "unknown"


async def pending_activity_details(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The latest heartbeat details of the workflow's running activities (what a wait is waiting for)."""
    description = await describe(handle)
    details: list[str] = []
    if description is None:
        return details
    converter = handle._client.data_converter
    for pending in description.raw_description.pending_activities:
        if pending.heartbeat_details.payloads:
            values = await converter.decode(pending.heartbeat_details.payloads)
            details += [str(v) for v in values]
    return details


class SideView(BaseModel):
    """One side of a group as ``status`` shows it."""

    model_config = ConfigDict(frozen=True)

    cluster: str
    site: str
    reachable: bool
    status: ReplicationStatus | None = None
    error: str | None = None


class GroupView(BaseModel):
    """Both sides of a group, the lag against RPO and the operation state."""

    model_config = ConfigDict(frozen=True)

    group: str
    backend: str
    sides: tuple[SideView, ...]
    primary: str | None
    lag_seconds: float | None
    lag_source: str = ""
    """What the lag is measured from (the backend's ``last_sync_source``): a Dell poll time is not a data time."""
    rpo_seconds: float
    protected: bool
    summary: str


def observe_group(registry: ClusterRegistry, config: OrchestratorConfig, group: GroupConfig) -> GroupView:
    """Observe both sides of ``group`` (synchronously: call from a thread)."""
    sides: list[SideView] = []
    for cluster in group.clusters:
        site = config.cluster(cluster).site
        try:
            registry.api(cluster).ping()
        except (ClusterUnreachableError, KubeconfigError) as exc:  # not reached: no answer, or no way to ask
            sides.append(SideView(cluster=cluster, site=site, reachable=False, error=exc.message))
            continue
        except OrchestratorError as exc:  # it answers, but not usably (401/403, TLS, 5xx): say which
            sides.append(SideView(cluster=cluster, site=site, reachable=True, error=exc.describe()))
            continue
        try:
            status = adapter_for(registry.api(cluster), group.replication_target(cluster)).observe()
            sides.append(SideView(cluster=cluster, site=site, reachable=True, status=status))
        except OrchestratorError as exc:
            sides.append(SideView(cluster=cluster, site=site, reachable=True, error=exc.describe()))
    primaries = [s.cluster for s in sides if s.status and s.status.role is Role.PRIMARY]
    secondaries = [s.cluster for s in sides if s.status and s.status.role is Role.SECONDARY]
    primary = primaries[0] if len(primaries) == 1 else None
    synced = next((s.status for s in sides if s.status and s.status.last_sync_time), None)
    last_sync = synced.last_sync_time if synced else None
    lag = (datetime.now(UTC) - last_sync).total_seconds() if last_sync else None
    rpo = group.rpo.total_seconds()
    stopped = [s for s in sides if s.status and s.status.replication_stopped]
    protected = bool(
        primary
        and len(secondaries) == 1
        and all(s.status and s.status.healthy and not s.status.failure for s in sides)
        and not stopped
        and (lag is None or lag <= rpo)
    )
    if len(primaries) > 1:
        summary = f"SPLIT BRAIN: {', '.join(primaries)} all report Primary"
    elif primary is None:
        summary = "no Primary observed"
    elif protected:
        summary = f"protected: Primary on {primary}, replicating to {secondaries[0]}"
    else:
        problems = [s.error or (s.status.failure if s.status else None) or "" for s in sides]
        if lag is not None and lag > rpo:
            problems.append(f"the last sync was {lag:.0f} s ago, beyond the RPO of {rpo:.0f} s")
        if stopped:
            reports = "; ".join(f"{s.cluster}: {s.status.message}" for s in stopped if s.status)
            problems.append(f"replication stopped, nothing has reprotected the group yet ({reports})")
        summary = f"Primary on {primary}; NOT protected: " + ("; ".join(p for p in problems if p) or "see sides")
    return GroupView(
        group=group.name,
        backend=group.backend.value,
        sides=tuple(sides),
        primary=primary,
        lag_seconds=lag,
        lag_source=synced.last_sync_source if synced else "",
        rpo_seconds=rpo,
        protected=protected,
        summary=summary,
    )


async def observe_groups(config: OrchestratorConfig, groups: list[GroupConfig]) -> list[GroupView]:
    """Observe several groups in worker threads."""
    registry = ClusterRegistry(config.clusters)
    try:
        return list(await asyncio.gather(*(asyncio.to_thread(observe_group, registry, config, g) for g in groups)))
    finally:
        registry.close()
