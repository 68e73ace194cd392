"""What the simulator sees of one cluster in one tick: a LIST per relevant kind, with the lookups controllers need.

The kinds are listed once and then followed by watches (resumed from the last resourceVersion, listed again when
a watch expires or the cluster comes back), so the simulator reacts to a change within milliseconds and its
ticks cost the API servers nothing. In-memory API servers that cannot watch are listed every tick instead, a kind
whose last LIST came back empty only every ``idle_poll_interval``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import cached_property

from clusters.api import ClusterApi, JsonObject, Resource
from clusters.errors import ClusterUnreachableError, ObjectMissingError, OrchestratorError
from clusters.watch import Watcher, WatchScope
from clusters.workloads import pod_ready
from sandbox.simulator.kube import PODS, PVCS, VOLUME_ATTACHMENTS, nested
from sandbox.simulator.logs import log_throttled
from sandbox.simulator.model import VolumeKey

log = logging.getLogger(__name__)

ATTACHER = "volume.kwok.x-k8s.io"
"""The CSI attacher the simulator plays for the lab's ``kwok.x-k8s.io/volume`` StorageClass. A VolumeAttachment's
attacher must be a DNS subdomain, so the provisioner's name (with its slash) cannot be used as is."""


def pod_claims(pod: JsonObject) -> list[str]:
    """The PVC names a pod mounts."""
    return [
        claim
        for volume in nested(pod, "spec", "volumes", default=[])
        if (claim := nested(volume, "persistentVolumeClaim", "claimName"))
    ]


def pod_active(pod: JsonObject) -> bool:
    """A pod that may still use its volumes: not Succeeded or Failed."""
    return nested(pod, "status", "phase", default="") not in ("Succeeded", "Failed")


def pod_running_ready(pod: JsonObject) -> bool:
    """A Running pod whose Ready condition is True: the application is serving (and writing)."""
    return nested(pod, "status", "phase") == "Running" and pod_ready(pod)


class ClusterView:
    """One cluster's objects of every polled kind, listed in one tick.

    Args:
        cluster: the cluster's name.
        objects: the listed objects per resource.
        polled_at: when the lists were taken.
    """

    def __init__(self, cluster: str, objects: dict[Resource, list[JsonObject]], polled_at: float) -> None:
        self.cluster = cluster
        self.polled_at = polled_at
        self._objects = objects

    def items(self, resource: Resource) -> list[JsonObject]:
        """Every listed object of ``resource``."""
        return self._objects.get(resource, [])

    def find(self, resource: Resource, name: str, namespace: str | None = None) -> JsonObject | None:
        """The listed object of that name (and namespace), if any."""
        for item in self.items(resource):
            metadata = item.get("metadata", {})
            if metadata.get("name") == name and (namespace is None or metadata.get("namespace") == namespace):
                return item
        return None

    @cached_property
    def _pvcs(self) -> dict[VolumeKey, JsonObject]:
        return {VolumeKey(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in self.items(PVCS)}

    def pvc(self, key: VolumeKey) -> JsonObject | None:
        """The PVC of a volume on this cluster."""
        return self._pvcs.get(key)

    def pvcs(self, namespace: str | None = None) -> list[JsonObject]:
        """The PVCs of one namespace (or all)."""
        return [p for key, p in self._pvcs.items() if namespace is None or key.namespace == namespace]

    @cached_property
    def _pods_by_volume(self) -> dict[VolumeKey, list[JsonObject]]:
        index: dict[VolumeKey, list[JsonObject]] = defaultdict(list)
        for pod in self.items(PODS):
            if pod_active(pod):
                for claim in pod_claims(pod):
                    index[VolumeKey(pod["metadata"]["namespace"], claim)].append(pod)
        return index

    def pods_using(self, key: VolumeKey) -> list[JsonObject]:
        """Pods (not finished) that mount the volume's PVC."""
        return self._pods_by_volume.get(key, [])

    def writing_volumes(self) -> set[VolumeKey]:
        """Volumes mounted by a Running and Ready pod: the application acknowledges writes on them."""
        return {key for key, pods in self._pods_by_volume.items() if any(pod_running_ready(p) for p in pods)}

    def attachments(self, pv_name: str) -> list[JsonObject]:
        """VolumeAttachments of a PV (by any attacher)."""
        return [
            va
            for va in self.items(VOLUME_ATTACHMENTS)
            if nested(va, "spec", "source", "persistentVolumeName") == pv_name
        ]


class Poller:
    """Keeps one cluster's relevant kinds current with watches and gives the controllers a view of them.

    The kinds are listed once and then watched (:class:`clusters.watch.Watcher`), so a tick costs the API server
    nothing and every change wakes the simulator's loop at once (``on_change``).

    Args:
        api: the cluster's API.
        resources: every kind to follow.
        on_change: called on every change of a followed object.
    """

    def __init__(self, api: ClusterApi, resources: Iterable[Resource], on_change: Callable[[], None]) -> None:
        self.api = api
        self.scopes = tuple(WatchScope(resource) for resource in dict.fromkeys(resources))
        self._on_change = on_change
        self._watcher: Watcher | None = None

    def poll(self, now: float, idle_interval: float) -> ClusterView:
        """The followed objects now (``idle_interval`` is for :class:`ListPoller`).

        Raises:
            ClusterUnreachableError: the API server does not answer (the caller skips this cluster this tick).
        """
        if self._watcher is None:
            watcher = Watcher(self.api, self.scopes, on_change=self._on_change)
            try:
                watcher.__enter__()
            except ClusterUnreachableError:
                raise
            except OrchestratorError as exc:
                log_throttled(log, logging.WARNING, "%s: listing failed: %s", self.api.cluster, exc)
                raise ClusterUnreachableError(str(exc), cluster=self.api.cluster) from exc
            self._watcher = watcher
        error = self._watcher.error
        if isinstance(error, ClusterUnreachableError):
            raise error
        return ClusterView(self.api.cluster, {s.resource: self._watcher.objects(s) for s in self.scopes}, now)

    def close(self) -> None:
        """Stop the watches."""
        if self._watcher is not None:
            self._watcher.close()


class ListPoller:
    """Lists the relevant kinds of one cluster every tick, skipping kinds that were recently empty.

    For API servers that cannot watch (the unit tier's in-memory ones); :class:`Poller` is what the lab uses.

    Args:
        api: the cluster's API.
        resources: every kind to list.
    """

    def __init__(self, api: ClusterApi, resources: Iterable[Resource]) -> None:
        self.api = api
        self.resources = tuple(dict.fromkeys(resources))
        self._last: dict[Resource, tuple[float, list[JsonObject]]] = {}

    def poll(self, now: float, idle_interval: float) -> ClusterView:
        """List every kind due this tick and return the view.

        Raises:
            ClusterUnreachableError: the API server did not answer (the caller skips this cluster this tick).
        """
        objects: dict[Resource, list[JsonObject]] = {}
        for resource in self.resources:
            previous = self._last.get(resource)
            if previous is not None and not previous[1] and now - previous[0] < idle_interval:
                objects[resource] = []
                continue
            try:
                items = self.api.list(resource)
            except ClusterUnreachableError:
                raise
            except ObjectMissingError:
                items = []  # the CRD is not installed: nothing to play
            except OrchestratorError as exc:
                log_throttled(log, logging.WARNING, "%s: listing %s failed: %s", self.api.cluster, resource.kind, exc)
                items = previous[1] if previous else []
            for item in items:
                # LIST items of built-in kinds carry no apiVersion/kind; a later update needs them.
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", resource.kind)
            self._last[resource] = (now, items)
            objects[resource] = items
        return ClusterView(self.api.cluster, objects, now)

    def close(self) -> None:
        """Nothing to stop."""
