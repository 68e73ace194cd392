"""Workflow tier: waits that hold every ordinary activity slot never starve a short step.

The worker is built by :func:`orchestrate.worker.worker_for` (the production settings) with small limits: two
ordinary slots and two local ones. Two operations block in a synchronous wait, each holding a thread of the pool
for as long as it waits; a third operation's short steps (local activities, synchronous like the real ones) must
still run and finish. With one shared pool the size of the ordinary slots, they would queue behind the waits until
their timeout and the operation would fail.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from adapters.base import Backend
from orchestrate.worker import WorkerLimits, worker_for
from tests.workflow.fake_world import FakeWorld
from workflows.failover import GroupFailoverWorkflow
from workflows.groups import GroupConfig, ReplicationConfig, WorkloadConfig
from workflows.models import FailoverRequest, FailoverResult, Operation, Outcome, ResolveInput


def _group(name: str) -> GroupConfig:
    return GroupConfig(
        name=name,
        namespace=name,
        backend=Backend.CSI_ADDONS,
        clusters=("dc1", "dc2"),
        replication=ReplicationConfig(name="postgres"),
        workloads=(WorkloadConfig(kind="StatefulSet", name="postgres"),),
    )


async def test_short_steps_run_while_waits_hold_every_ordinary_slot(temporal_env: WorkflowEnvironment) -> None:
    names = [f"pg-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    world = FakeWorld(groups={n: _group(n) for n in names})
    release = threading.Event()
    started = threading.Event()

    @activity.defn(name="resolve_group")
    def resolve_group(request: ResolveInput) -> GroupConfig:  # synchronous: it needs a thread, as the real one
        return world.group(request.group)

    blocking = world.sleeping_wait("wait_volumes_released", started=started, release=release)
    limits = WorkerLimits(activities=2, local=2)
    task_queue = f"capacity-{uuid.uuid4().hex[:8]}"
    client = temporal_env.client

    async def start(name: str, *, dry_run: bool) -> WorkflowHandle[GroupFailoverWorkflow, FailoverResult]:
        return await client.start_workflow(
            GroupFailoverWorkflow.run,
            FailoverRequest(group=name, operation=Operation.PLANNED, dry_run=dry_run),
            id=f"failover/{name}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=120),
        )

    activities = world.activities(overrides={"resolve_group": resolve_group, "wait_volumes_released": blocking})
    with limits.executor() as executor:
        async with worker_for(client, task_queue, activities, executor, limits):
            waiting = [await start(name, dry_run=False) for name in names[:2]]
            for _ in range(200):
                if world.calls.count("wait_volumes_released:dc1") == 2:
                    break
                await asyncio.sleep(0.05)
            assert world.calls.count("wait_volumes_released:dc1") == 2, world.calls

            short = await start(names[2], dry_run=True)
            result = await asyncio.wait_for(short.result(), timeout=30)
            assert result.outcome is Outcome.DRY_RUN, result.message
            assert not release.is_set(), "the waits still hold their slots and threads"

            release.set()
            for handle in waiting:
                await handle.terminate("capacity checked")
