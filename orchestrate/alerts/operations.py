"""The intake's effects on Temporal: start or join a group's operation, record an alert on it, find its last move."""

from __future__ import annotations

from datetime import datetime

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from orchestrate.alerts.intake import RefusedError, Started
from orchestrate.config import OrchestratorConfig
from orchestrate.queries import NoAnswerError, describe
from orchestrate.service import FencePendingError, GroupBusyError, start_operation
from workflows import visibility
from workflows.failover import operation_id
from workflows.models import ALERT_SIGNAL, AlertNote, FailoverRequest, Phase

MOVED_PHASES = (Phase.RELOCATED, Phase.FAILED_OVER)
"""Final phases of an operation that moved the group's primary."""


class TemporalOperations:
    """:class:`~orchestrate.alerts.intake.Operations` on a Temporal client."""

    def __init__(self, client: Client, config: OrchestratorConfig) -> None:
        self._client = client
        self._config = config

    async def last_move(self, group: str) -> datetime | None:
        """When the newest completed operation of the group that moved it closed (from Temporal's visibility)."""
        phases = " OR ".join(f"{visibility.PHASE.name} = '{phase.value}'" for phase in MOVED_PHASES)
        query = f"WorkflowId = '{operation_id(group)}' AND ExecutionStatus = 'Completed' AND ({phases})"
        newest: datetime | None = None
        async for execution in self._client.list_workflows(query, limit=20):
            if execution.close_time is not None and (newest is None or execution.close_time > newest):
                newest = execution.close_time
        return newest

    async def start(self, request: FailoverRequest) -> Started:
        """Start the group's operation; when one runs already, record the alert on it and join it."""
        try:
            handle = await start_operation(self._client, self._config, request)
        except GroupBusyError:
            assert request.alert is not None
            joined = await self.record(request.group, request.alert)
            return Started(workflow_id=joined or operation_id(request.group), joined=True)
        except FencePendingError as pending:
            raise RefusedError(str(pending)) from pending
        except NoAnswerError as silent:
            raise RefusedError(
                f"group {request.group}'s fence did not say whether its old primary is fenced: {silent}"
            ) from silent
        return Started(workflow_id=handle.id, joined=False)

    async def record(self, group: str, note: AlertNote) -> str | None:
        """Signal ``note`` to the group's running operation; its id, or ``None`` when none runs."""
        handle = self._client.get_workflow_handle(operation_id(group))
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
