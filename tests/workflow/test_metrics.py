"""Workflow tier: the operations' metrics, exported in Prometheus format by the worker's Temporal runtime.

A planned failover against the fake world counts one succeeded operation of the group, records its duration and
every step's, next to the SDK's own ``temporal_*`` metrics, on the address ``orchestrate worker --metrics-address``
would serve.
"""

from __future__ import annotations

import uuid

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sandbox.processes import free_port
from tests.workflow.conftest import GROUP, result_of
from tests.workflow.fake_world import FakeWorld
from workflows.failover import GroupFailoverWorkflow, GroupFenceWorkflow
from workflows.metrics import OPERATION_SECONDS, OPERATIONS, STEP_SECONDS
from workflows.models import FailoverRequest, Operation, Outcome


async def test_a_failover_is_counted_and_its_steps_timed_on_the_prometheus_endpoint(
    temporal_env: WorkflowEnvironment,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True))
    )
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    name = f"pg-{uuid.uuid4().hex[:8]}"
    world = FakeWorld(groups={name: GROUP.model_copy(update={"name": name, "namespace": name})})
    world.group_name = name
    task_queue = f"metrics-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[GroupFailoverWorkflow, GroupFenceWorkflow],
        activities=world.activities(),
    ):
        handle = await client.start_workflow(
            GroupFailoverWorkflow.run,
            FailoverRequest(group=name, operation=Operation.PLANNED),
            id=f"failover/{name}",
            task_queue=task_queue,
        )
        assert (await result_of(handle)).outcome is Outcome.SUCCEEDED
    text = httpx.get(f"http://{address}/metrics", timeout=10).text
    lines = [line for line in text.splitlines() if f'group="{name}"' in line]
    assert any(
        line.startswith(OPERATIONS)
        and 'outcome="succeeded"' in line
        and 'operation="planned"' in line
        and line.endswith(" 1")
        for line in lines
    ), lines
    assert any(line.startswith(f"{OPERATION_SECONDS}_count") for line in lines), lines
    timed = {line.split('step="')[1].split('"')[0] for line in lines if line.startswith(f"{STEP_SECONDS}_count")}
    assert {"stop workloads", "demote", "wait for final sync", "promote", "start workloads"} <= timed, timed
    assert "temporal_workflow_completed" in text
