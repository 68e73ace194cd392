"""The intake's effects on Temporal: start or join an operation, record an alert on it, find its target's last move.

An operation is a group's (``failover/<group>``) or a site's (``site-failover/<site>``).
"""

from __future__ import annotations

from datetime import datetime

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from orchestrate.alerts.intake import AnyRequest, RefusedError, Started
from orchestrate.alerts.rules import Target, TargetKind
from orchestrate.config import OrchestratorConfig
from orchestrate.queries import ANSWER_TIMEOUT, describe
from orchestrate.service import FencePendingError, GroupBusyError, start_operation
from orchestrate.site_service import SiteBusyError, start_site_operation
from workflows import visibility
from workflows.failover import operation_id
from workflows.models import ALERT_SIGNAL, AlertNote, FailoverResult, Outcome, Phase
from workflows.site import site_operation_id
from workflows.site.models import SiteFailoverRequest, SiteFailoverResult

HOLDING_PHASES = (Phase.RELOCATED, Phase.FAILED_OVER, Phase.RESUMED, Phase.NEEDS_ATTENTION)
"""Final phases of a group operation after which the cooldown holds: it moved the primary, finished a move, or
left the group for a human to look at (an alert must not start another operation on it meanwhile)."""
JOIN_ATTEMPTS = 3
"""Starts tried when the operation that refused the start has ended before the alert could be recorded on it."""


def workflow_id_of(target: Target) -> str:
    """The id of the target's operation (one at a time per group, and per site)."""
    return operation_id(target.name) if target.kind is TargetKind.GROUP else site_operation_id(target.name)


class TemporalOperations:
    """:class:`~orchestrate.alerts.intake.Operations` on a Temporal client."""

    def __init__(self, client: Client, config: OrchestratorConfig) -> None:
        self._client = client
        self._config = config

    async def last_move(self, target: Target) -> datetime | None:
        """When the target last moved (``None``: not on record).

        A group: its latest run, read directly (visibility may lag a run that just ended), else the newest run
        that ended in one of :data:`HOLDING_PHASES` (visibility). A site: its newest site failover that moved at
        least one group.
        """
        if target.kind is TargetKind.SITE:
            return await self._last_site_move(target.name)
        latest = await describe(self._client.get_workflow_handle(operation_id(target.name)))
        if latest is not None and latest.status is WorkflowExecutionStatus.COMPLETED:
            handle = self._client.get_workflow_handle(latest.id, run_id=latest.run_id, result_type=FailoverResult)
            result = await handle.result(follow_runs=False, rpc_timeout=ANSWER_TIMEOUT)
            if result.progress.phase in HOLDING_PHASES:
                return latest.close_time
        phases = " OR ".join(f"{visibility.PHASE.name} = '{phase.value}'" for phase in HOLDING_PHASES)
        query = f"WorkflowId = '{operation_id(target.name)}' AND ExecutionStatus = 'Completed' AND ({phases})"
        return await self._newest_close(query)

    async def _newest_close(self, query: str) -> datetime | None:
        newest: datetime | None = None
        async for execution in self._client.list_workflows(query, limit=20):
            if execution.close_time is not None and (newest is None or execution.close_time > newest):
                newest = execution.close_time
        return newest

    async def _last_site_move(self, site: str) -> datetime | None:
        query = f"WorkflowId = '{site_operation_id(site)}' AND ExecutionStatus = 'Completed'"
        runs = [e async for e in self._client.list_workflows(query, limit=20)]
        latest = await describe(self._client.get_workflow_handle(site_operation_id(site)))
        if latest is not None and latest.status is WorkflowExecutionStatus.COMPLETED:
            runs.append(latest)  # visibility may not list a run that just ended
        newest_first = sorted(
            {r.run_id: r for r in runs if r.close_time is not None}.values(),
            key=lambda r: r.close_time or datetime.min,
            reverse=True,
        )
        for run in newest_first:
            handle = self._client.get_workflow_handle(run.id, run_id=run.run_id, result_type=SiteFailoverResult)
            result = await handle.result(follow_runs=False, rpc_timeout=ANSWER_TIMEOUT)
            if any(g.outcome is Outcome.SUCCEEDED for g in result.progress.groups):
                return run.close_time
        return None

    async def start(self, request: AnyRequest) -> Started:
        """Start the operation; when one runs already, record the alert on it and join it.

        Raises:
            RefusedError: the group's old primary is not fenced yet.
            NoAnswerError: the group's fence runs but did not answer (nothing was started: the sender retries).
        """
        assert request.alert is not None
        target = (
            Target(TargetKind.SITE, request.site)
            if isinstance(request, SiteFailoverRequest)
            else Target(TargetKind.GROUP, request.group)
        )
        for _ in range(JOIN_ATTEMPTS):
            try:
                return Started(workflow_id=await self._start(request), joined=False)
            except (GroupBusyError, SiteBusyError):
                joined = await self.record(target, request.alert)
                if joined is not None:
                    return Started(workflow_id=joined, joined=True)
                # the running operation ended before the alert reached it: start again
        raise RefusedError(f"{target} kept being busy with operations that ended before the alert could join one")

    async def _start(self, request: AnyRequest) -> str:
        if isinstance(request, SiteFailoverRequest):
            return (await start_site_operation(self._client, self._config, request)).id
        try:
            return (await start_operation(self._client, self._config, request)).id
        except FencePendingError as pending:
            raise RefusedError(str(pending)) from pending

    async def record(self, target: Target, note: AlertNote) -> str | None:
        """Signal ``note`` to the target's running operation; its id, or ``None`` when none runs."""
        handle = self._client.get_workflow_handle(workflow_id_of(target))
        description = await describe(handle)
        if description is None or description.status is not WorkflowExecutionStatus.RUNNING:
            return None
        try:
            await handle.signal(ALERT_SIGNAL, note)
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return None  # it ended between the describe and the signal
            raise
        return handle.id
