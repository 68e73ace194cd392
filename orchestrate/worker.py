"""The worker process: runs the failover workflows and activities for every configured cluster.

Activities are synchronous (the Kubernetes client is), so they run in a thread pool at least as large as the
number of concurrent activities. The worker is stateless: kill it at any time, start another, and running
operations resume from Temporal's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities.failover import FailoverActivities
from clusters.registry import ClusterRegistry
from orchestrate.config import OrchestratorConfig
from orchestrate.service import ensure_monitors
from orchestrate.temporal_client import connect
from workflows.failover import GroupFailoverWorkflow
from workflows.monitor import GroupMonitorWorkflow

MAX_CONCURRENT_ACTIVITIES = 32


def activity_functions(activities: FailoverActivities) -> list[Callable[..., Any]]:
    """Every activity the workflows call, bound to ``activities``."""
    return [
        activities.observe_roles,
        activities.check_reachable,
        activities.preflight,
        activities.stop_workloads,
        activities.wait_volumes_released,
        activities.start_workloads,
        activities.wait_workloads_ready,
        activities.demote,
        activities.wait_final_sync,
        activities.prepare_sync_point,
        activities.promote,
        activities.wait_promoted,
        activities.reprotect,
        activities.wait_resync,
        activities.run_hook,
    ]


def build_worker(
    client: Client, config: OrchestratorConfig, registry: ClusterRegistry, executor: ThreadPoolExecutor
) -> Worker:
    """A worker on the configured task queue with the workflows and activities."""
    activities = FailoverActivities(registry, httpx.Client())
    return Worker(
        client,
        task_queue=config.temporal.task_queue,
        workflows=[GroupFailoverWorkflow, GroupMonitorWorkflow],
        activities=activity_functions(activities),
        activity_executor=executor,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
    )


async def run_worker(config: OrchestratorConfig, ready: Callable[[], None] | None = None) -> None:
    """Run until SIGINT or SIGTERM."""
    client = await connect(config.temporal)
    registry = ClusterRegistry(config.clusters)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        with ThreadPoolExecutor(max_workers=MAX_CONCURRENT_ACTIVITIES) as executor:
            async with build_worker(client, config, registry, executor):
                await ensure_monitors(client, config)
                if ready is not None:
                    ready()
                await stop.wait()
    finally:
        registry.close()
