"""Workflow tier: the group monitor follows the worker's configuration.

The monitor's input names the group; before every observation it resolves the group in the worker's configuration,
so a changed ``monitor_interval`` takes effect at the next observation and a group removed from the configuration
ends its monitor (instead of observing objects nobody configures any more). It remembers the newest sync seen. A
group added to the worker's configuration file gets its monitor from the running worker.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from adapters.base import Backend
from orchestrate.config import load_config
from orchestrate.worker import ConfigFile, follow_configuration
from tests.unit.config_texts import MINIMAL_CONFIG
from tests.workflow.fake_world import FakeWorld
from workflows.groups import GroupConfig, ReplicationConfig
from workflows.monitor import GroupMonitorWorkflow, MonitorInput, monitor_id


def _group(name: str, interval: timedelta) -> GroupConfig:
    return GroupConfig(
        name=name,
        namespace=name,
        backend=Backend.CSI_ADDONS,
        clusters=("dc1", "dc2"),
        replication=ReplicationConfig(name="postgres"),
        monitor_interval=interval,
    )


async def _start(env: WorkflowEnvironment, world: FakeWorld, name: str, task_queue: str) -> WorkflowHandle[Any, Any]:
    return await env.client.start_workflow(
        GroupMonitorWorkflow.run,
        MonitorInput(group=name),
        id=f"monitor/{name}",
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=60),
    )


async def _observations_after(world: FakeWorld, seconds: float) -> int:
    before = world.calls.count("observe_roles")
    await asyncio.sleep(seconds)
    return world.calls.count("observe_roles") - before


async def test_a_changed_interval_takes_effect_at_the_next_observation(temporal_env: WorkflowEnvironment) -> None:
    name = f"pg-{uuid.uuid4().hex[:8]}"
    world = FakeWorld(groups={name: _group(name, timedelta(milliseconds=100))})
    task_queue = f"monitor-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_env.client, task_queue=task_queue, workflows=[GroupMonitorWorkflow], activities=world.activities()
    ):
        handle = await _start(temporal_env, world, name, task_queue)
        assert await _observations_after(world, 1.0) >= 4
        seen = await handle.query(GroupMonitorWorkflow.seen)
        assert seen is not None and seen.primary == "dc1" and seen.last_sync_seen == world.last_sync

        world.groups[name] = _group(name, timedelta(hours=1))
        # The cycle under way may still observe with the old interval (at most: the observation after a resolve
        # that ran just before the change, and the next one, which resolves the new interval); a loaded machine
        # may take longer than the old interval for that, so this waits for it instead of a fixed time.
        assert await _observations_after(world, 2.0) <= 2
        assert await _observations_after(world, 1.0) == 0  # the old interval would have observed ~10 times
        await handle.terminate("test over")


async def test_a_removed_group_ends_its_monitor(temporal_env: WorkflowEnvironment) -> None:
    name = f"pg-{uuid.uuid4().hex[:8]}"
    world = FakeWorld(groups={name: _group(name, timedelta(milliseconds=100))})
    task_queue = f"monitor-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_env.client, task_queue=task_queue, workflows=[GroupMonitorWorkflow], activities=world.activities()
    ):
        handle = await _start(temporal_env, world, name, task_queue)
        assert await _observations_after(world, 0.5) >= 1
        del world.groups[name]
        await asyncio.wait_for(handle.result(), timeout=10)
        assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED


async def test_an_added_group_gets_its_monitor_without_a_restart(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # No worker polls this queue: the test checks that the monitor was started, not what it does.
    task_queue = f"monitor-{uuid.uuid4().hex[:8]}"
    added = f"pg-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "orchestrate.yaml"
    path.write_text(f"temporal:\n  task_queue: {task_queue}\n" + MINIMAL_CONFIG)
    config = load_config(path)
    watched = ConfigFile(config, path)
    stop = asyncio.Event()
    following = asyncio.create_task(
        follow_configuration(temporal_env.client, watched, stop, config, interval=timedelta(milliseconds=100))
    )
    try:
        path.write_text(
            path.read_text()
            + f"  - name: {added}\n    namespace: {added}\n    backend: csi-addons\n    clusters: [dc1, dc2]\n"
            + "    replication:\n      name: audit\n"
        )
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))  # coarse clocks: a visibly newer mtime
        handle = temporal_env.client.get_workflow_handle(monitor_id(added))

        async def started() -> bool:
            try:
                return (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
            except RPCError:
                return False

        deadline = time.monotonic() + 10
        while not await started():
            assert time.monotonic() < deadline, f"no monitor for {added} after the configuration added it"
            await asyncio.sleep(0.1)
        await handle.terminate("test over")
        # The change also re-ensured pg-prod's monitor (no worker here runs it).
        await temporal_env.client.get_workflow_handle(monitor_id("pg-prod")).terminate("test over")
    finally:
        stop.set()
        await asyncio.wait_for(following, timeout=5)
