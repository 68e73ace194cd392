"""Helpers to set up and watch replicated workloads on the lab clusters: PVCs, a writer pod, replication objects.

Used by the simulator's lab tests; also handy for demos (``orchestrate sandbox``). Object bodies follow the lab's
CRDs (``deploy/crds``); every helper goes through :class:`~clusters.api.ClusterApi`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from kubernetes import client, watch

from clusters.api import NAMESPACES, ClusterApi, JsonObject, Resource
from clusters.errors import ConflictError, ForbiddenError
from sandbox.simulator.client import SimulatorApiError, SimulatorClient
from sandbox.simulator.kube import PODS, PVCS, nested
from sandbox.simulator.view import pod_running_ready

T = TypeVar("T")

STORAGE_CLASS = "kwok-volume"


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 15.0, interval: float = 0.1) -> T:
    """Call ``probe`` until it returns something truthy and return that.

    A probe that raises ``KeyError`` or :class:`SimulatorApiError` (a volume the simulator has not picked up yet,
    as happens on a loaded machine) counts as "not yet".

    Raises:
        TimeoutError: ``what`` did not happen within ``timeout`` (the message shows the last value or error).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except (KeyError, SimulatorApiError) as error:
            last = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f}s (last: {last!r})")
        time.sleep(interval)


def wait_until_known(simulator: SimulatorClient, namespace: str, pvc: str, timeout: float = 30.0) -> None:
    """Wait until the simulator has picked up a replicated volume (before writing to it or reading its ledger)."""
    wait_for(lambda: simulator.volume(namespace, pvc), f"the simulator knows {namespace}/{pvc}", timeout)


def ensure_namespace(api: ClusterApi, name: str) -> None:
    """Create a namespace unless it exists."""
    if api.find(NAMESPACES, name) is None:
        api.create(NAMESPACES, {"metadata": {"name": name}})


def create_pvc(
    api: ClusterApi, namespace: str, name: str, labels: Mapping[str, str] | None = None, size: str = "1Gi"
) -> JsonObject:
    """A PVC of the lab's ``kwok-volume`` StorageClass (kwok binds it to a new PV)."""
    body = {
        "metadata": {"name": name, "labels": dict(labels or {})},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": STORAGE_CLASS,
            "resources": {"requests": {"storage": size}},
        },
    }
    return api.create(PVCS, body, namespace)


def wait_bound(api: ClusterApi, namespace: str, name: str, timeout: float = 15.0) -> str:
    """Wait until the PVC is Bound; the PV's name."""

    def bound_volume() -> str | None:
        pvc = api.find(PVCS, name, namespace)
        return nested(pvc, "spec", "volumeName") if nested(pvc, "status", "phase") == "Bound" else None

    return wait_for(bound_volume, f"{api.cluster} PVC {namespace}/{name} Bound", timeout)


def create_writer_pod(api: ClusterApi, namespace: str, name: str, claims: list[str], timeout: float = 15.0) -> None:
    """A pod mounting ``claims`` (kwok runs it): while it is Running and Ready, the simulator writes to them.

    Retries while the namespace's default service account does not exist yet (a fresh namespace).
    """
    body = {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.k8s.io/pause:3.10",
                    "volumeMounts": [{"name": c, "mountPath": f"/data/{c}"} for c in claims],
                }
            ],
            "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims],
        },
    }

    def create() -> bool:
        try:
            api.create(PODS, body, namespace)
        except ConflictError:
            return True  # created by an earlier try whose answer was lost
        except ForbiddenError:
            return False  # "serviceaccount default not found" until the controller manager creates it
        return True

    wait_for(create, f"{api.cluster} pod {namespace}/{name} created", timeout)


def pod_ready(api: ClusterApi, namespace: str, name: str) -> bool:
    """Whether the pod is Running and Ready."""
    pod = api.find(PODS, name, namespace)
    return pod is not None and pod_running_ready(pod)


def delete_and_wait(
    api: ClusterApi, resource: Any, name: str, namespace: str | None = None, timeout: float = 15.0
) -> None:
    """Delete an object and wait until it is gone."""
    api.delete(resource, name, namespace)
    wait_for(lambda: api.find(resource, name, namespace) is None, f"{api.cluster} {name} deleted", timeout)


def condition(obj: JsonObject | None, condition_type: str) -> JsonObject | None:
    """A ``metav1.Condition`` of an object's status, by type."""
    for item in nested(obj, "status", "conditions", default=[]):
        if item.get("type") == condition_type:
            return dict(item)
    return None


def observed(obj: JsonObject | None) -> bool:
    """Whether the status and every condition were computed for the object's current generation."""
    if obj is None:
        return False
    generation = obj["metadata"].get("generation")
    status = obj.get("status") or {}
    return status.get("observedGeneration") == generation and all(
        c.get("observedGeneration") == generation for c in status.get("conditions", [])
    )


def conditions_summary(obj: JsonObject | None) -> dict[str, str]:
    """``{type: "Status/Reason"}`` of an object's conditions (compact assertions)."""
    return {c["type"]: f"{c['status']}/{c['reason']}" for c in nested(obj, "status", "conditions", default=[])}


def force_delete(api: ClusterApi, resource: Resource, name: str, namespace: str | None = None) -> None:
    """Delete at once (grace period 0): a pod goes without waiting for the (fake) kubelet."""
    api.request(
        "DELETE", resource.path(namespace, name), {"gracePeriodSeconds": 0}, object_ref=resource.ref(name, namespace)
    )


class StatusHistory:
    """Every version of one custom object while recording, from a watch: no intermediate status is missed.

    Use as a context manager. Entering lists the object (it need not exist yet) and watches from that list's
    resourceVersion, so every later version is seen.

    Args:
        api: the cluster.
        resource: the object's kind (a custom resource).
        name: the object's name.
        namespace: its namespace (``None`` for cluster-scoped kinds).
    """

    def __init__(self, api: ClusterApi, resource: Resource, name: str, namespace: str | None = None) -> None:
        self.versions: list[JsonObject] = []
        self.error: Exception | None = None
        self._stopping = False
        self._api, self._resource, self._name, self._namespace = api, resource, name, namespace
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        self._thread: threading.Thread | None = None

    def _lister(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        custom = client.CustomObjectsApi(self._api.api_client)
        arguments: dict[str, Any] = {
            "group": self._resource.group,
            "version": self._resource.version,
            "plural": self._resource.plural,
            "field_selector": f"metadata.name={self._name}",
        }
        if self._namespace is None:
            return custom.list_cluster_custom_object, arguments
        return custom.list_namespaced_custom_object, {**arguments, "namespace": self._namespace}

    def _run(self, resource_version: str) -> None:
        lister, arguments = self._lister()
        arguments.update(resource_version=resource_version, timeout_seconds=300)
        try:
            for event in self._watch.stream(lister, **arguments):  # type: ignore[no-untyped-call]
                self.versions.append(event["object"])
        except Exception as exc:
            # Closing the client under a stopped watch ends its stream abruptly: only an earlier end is an error.
            if not self._stopping:
                self.error = exc

    def __enter__(self) -> StatusHistory:
        lister, arguments = self._lister()
        listed = lister(**arguments)
        self.versions.extend(listed.get("items", []))
        version = listed["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._run, args=(version,), name=f"watch-{self._name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stopping = True
        self._watch.stop()  # type: ignore[no-untyped-call]

    def caught_up(self, timeout: float = 10.0) -> None:
        """Wait until the recording holds the object's current version.

        A watch event comes a moment after the write that a reader already saw: read the history only after this.

        Raises:
            AssertionError: the watch did not deliver that version within ``timeout`` seconds.
        """
        current = self._api.get(self._resource, self._name, self._namespace)["metadata"]["resourceVersion"]
        deadline = time.monotonic() + timeout
        while not any(v.get("metadata", {}).get("resourceVersion") == current for v in list(self.versions)):
            if self.error is not None or time.monotonic() > deadline:
                raise AssertionError(f"the watch did not deliver version {current} within {timeout}s ({self.error})")
            time.sleep(0.02)

    def statuses(self) -> list[JsonObject]:
        """The distinct statuses seen, in order."""
        seen: list[JsonObject] = []
        for version in self.versions:
            status = version.get("status") or {}
            if not seen or seen[-1] != status:
                seen.append(status)
        return seen

    def condition_sets(self) -> list[dict[str, str]]:
        """``conditions_summary`` of every version computed for the object's generation, without repeats."""
        result: list[dict[str, str]] = []
        for version in self.versions:
            if observed(version):
                summary = conditions_summary(version)
                if not result or result[-1] != summary:
                    result.append(summary)
        return result


# ---------------------------------------------------------------------------------------------------- bodies


def csi_vgr(name: str, match_labels: Mapping[str, str], state: str, auto_resync: bool = False) -> JsonObject:
    """A csi-addons VolumeGroupReplication over the PVCs with ``match_labels``."""
    return {
        "metadata": {"name": name},
        "spec": {
            "volumeGroupReplicationClassName": "rbd-vgrc",
            "source": {"selector": {"matchLabels": dict(match_labels)}},
            "replicationState": state,
            "autoResync": auto_resync,
        },
    }


def unified_vgr(name: str, match_labels: Mapping[str, str], state: str, auto_resync: bool | None = None) -> JsonObject:
    """A unified VolumeGroupReplication over the PVCs with ``match_labels``."""
    spec: JsonObject = {
        "volumeGroupReplicationClass": "unified-vgrc",
        "selector": {"matchLabels": dict(match_labels)},
        "replicationState": state,
    }
    if auto_resync is not None:
        spec["autoResync"] = auto_resync
    return {"metadata": {"name": name}, "spec": spec}


def tmr(name: str, pvc: str, state: str, remote_handle: str = "", snapshot_handle: str = "") -> JsonObject:
    """A TridentMirrorRelationship for one PVC."""
    mapping: JsonObject = {"localPVCName": pvc}
    if remote_handle:
        mapping["remoteVolumeHandle"] = remote_handle
    if snapshot_handle:
        mapping["promotedSnapshotHandle"] = snapshot_handle
    return {
        "metadata": {"name": name},
        "spec": {
            "state": state,
            "replicationPolicy": "MirrorAllSnapshots",
            "replicationSchedule": "1min",
            "volumeMappings": [mapping],
        },
    }


def dell_rg(name: str, remote_cluster: str, initial_source: str | None = None) -> JsonObject:
    """A DellCSIReplicationGroup (cluster-scoped) with no action."""
    metadata: JsonObject = {"name": name}
    if initial_source:
        metadata["annotations"] = {"sandbox.failover-orchestrator.io/initial-source": initial_source}
    return {
        "metadata": metadata,
        "spec": {
            "driverName": "csi-powerstore.dellemc.com",
            "action": "",
            "remoteClusterId": remote_cluster,
            "protectionGroupId": f"pg-{name}",
            "remoteProtectionGroupId": f"pg-{name}",
        },
    }


def set_spec(api: ClusterApi, resource: Any, name: str, spec: JsonObject, namespace: str | None = None) -> JsonObject:
    """Merge-patch ``spec`` into an object (the orchestrator's way of asking for a change)."""
    return api.patch(resource, name, {"spec": spec}, namespace)
