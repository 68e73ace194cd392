"""The simulator's reconcile loop: view both clusters, run the writers, advance replication, run the controllers.

A tick runs every ``tick`` seconds, and sooner when something happens: a watched object changes (the pollers
follow the clusters with watches) or something a controller or the model scheduled is due (a latency ends, a
retry, a final sync). So the lab's reaction times are the injected latencies, not the tick period.

Each tick:

1. Take the view of every cluster whose site is up (the watched objects; an in-memory API server is LISTed, in
   parallel, so that a dead one costs its own thread a connection error). A cluster that does not answer is
   skipped this tick; its last view is kept for the writer (the application keeps writing while only its API is
   down).
2. The writer: one acknowledged write per volume whose PVC a Running and Ready pod mounts, on each site that is
   up and writable for it.
3. The model completes due final syncs and resyncs and makes the periodic shipments.
4. Every controller reconciles the objects of every reachable cluster whose site is up.

Everything that touches the model or the faults holds one lock, so the control API (another thread) always
sees a consistent ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clusters.api import ClusterApi
from clusters.errors import ClusterUnreachableError
from sandbox.simulator.config import SimulatorConfig
from sandbox.simulator.controllers.attacher import AttacherController
from sandbox.simulator.controllers.base import Context, Controller, Shared
from sandbox.simulator.controllers.csi import CsiReplicationController, in_use
from sandbox.simulator.controllers.dell import DellReplicationController
from sandbox.simulator.controllers.trident import TridentController
from sandbox.simulator.faults import FaultRegistry
from sandbox.simulator.kube import PODS, PVCS, VOLUME_ATTACHMENTS
from sandbox.simulator.logs import log_throttled
from sandbox.simulator.model import ReplicationModel, Volume, VolumeKey
from sandbox.simulator.schemas import (
    ClusterHealth,
    DualWritableEvent,
    FaultKind,
    FaultSpec,
    FaultState,
    Health,
    Ledger,
    PromotionRecord,
    SideLedger,
    SiteState,
    VolumeLedger,
    WriteRequest,
    WriteResult,
)
from sandbox.simulator.view import ClusterView, ListPoller, Poller

log = logging.getLogger(__name__)

MIN_GAP = 0.005
"""Seconds between two ticks at least: a burst of changes is handled in one tick, not one tick per event."""


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _maybe_utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else _utc(timestamp)


@dataclass
class _Reachability:
    reachable: bool = False
    last_poll: float | None = None
    error: str | None = None


class Simulator:
    """The storage-replication simulator for a pair of clusters.

    Args:
        clusters: the two clusters' APIs by name (the first is the default initial source of Dell groups).
        config: timings; fast defaults when omitted.
        clock: POSIX time source (the model's and the written timestamps' clock).
        watch: follow the clusters with watches (and wake on changes); ``False`` lists every tick (in-memory API
            servers of the unit tier, which cannot watch).
        real_csi_addons: the upstream csi-addons controllers write the VolumeReplication and
            VolumeGroupReplication status (the simulator then only answers their driver calls, see
            :mod:`sandbox.simulator.csi_addons_driver`); the unified API stays simulated.
        real_dell: the upstream Dell csm-replication replicator writes the DellCSIReplicationGroup status (the
            simulator then only answers its driver calls, see :mod:`sandbox.simulator.dell_driver`).
    """

    def __init__(
        self,
        clusters: Mapping[str, ClusterApi],
        config: SimulatorConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        watch: bool = True,
        real_csi_addons: bool = False,
        real_dell: bool = False,
    ) -> None:
        self._apis = dict(clusters)
        self._names = tuple(self._apis)
        self._config = config or SimulatorConfig()
        self._clock = clock
        self._lock = threading.RLock()
        self.model = ReplicationModel(self._names, self._config)
        self.faults = FaultRegistry()
        self._shared = Shared()
        self._controllers: tuple[Controller, ...] = (
            CsiReplicationController(real_csi_addons=real_csi_addons),
            TridentController(),
            *(() if real_dell else (DellReplicationController(),)),
            AttacherController(),
        )
        resources = [PODS, PVCS, VOLUME_ATTACHMENTS, *(r for c in self._controllers for r in c.resources)]
        self._wake = threading.Event()
        self._pollers: dict[str, Poller | ListPoller] = {
            name: Poller(api, resources, self._wake.set) if watch else ListPoller(api, resources)
            for name, api in self._apis.items()
        }
        self._views: dict[str, ClusterView] = {}
        self._reachability = {name: _Reachability() for name in self._names}
        self._ticks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=len(self._names), thread_name_prefix="simulator-poll")

    @property
    def clusters(self) -> tuple[str, ...]:
        """The cluster names, in configuration order."""
        return self._names

    # ------------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Run the reconcile loop in a background thread."""
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        self._thread = threading.Thread(target=self.run_forever, name="simulator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (and wait for the current tick to end)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for poller in self._pollers.values():
            poller.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run_forever(self) -> None:
        """Tick until :meth:`stop`: every ``config.tick`` seconds, on a watched change, or when something is due.

        A failing tick is logged, never fatal.
        """
        while not self._stop.is_set():
            started = time.monotonic()
            self._wake.clear()
            try:
                self.tick()
            except Exception as exc:
                log_throttled(log, logging.ERROR, "simulator tick failed: %r", exc, exc_info=True)
            spent = time.monotonic() - started
            self._wake.wait(self._pause(spent))
            # Changes arriving together are handled in one tick, and a busy lab leaves the simulator idle at least
            # half the time (a tick over many objects is not free).
            self._stop.wait(max(MIN_GAP, spent))

    def _pause(self, spent: float) -> float:
        """Seconds until the next tick unless a change comes first: the period, or less when something is due."""
        pause = self._config.tick - spent
        now = self._clock()
        with self._lock:
            due = [t for t in (self._shared.next_wakeup(now), self.model.next_due()) if t is not None]
        if due:
            pause = min(pause, min(due) - now)
        return max(0.0, pause)

    def tick(self) -> None:
        """One reconcile pass over both clusters."""
        now = self._clock()
        fresh = self._poll(now)
        with self._lock:
            self._views.update(fresh)
            for name, view in self._views.items():
                if self.model.site_up[name]:
                    for key in view.writing_volumes():
                        self.model.write(key, name)
            self.model.advance(now, stalled=self._final_sync_stalled)
            for name, view in fresh.items():
                if self.model.site_up[name]:
                    self._reconcile(name, view, now)
            self._ticks += 1

    def _poll(self, now: float) -> dict[str, ClusterView]:
        futures: dict[str, Future[ClusterView]] = {
            name: self._pool.submit(poller.poll, now, self._config.idle_poll_interval)
            for name, poller in self._pollers.items()
            if self.model.site_up[name]
        }
        views: dict[str, ClusterView] = {}
        for name, future in futures.items():
            try:
                views[name] = future.result()
            except ClusterUnreachableError as exc:
                self._mark(name, reachable=False, error=exc.message)
                continue
            except Exception as exc:
                log_throttled(log, logging.ERROR, "%s: polling failed: %r", name, exc, exc_info=True)
                self._mark(name, reachable=False, error=str(exc))
                continue
            self._mark(name, reachable=True, polled_at=now)
        return views

    def _mark(self, name: str, *, reachable: bool, error: str | None = None, polled_at: float | None = None) -> None:
        state = self._reachability[name]
        if state.reachable != reachable:
            if reachable:
                log.info("%s: API server reachable", name)
            else:
                log.warning("%s: API server unreachable (%s); skipping it until it answers", name, error)
        state.reachable, state.error = reachable, error
        if polled_at is not None:
            state.last_poll = polled_at

    def _reconcile(self, name: str, view: ClusterView, now: float) -> None:
        peer = self.model.peer(name)
        ctx = Context(
            cluster=name,
            peer=peer,
            clusters=self._names,
            view=view,
            peer_view=self._views.get(peer),
            api=self._apis[name],
            model=self.model,
            faults=self.faults,
            config=self._config,
            now=now,
            shared=self._shared,
        )
        for controller in self._controllers:
            try:
                controller.reconcile(ctx)
            except ClusterUnreachableError as exc:
                self._mark(name, reachable=False, error=exc.message)
                return
            except Exception as exc:
                message = "%s: %s failed: %r"
                log_throttled(log, logging.ERROR, message, name, type(controller).__name__, exc, exc_info=True)

    def _final_sync_stalled(self, volume: Volume) -> bool:
        transfer = volume.final_sync
        if transfer is None:
            return False
        groups = {volume.key.namespace, *self._shared.aliases.get(volume.key, set())}
        return self.faults.active(FaultKind.STALL_FINAL_SYNC, groups, transfer.source)

    # ------------------------------------------------------------------------------------------------ driver side

    def locked(self) -> threading.RLock:
        """The lock every change of the model and the faults holds (a driver call takes it too)."""
        return self._lock

    def now(self) -> float:
        """The simulator's clock."""
        return self._clock()

    def wake(self) -> None:
        """Reconcile soon: a driver call changed the model (a final sync may now be due)."""
        self._wake.set()

    def volume_usage(self, cluster: str, keys: Iterable[VolumeKey]) -> str | None:
        """Why a demote on ``cluster`` would find the volumes in use (a pod or a VolumeAttachment), if they are."""
        view = self._views.get(cluster)
        return in_use(view, keys) if view is not None else None

    # ------------------------------------------------------------------------------------------------ control

    @property
    def config(self) -> SimulatorConfig:
        """The current timings."""
        return self._config

    def configure(self, changes: Mapping[str, Any]) -> SimulatorConfig:
        """Change some timings (validated; unknown names are rejected) and return the new config.

        Raises:
            pydantic.ValidationError: a value is invalid or a name unknown.
        """
        with self._lock:
            self._config = SimulatorConfig.model_validate({**self._config.model_dump(), **changes})
            self.model.config = self._config
            return self._config

    def _check_cluster(self, cluster: str | None) -> None:
        if cluster is not None and cluster not in self._names:
            raise KeyError(f"unknown cluster {cluster!r}; clusters are {', '.join(self._names)}")

    def add_fault(self, spec: FaultSpec) -> FaultState:
        """Inject a fault.

        Raises:
            KeyError: ``spec.cluster`` is not one of the simulator's clusters.
        """
        self._check_cluster(spec.cluster)
        with self._lock:
            log.info("fault injected: %s", spec.model_dump(mode="json", exclude_none=True))
            return self.faults.add(spec)

    def remove_faults(self, group: str | None = None, cluster: str | None = None, kind: FaultKind | None = None) -> int:
        """Remove the faults matching every given filter (all when none is given)."""
        with self._lock:
            return self.faults.remove(group, cluster, kind)

    def list_faults(self) -> list[FaultState]:
        """Every injected fault, with how often it fired."""
        with self._lock:
            return self.faults.entries()

    def set_site(self, cluster: str, up: bool) -> SiteState:
        """Take a site's storage down (no writes, no shipments, no controllers) or bring it back.

        Raises:
            KeyError: unknown cluster.
        """
        self._check_cluster(cluster)
        with self._lock:
            self.model.set_site(cluster, up)
            log.warning("site %s is %s", cluster, "up" if up else "down")
            return SiteState(cluster=cluster, up=up)

    def sites(self) -> dict[str, bool]:
        """Whether each site is up."""
        with self._lock:
            return dict(self.model.site_up)

    def health(self) -> Health:
        """Reachability of each cluster and the number of ticks so far."""
        with self._lock:
            clusters = {
                name: ClusterHealth(
                    reachable=state.reachable,
                    site_up=self.model.site_up[name],
                    last_poll=_maybe_utc(state.last_poll),
                    error=state.error,
                )
                for name, state in self._reachability.items()
            }
            return Health(status="ok", ticks=self._ticks, clusters=clusters)

    def api(self, cluster: str) -> ClusterApi:
        """The API of one of the simulator's clusters."""
        self._check_cluster(cluster)
        return self._apis[cluster]

    def acknowledge_writes(self, request: WriteRequest) -> WriteResult:
        """Apply writes as the application would (tests and demos that do not run a writer pod).

        Raises:
            KeyError: unknown cluster, or a volume no replication object has referenced yet.
        """
        self._check_cluster(request.cluster)
        key = VolumeKey(request.namespace, request.pvc)
        with self._lock:
            volume = self.model.get(key)
            if volume is None:
                raise KeyError(f"no replicated volume {key}: create its replication object first")
            done = sum(self.model.write(key, request.cluster) for _ in range(request.count))
            return WriteResult(acknowledged=done, volume=self._volume_ledger(volume))

    def ledger(self, namespace: str | None = None) -> Ledger:
        """The ledger of every volume (of one namespace)."""
        with self._lock:
            volumes = [
                self._volume_ledger(v)
                for v in self.model.volumes()
                if namespace is None or v.key.namespace == namespace
            ]
            return Ledger(time=_utc(self._clock()), sites=dict(self.model.site_up), volumes=volumes)

    def _volume_ledger(self, volume: Volume) -> VolumeLedger:
        writable = volume.writable_sides()
        applied = unshipped = None
        if len(writable) == 1:
            replica = volume.sides[self.model.peer(writable[0])]
            applied = replica.held
            unshipped = volume.sides[writable[0]].held - replica.held
        return VolumeLedger(
            namespace=volume.key.namespace,
            pvc=volume.key.pvc,
            writable=writable,
            sides={
                name: SideLedger(held=side.held, writable=side.writable, site_up=self.model.site_up[name])
                for name, side in volume.sides.items()
            },
            acknowledged=volume.acknowledged,
            applied_on_replica=applied,
            unshipped=unshipped,
            last_shipment=_maybe_utc(volume.last_shipment),
            last_shipped_count=volume.last_shipped_count,
            lost_at_promotion=volume.lost_at_promotion,
            discarded_at_resync=volume.discarded_at_resync,
            split_brain_writes=volume.split_brain_writes,
            link=volume.link.value,
            final_sync_pending=volume.final_sync.source if volume.final_sync else None,
            resync_pending=volume.resync.target if volume.resync else None,
            dual_writable=[DualWritableEvent(time=_utc(t), message=m) for t, m in volume.dual_writable],
            promotions=[
                PromotionRecord(
                    time=_utc(p.time),
                    cluster=p.cluster,
                    held=p.held,
                    peer_held=p.peer_held,
                    lost=p.lost,
                    forced=p.forced,
                    peer_writable=p.peer_writable,
                    peer_up=p.peer_up,
                )
                for p in volume.promotions
            ],
        )
