"""The site failover's activities: which groups have their primary in a site, and the operations already on them.

The plan reads the roles from the clusters (never from the configuration): a group belongs to the site failover
when one of the site's clusters reports its Primary, or when the site's cluster does not answer and the group's
other side reports Secondary (the lost site must then hold the Primary). Groups whose roles cannot be told are
left where they are and reported, never guessed at.

Two activities use the Temporal client: one tells which groups already have an operation running or a fence
pending, one waits for an operation the site failover joined instead of starting another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.errors import domain_errors
from activities.failover import FailoverActivities
from adapters.base import Role
from clusters.errors import ClusterUnreachableError, OrchestratorError
from workflows.failover import GroupFailoverWorkflow, fence_id, operation_id
from workflows.groups import GroupConfig
from workflows.models import FailoverResult, RolesInput
from workflows.monitor import GroupMonitorWorkflow, MonitorState, monitor_id
from workflows.site.models import (
    GroupsInput,
    JoinInput,
    OperationsReport,
    PlannedGroup,
    SiteInput,
    SitePlan,
    SkippedGroup,
)

JOIN_HEARTBEAT = timedelta(seconds=5)


class SiteDirectory(Protocol):
    """The worker's configuration as the site activities need it."""

    def site_clusters(self, site: str) -> tuple[str, ...]:
        """The configured clusters of ``site`` (empty for an unknown site)."""
        ...

    def all_groups(self) -> Sequence[GroupConfig]:
        """Every configured group."""
        ...


class SiteActivities:
    """Activities of the site failover, bound to the worker's configuration, clusters and Temporal client.

    Args:
        failover: the group activities (their clusters, adapters and configuration).
        directory: the worker's configuration by site.
        client: the worker's Temporal client.
    """

    def __init__(self, failover: FailoverActivities, directory: SiteDirectory, client: Client) -> None:
        self.failover = failover
        self.directory = directory
        self.client = client

    @activity.defn(name="plan_site")
    @domain_errors
    def plan_site(self, request: SiteInput) -> SitePlan:
        """Observe every group that lives on one of the site's clusters and decide which move."""
        clusters = self.directory.site_clusters(request.site)
        destinations = self.directory.site_clusters(request.to_site) if request.to_site else None
        answers = {cluster: self._answers(cluster) for cluster in clusters}
        moving: list[PlannedGroup] = []
        skipped: list[SkippedGroup] = []
        for group in self.directory.all_groups():
            here = [c for c in group.clusters if c in clusters]
            if not here:
                continue
            if len(here) == 2:
                skipped.append(SkippedGroup(group=group.name, reason="both of its clusters are in the site"))
                continue
            other = next(c for c in group.clusters if c != here[0])
            if destinations is not None and other not in destinations:
                reason = f"its other cluster {other} is not in site {request.to_site}"
                skipped.append(SkippedGroup(group=group.name, reason=reason))
                continue
            decision = self._decide(group, here[0], answers[here[0]])
            if isinstance(decision, PlannedGroup):
                moving.append(decision)
            else:
                skipped.append(decision)
        return SitePlan(
            site=request.site,
            clusters=clusters,
            site_answers=any(answers.values()),
            groups=tuple(moving),
            skipped=tuple(skipped),
        )

    def _answers(self, cluster: str) -> bool:
        try:
            self.failover.registry.api(cluster).ping()
        except ClusterUnreachableError:
            return False
        except OrchestratorError:
            return True  # it answered, if badly: not a lost site (the group's own preflight says what is wrong)
        return True

    def _decide(self, group: GroupConfig, local: str, local_answers: bool) -> PlannedGroup | SkippedGroup:
        """Whether ``group`` moves away from ``local`` (its cluster in the site)."""
        other = group.clusters[1] if group.clusters[0] == local else group.clusters[0]
        roles = self.failover.observe_roles(RolesInput(group=group.name))
        local_role = roles.statuses[local].role if local in roles.statuses else None
        other_role = roles.statuses[other].role if other in roles.statuses else None

        def planned(*, source_answers: bool) -> PlannedGroup:
            return PlannedGroup(
                group=group.name,
                backend=group.backend.value,
                priority=group.priority,
                source=local,
                target=other,
                source_answers=source_answers,
            )

        if local_role is Role.PRIMARY and other_role is not Role.PRIMARY:
            return planned(source_answers=True)
        if other_role is Role.PRIMARY and local_role is not Role.PRIMARY:
            return SkippedGroup(group=group.name, reason=f"its primary is already {other}")
        if local_role is Role.PRIMARY and other_role is Role.PRIMARY:
            return SkippedGroup(
                group=group.name,
                reason=f"both {local} and {other} report Primary: needs attention (see `orchestrate status`)",
                attention=True,
            )
        if not local_answers and other_role is Role.SECONDARY:
            return planned(source_answers=False)
        seen = {c: (s.role.value if s.role else "?") for c, s in roles.statuses.items()}
        unreadable = [*roles.unreachable, *(f"{c} ({why})" for c, why in roles.errors.items())]
        detail = ", ".join(f"{c} {r}" for c, r in seen.items()) or "no side answered"
        if unreadable:
            detail += f"; not read: {', '.join(unreadable)}"
        return SkippedGroup(
            group=group.name, reason=f"its roles cannot be told ({detail}): needs attention", attention=True
        )

    @activity.defn(name="group_operations")
    async def group_operations(self, request: GroupsInput) -> OperationsReport:
        """Which of the groups have an operation running, and which have a fence still waiting."""
        groups = request.groups
        # Every group's three lookups at once: a site of 100 groups must not wait for 300 calls in a row.
        running, fencing, states = await asyncio.gather(
            asyncio.gather(*(self._running(operation_id(g)) for g in groups)),
            asyncio.gather(*(self._running(fence_id(g)) for g in groups)),
            asyncio.gather(*(monitor_state(self.client, g) for g in groups)),
        )
        seen = {
            group: state.last_sync_seen
            for group, state in zip(groups, states, strict=True)
            if state is not None and state.last_sync_seen is not None
        }
        return OperationsReport(
            busy=tuple(g for g, busy in zip(groups, running, strict=True) if busy),
            fence_pending=tuple(g for g, pending in zip(groups, fencing, strict=True) if pending),
            last_sync_seen=seen,
        )

    async def _running(self, workflow_id: str) -> bool:
        try:
            description = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        return description.status is WorkflowExecutionStatus.RUNNING

    @activity.defn(name="wait_group_operation")
    async def wait_group_operation(self, request: JoinInput) -> FailoverResult:
        """Wait for the operation running on the group and return its result (heartbeating while it runs)."""
        handle = self.client.get_workflow_handle_for(GroupFailoverWorkflow.run, operation_id(request.group))
        result = asyncio.ensure_future(handle.result())
        try:
            while not result.done():
                activity.heartbeat(f"waiting for {handle.id}")
                await asyncio.wait([result], timeout=JOIN_HEARTBEAT.total_seconds())
            return result.result()
        except WorkflowFailureError as error:
            raise ApplicationError(
                f"the operation {handle.id} that was already running failed: {error.cause or error}",
                type="JoinedOperationFailed",
                non_retryable=True,
            ) from error
        finally:
            result.cancel()


MONITOR_ANSWER_TIMEOUT = timedelta(seconds=10)
_NO_MONITOR = (
    RPCStatusCode.NOT_FOUND,
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
)


async def monitor_state(client: Client, group: str) -> MonitorState | None:
    """What the group's monitor saw last, or ``None`` when no monitor runs or it does not answer in time.

    Bounded: a query waits for a worker, and an operation must not wait for a monitor (without its answer the
    data-loss window is reported as unknown).
    """
    handle = client.get_workflow_handle_for(GroupMonitorWorkflow.run, monitor_id(group))
    try:
        return await handle.query(GroupMonitorWorkflow.seen, rpc_timeout=MONITOR_ANSWER_TIMEOUT)
    except RPCError as error:
        if error.status in _NO_MONITOR:
            return None
        raise
