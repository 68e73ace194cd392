"""What every simulated controller gets each tick (:class:`Context`) and the small pieces they share.

A controller reconciles the objects of one cluster per call: it reads them from the tick's view, drives the
replication model, and writes status only when the rendered status differs from the object's (so a steady lab
causes no writes). Controllers keep in-memory operation state per object (when a request was seen, when the
next attempt is due) in an :class:`OpTable`; a restarted simulator rebuilds it from the objects.
"""

from __future__ import annotations

import abc
import copy
import heapq
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar

from clusters.api import ClusterApi, JsonObject, Resource
from clusters.errors import ClusterUnreachableError, ConflictError, ObjectMissingError, OrchestratorError
from sandbox.simulator.config import SimulatorConfig
from sandbox.simulator.faults import FaultRegistry
from sandbox.simulator.kube import WITHOUT_STATUS_SUBRESOURCE, rfc3339
from sandbox.simulator.logs import log_throttled
from sandbox.simulator.model import ReplicationModel, SnapshotPoint, VolumeKey
from sandbox.simulator.schemas import FaultKind, FaultState
from sandbox.simulator.view import ClusterView

log = logging.getLogger(__name__)

Op = TypeVar("Op")

EVENTS = Resource("", "v1", "events", "Event")
EVENT_SOURCE = "sandbox-storage-simulator"


@dataclass(frozen=True)
class SnapshotRecord:
    """A VolumeSnapshot the simulator made ready: where it was taken and the data it captured."""

    cluster: str
    key: VolumeKey
    point: SnapshotPoint


@dataclass
class Shared:
    """State shared by controllers across clusters and ticks.

    Attributes:
        snapshots: captured VolumeSnapshots by snapshot UID (Trident snapshot handles end in ``snapshot-<uid>``).
        aliases: extra fault-group names per volume (the Dell RG names its PVCs belong to).
        wakeups: times at which a controller has something due (a latency ends, a retry): the loop reconciles
            then instead of waiting for its next tick (a heap).
    """

    snapshots: dict[str, SnapshotRecord] = field(default_factory=dict)
    aliases: dict[VolumeKey, set[str]] = field(default_factory=dict)
    wakeups: list[float] = field(default_factory=list)

    def next_wakeup(self, now: float) -> float | None:
        """The first wake-up time after ``now`` (earlier ones are dropped)."""
        while self.wakeups and self.wakeups[0] <= now:
            heapq.heappop(self.wakeups)
        return self.wakeups[0] if self.wakeups else None


@dataclass
class Context:
    """One cluster's reconcile in one tick.

    Attributes:
        cluster: the cluster being reconciled.
        peer: the other cluster.
        clusters: every cluster, in configuration order.
        view: this cluster's objects.
        peer_view: the peer's objects as last seen (``None`` before the first successful poll).
        api: this cluster's API.
        model: the replication model.
        faults: injected faults.
        config: timings.
        now: the tick's time.
        shared: state shared across clusters.
    """

    cluster: str
    peer: str
    clusters: tuple[str, ...]
    view: ClusterView
    peer_view: ClusterView | None
    api: ClusterApi
    model: ReplicationModel
    faults: FaultRegistry
    config: SimulatorConfig
    now: float
    shared: Shared

    def due(self, moment: float) -> float:
        """Record that something is due at ``moment`` (the loop wakes then) and return ``moment``."""
        heapq.heappush(self.shared.wakeups, moment)
        return moment

    def groups(self, keys: Iterable[VolumeKey], *extra: str) -> set[str]:
        """The fault-group names of a set of volumes: their namespaces, their aliases and ``extra``."""
        names = set(extra)
        for key in keys:
            names.add(key.namespace)
            names |= self.shared.aliases.get(key, set())
        return names

    def take_fault(self, kind: FaultKind, groups: Iterable[str], cluster: str | None = None) -> FaultState | None:
        """Fire a counted fault for one attempt on ``cluster`` (this one by default)."""
        return self.faults.take(kind, groups, cluster or self.cluster)

    def fault_active(self, kind: FaultKind, groups: Iterable[str], cluster: str | None = None) -> bool:
        """Whether a fault of ``kind`` holds on ``cluster`` (this one by default)."""
        return self.faults.active(kind, groups, cluster or self.cluster)

    def write_status(self, resource: Resource, obj: JsonObject, status: JsonObject) -> JsonObject | None:
        """Replace the object's status (guarded by its resourceVersion); the updated object, or ``None``.

        A conflict or a deleted object is not an error: the next tick sees the new state and tries again.
        """
        body = copy.deepcopy(obj)
        body["status"] = status
        subresource = None if resource in WITHOUT_STATUS_SUBRESOURCE else "status"
        return self._replace(resource, body, subresource)

    def event(self, obj: JsonObject, event_type: str, reason: str, message: str) -> None:
        """Record a core/v1 Event about ``obj`` (best effort: a failure is only logged)."""
        metadata = obj["metadata"]
        body = {
            "metadata": {"generateName": f"{metadata['name']}."},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ""),
                "name": metadata["name"],
                "namespace": metadata.get("namespace", ""),
                "uid": metadata.get("uid", ""),
            },
            "type": event_type,
            "reason": reason,
            "message": message,
            "source": {"component": EVENT_SOURCE},
            "firstTimestamp": rfc3339(self.now),
            "lastTimestamp": rfc3339(self.now),
            "count": 1,
        }
        try:
            # Events of cluster-scoped objects live in "default", as client-go's recorder puts them.
            self.api.create(EVENTS, body, metadata.get("namespace") or "default")
        except ClusterUnreachableError:
            raise
        except OrchestratorError as exc:
            log_throttled(log, logging.WARNING, "%s: recording an event failed: %s", self.cluster, exc)

    def update(self, resource: Resource, obj: JsonObject) -> JsonObject | None:
        """Replace the object (spec and metadata) as given; the updated object, or ``None``."""
        return self._replace(resource, obj, None)

    def _replace(self, resource: Resource, body: JsonObject, subresource: str | None) -> JsonObject | None:
        body.setdefault("apiVersion", resource.api_version)
        body.setdefault("kind", resource.kind)
        try:
            return self.api.replace(resource, body, subresource=subresource)
        except ClusterUnreachableError:
            raise
        except (ConflictError, ObjectMissingError) as exc:
            log.debug("%s: %s", self.cluster, exc)
        except OrchestratorError as exc:
            log_throttled(log, logging.WARNING, "%s: writing %s failed: %s", self.cluster, resource.kind, exc)
        return None


class OpTable(Generic[Op]):
    """In-memory operation state per object (cluster + UID), forgotten when the object is gone."""

    def __init__(self) -> None:
        self._ops: dict[tuple[str, str], Op] = {}

    def get(self, cluster: str, uid: str) -> Op | None:
        """The state of an object, if any."""
        return self._ops.get((cluster, uid))

    def put(self, cluster: str, uid: str, op: Op) -> Op:
        """Record an object's state."""
        self._ops[(cluster, uid)] = op
        return op

    def drop(self, cluster: str, uid: str) -> None:
        """Forget an object's state."""
        self._ops.pop((cluster, uid), None)

    def prune(self, cluster: str, live: Iterable[str]) -> None:
        """Forget the objects of ``cluster`` whose UID is not in ``live``."""
        keep = set(live)
        for key in [k for k in self._ops if k[0] == cluster and k[1] not in keep]:
            del self._ops[key]


class Controller(abc.ABC):
    """One backend's controller, playing its objects on every cluster."""

    resources: ClassVar[tuple[Resource, ...]]
    """The kinds it needs listed every tick (besides pods, PVCs and VolumeAttachments)."""

    @abc.abstractmethod
    def reconcile(self, ctx: Context) -> None:
        """Reconcile every object of this controller's kinds on ``ctx.cluster``."""


def reconcile_each(
    ctx: Context, resource: Resource, ops: OpTable[Op] | None, reconcile_one: Callable[[JsonObject], None]
) -> None:
    """Call ``reconcile_one`` for every object of ``resource`` on this cluster, then forget vanished objects' ops.

    A failure on one object is logged and does not stop the others; :class:`ClusterUnreachableError` propagates
    (the cluster went away mid-tick: the rest of its reconcile is pointless).
    """
    items = ctx.view.items(resource)
    for obj in items:
        try:
            reconcile_one(obj)
        except ClusterUnreachableError:
            raise
        except Exception as exc:
            message = "%s: reconciling %s failed: %r"
            log_throttled(log, logging.ERROR, message, ctx.cluster, object_ref(obj), exc, exc_info=True)
    if ops is not None:
        ops.prune(ctx.cluster, (o["metadata"]["uid"] for o in items))


def object_ref(obj: JsonObject) -> str:
    """``kind namespace/name`` (or ``kind name``) of an object, for logs."""
    metadata = obj.get("metadata", {})
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{obj.get('kind', '?')} {where}{metadata.get('name', '?')}"
