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
from orchestrate.queries import ANSWER_TIMEOUT, NoAnswerError, describe
from orchestrate.service import FencePendingError, GroupBusyError, start_operation
from orchestrate.site_service import SiteBusyError, start_site_operation
from workflows import visibility
from workflows.failover import operation_id
from workflows.models import ALERT_SIGNAL, AlertNote, Outcome, Phase
from workflows.site import site_operation_id
from workflows.site.models import SiteFailoverRequest, SiteFailoverResult

MOVED_PHASES = (Phase.RELOCATED, Phase.FAILED_OVER)
"""Final phases of a group operation that moved the group's primary."""


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

        A group: its newest operation that ended Relocated or FailedOver (visibility). A site: its newest site
        failover, if that moved at least one group.
        """
        if target.kind is TargetKind.SITE:
            return await self._last_site_move(target.name)
        phases = " OR ".join(f"{visibility.PHASE.name} = '{phase.value}'" for phase in MOVED_PHASES)
        query = f"WorkflowId = '{operation_id(target.name)}' AND ExecutionStatus = 'Completed' AND ({phases})"
        newest: datetime | None = None
        async for execution in self._client.list_workflows(query, limit=20):
            if execution.close_time is not None and (newest is None or execution.close_time > newest):
                newest = execution.close_time
        return newest

    async def _last_site_move(self, site: str) -> datetime | None:
        description = await describe(self._client.get_workflow_handle(site_operation_id(site)))
        if description is None or description.status is not WorkflowExecutionStatus.COMPLETED:
            return None
        handle = self._client.get_workflow_handle(
            description.id, run_id=description.run_id, result_type=SiteFailoverResult
        )
        result = await handle.result(follow_runs=False, rpc_timeout=ANSWER_TIMEOUT)
        moved = any(g.outcome is Outcome.SUCCEEDED for g in result.progress.groups)
        return description.close_time if moved else None

    async def start(self, request: AnyRequest) -> Started:
        """Start the operation; when one runs already, record the alert on it and join it."""
        assert request.alert is not None
        if isinstance(request, SiteFailoverRequest):
            target = Target(TargetKind.SITE, request.site)
            try:
                site = await start_site_operation(self._client, self._config, request)
            except SiteBusyError:
                return Started(workflow_id=await self._join(target, request.alert), joined=True)
            return Started(workflow_id=site.id, joined=False)
        target = Target(TargetKind.GROUP, request.group)
        try:
            handle = await start_operation(self._client, self._config, request)
        except GroupBusyError:
            return Started(workflow_id=await self._join(target, request.alert), joined=True)
        except FencePendingError as pending:
            raise RefusedError(str(pending)) from pending
        except NoAnswerError as silent:
            raise RefusedError(
                f"group {request.group}'s fence did not say whether its old primary is fenced: {silent}"
            ) from silent
        return Started(workflow_id=handle.id, joined=False)

    async def _join(self, target: Target, note: AlertNote) -> str:
        return await self.record(target, note) or workflow_id_of(target)

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
