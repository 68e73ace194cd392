"""The worker process: runs the failover, fence and monitor workflows and their activities for every cluster.

Activities are synchronous (the Kubernetes client is), so they run in a thread pool. Ordinary activities (the
waits, which may hold a thread for many minutes) and local activities (short steps) have separate slot limits,
and the pool has a thread for every slot of both: a queued short step never waits for a wait to end. The worker
is stateless: kill it at any time, start another, and running operations resume from Temporal's history. On
SIGTERM it stops polling, gives running activities a moment, and their waits leave as retryable "worker shutting
down" failures, never as an operator's cancellation.

The worker acts only on its own configuration: workflow inputs name a group and :class:`ConfigFile` resolves it,
re-reading the file when it changes (a group edited or removed takes effect at the next step, a group added gets
its monitor within :data:`CONFIG_CHECK_INTERVAL`; clusters need a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.failover import FailoverActivities
from activities.groups import GroupNotConfiguredError
from activities.site import SiteActivities
from clusters.registry import ClusterRegistry
from orchestrate.config import ConfigError, OrchestratorConfig, UnknownGroupError, load_config
from orchestrate.service import ensure_monitors
from orchestrate.temporal_client import connect
from workflows.failover import GroupFailoverWorkflow, GroupFenceWorkflow
from workflows.groups import GroupConfig
from workflows.monitor import GroupMonitorWorkflow
from workflows.site import SiteFailoverWorkflow

MAX_CONCURRENT_ACTIVITIES = 128
"""Ordinary activities at once (waits and hooks): one per group of a site failover of 100 groups, and the monitors.
A wait blocks on its watches, so a slot costs a thread, not CPU."""
MAX_CONCURRENT_LOCAL_ACTIVITIES = 32
"""Local activities at once (short steps): their own slots, and their own threads in the pool."""
GRACEFUL_SHUTDOWN = timedelta(seconds=5)
HEARTBEAT_THROTTLE = timedelta(seconds=1)
"""Heartbeats reach the server at least this often: an ``abort`` (a cancellation) reaches a running wait on its
next heartbeat; the SDK's default (0.8 x the 30 s heartbeat timeout) would delay an abort by up to 24 s."""

CONFIG_CHECK_INTERVAL = timedelta(seconds=10)
"""How often the worker looks at its configuration file for groups that have no monitor yet."""

log = logging.getLogger(__name__)


class ConfigFile:
    """The worker's configuration, re-read when its file changes (a broken edit keeps the last good one).

    Args:
        config: the configuration loaded at start.
        path: its file (``None``: never re-read).
    """

    def __init__(self, config: OrchestratorConfig, path: Path | None = None) -> None:
        self._config = config
        self._path = path
        self._stamp = self._mtime()
        self._lock = threading.Lock()

    def _mtime(self) -> float | None:
        try:
            return self._path.stat().st_mtime_ns if self._path else None
        except OSError:
            return None

    def current(self) -> OrchestratorConfig:
        """The newest valid configuration."""
        stamp = self._mtime()
        if stamp is not None and stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self._config = load_config(self._path)
                        log.info("configuration reloaded from %s", self._path)
                    except ConfigError as error:
                        log.error("configuration edit ignored (keeping the previous one): %s", error)
        return self._config

    def site_clusters(self, site: str) -> tuple[str, ...]:
        """The configured clusters of ``site``."""
        return tuple(c.name for c in self.current().clusters if c.site == site)

    def all_groups(self) -> Sequence[GroupConfig]:
        """Every configured group."""
        return self.current().groups

    def group(self, name: str) -> GroupConfig:
        """The group called ``name``; :class:`GroupNotConfiguredError` (permanent) when there is none."""
        try:
            return self.current().group(name)
        except UnknownGroupError as error:
            raise GroupNotConfiguredError(f"{error} (in this worker's configuration)") from None


def activity_functions(activities: FailoverActivities, site: SiteActivities | None = None) -> list[Callable[..., Any]]:
    """Every activity the workflows call, bound to ``activities`` (and ``site`` for the site failover's)."""
    site_functions: list[Callable[..., Any]] = (
        [site.plan_site, site.group_operations, site.wait_group_operation] if site is not None else []
    )
    return [
        *site_functions,
        activities.resolve_group,
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
        activities.transfer_sync_point,
        activities.promote,
        activities.wait_promoted,
        activities.wait_secondary,
        activities.reprotect,
        activities.wait_resync,
        activities.run_hook,
    ]


WORKFLOWS = [GroupFailoverWorkflow, GroupFenceWorkflow, GroupMonitorWorkflow, SiteFailoverWorkflow]


@dataclass(frozen=True)
class WorkerLimits:
    """Slots of each kind of activity, and the threads that serve them all at once.

    Attributes:
        activities: ordinary activities at once (waits, which may hold a thread for many minutes, and hooks).
        local: local activities at once (short steps).
    """

    activities: int = MAX_CONCURRENT_ACTIVITIES
    local: int = MAX_CONCURRENT_LOCAL_ACTIVITIES

    @property
    def threads(self) -> int:
        """A thread for every slot of both kinds: waits holding every ordinary slot never starve a short step."""
        return self.activities + self.local

    def executor(self) -> ThreadPoolExecutor:
        """The activity thread pool."""
        return ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="activity")


def worker_for(
    client: Client,
    task_queue: str,
    activities: Sequence[Callable[..., Any]],
    executor: ThreadPoolExecutor,
    limits: WorkerLimits = WorkerLimits(),
) -> Worker:
    """A worker of the project's workflows and ``activities`` with the production settings."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities,
        activity_executor=executor,
        max_concurrent_activities=limits.activities,
        max_concurrent_local_activities=limits.local,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )


def build_worker(client: Client, config: ConfigFile, registry: ClusterRegistry, executor: ThreadPoolExecutor) -> Worker:
    """A worker on the configured task queue with the workflows and activities."""
    activities = FailoverActivities(registry, config.group, httpx.Client())
    site = SiteActivities(activities, config, client)
    return worker_for(client, config.current().temporal.task_queue, activity_functions(activities, site), executor)


async def follow_configuration(
    client: Client,
    watched: ConfigFile,
    stop: asyncio.Event,
    monitored: OrchestratorConfig,
    interval: timedelta = CONFIG_CHECK_INTERVAL,
) -> None:
    """Until ``stop`` is set: whenever the configuration file changed, start the monitors of groups it added.

    A removed group's monitor ends by itself (it resolves its group before each observation); an added group has
    nobody to start its monitor but this.

    Args:
        client: the Temporal client.
        watched: the worker's configuration file.
        stop: set when the worker stops.
        monitored: the configuration whose monitors were last ensured.
        interval: how often to look.
    """
    known = monitored
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval.total_seconds())
        current = watched.current()
        if current is known:
            continue
        try:
            await ensure_monitors(client, current)
            known = current
        except RPCError as error:  # Temporal unreachable for now: try again at the next check
            log.warning("could not start the monitors of the new configuration: %s", error)


async def run_worker(
    config: OrchestratorConfig, ready: Callable[[], None] | None = None, *, path: Path | None = None
) -> None:
    """Run until SIGINT or SIGTERM.

    Args:
        config: the configuration loaded at start.
        ready: called once the worker polls.
        path: the configuration's file, re-read when it changes.
    """
    client = await connect(config.temporal)
    registry = ClusterRegistry(config.clusters)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    watched = ConfigFile(config, path)
    try:
        with WorkerLimits().executor() as executor:
            async with build_worker(client, watched, registry, executor):
                await ensure_monitors(client, config)
                if ready is not None:
                    ready()
                await follow_configuration(client, watched, stop, config)
    finally:
        registry.close()
