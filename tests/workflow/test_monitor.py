"""Workflow tier: the group monitor follows the worker's configuration.

The monitor's input names the group; before every observation it resolves the group in the worker's configuration,
so a changed ``monitor_interval`` takes effect at the next observation and a group removed from the configuration
ends its monitor (instead of observing objects nobody configures any more). It remembers the newest sync seen, and
forgets it when the primary changes (a sync in the old direction measures nothing of the new one). A group added to
the worker's configuration file gets its monitor from the running worker.
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

from adapters.base import Backend, Role
from orchestrate.config import load_config
from orchestrate.worker import ConfigFile, follow_configuration
from tests.unit.config_texts import MINIMAL_CONFIG
from tests.workflow.fake_world import FakeWorld
from workflows.groups import GroupConfig, ReplicationConfig
from workflows.monitor import GroupMonitorWorkflow, MonitorInput, MonitorState, monitor_id


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


async def _wait_for_observations(world: FakeWorld, count: int, within_seconds: float) -> None:
    before = world.calls.count("observe_roles")
    deadline = time.monotonic() + within_seconds
    while world.calls.count("observe_roles") - before < count:
        assert time.monotonic() < deadline, f"fewer than {count} observations in {within_seconds} s"
        await asyncio.sleep(0.05)


async def test_a_changed_interval_takes_effect_at_the_next_observation(temporal_env: WorkflowEnvironment) -> None:
    name = f"pg-{uuid.uuid4().hex[:8]}"
    world = FakeWorld(groups={name: _group(name, timedelta(milliseconds=100))})
    task_queue = f"monitor-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_env.client, task_queue=task_queue, workflows=[GroupMonitorWorkflow], activities=world.activities()
    ):
        handle = await _start(temporal_env, world, name, task_queue)
        # The short interval is followed: several observations come (waited for, not timed, since a loaded
        # machine may take longer than 100 ms per cycle).
        await _wait_for_observations(world, 4, within_seconds=20)
        seen = await handle.query(GroupMonitorWorkflow.seen)
        assert seen is not None and seen.primary == "dc1" and seen.last_sync_seen == world.last_sync

        world.groups[name] = _group(name, timedelta(hours=1))
        # The cycle under way may still observe with the old interval (at most: the observation after a resolve
        # that ran just before the change, and the next one, which resolves the new interval); a loaded machine
        # may take longer than the old interval for that, so this waits for it instead of a fixed time.
        assert await _observations_after(world, 2.0) <= 2
        assert await _observations_after(world, 1.0) == 0  # the old interval would have observed ~10 times
        await handle.terminate("test over")


async def test_a_new_primary_forgets_the_sync_of_the_old_direction(temporal_env: WorkflowEnvironment) -> None:
    name = f"pg-{uuid.uuid4().hex[:8]}"
    world = FakeWorld(groups={name: _group(name, timedelta(milliseconds=100))})
    task_queue = f"monitor-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_env.client, task_queue=task_queue, workflows=[GroupMonitorWorkflow], activities=world.activities()
    ):
        handle = await _start(temporal_env, world, name, task_queue)
        shipped_to_dc2 = world.last_sync

        async def seen_primary(cluster: str) -> MonitorState:
            deadline = time.monotonic() + 10
            while True:
                seen = await handle.query(GroupMonitorWorkflow.seen)
                if seen is not None and seen.primary == cluster and seen.observed_at is not None:
                    return seen
                assert time.monotonic() < deadline, f"the monitor never saw {cluster} primary: {seen}"
                await asyncio.sleep(0.05)

        assert (await seen_primary("dc1")).last_sync_seen == shipped_to_dc2
        # A failover: dc2 is primary now, and the newest sync of dc2's data to dc1 is older than the last one of
        # dc1's data to dc2 (which the old direction's memory would keep as the newest).
        world.sides["dc1"].role, world.sides["dc2"].role = Role.SECONDARY, Role.PRIMARY
        world.last_sync = shipped_to_dc2 - timedelta(minutes=5)
        assert (await seen_primary("dc2")).last_sync_seen == world.last_sync
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
