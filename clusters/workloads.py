"""Workloads and volumes of a protection group on one cluster.

Scale StatefulSets and Deployments (through their ``scale`` subresource, idempotently), read desired and ready
replicas, find the group's PVCs, and tell whether any volume is still in use: a pod that references a PVC, or a
VolumeAttachment of its PV. The orchestrator demotes only when nothing uses the volumes (newer ceph-csi refuses to
demote a published volume).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from clusters.api import (
    DEPLOYMENTS,
    PODS,
    PVCS,
    STATEFULSETS,
    VOLUME_ATTACHMENTS,
    ClusterApi,
    JsonObject,
    Resource,
)

WorkloadKind = Literal["StatefulSet", "Deployment"]

_RESOURCES: dict[str, Resource] = {"StatefulSet": STATEFULSETS, "Deployment": DEPLOYMENTS}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WorkloadRef(_Frozen):
    """A workload of a group, by kind and name (in the group's namespace)."""

    kind: WorkloadKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


class WorkloadState(_Frozen):
    """Replica counts of one workload.

    Attributes:
        ref: the workload.
        desired: ``spec.replicas``.
        ready: ``status.readyReplicas``.
        current: pods the controller reports (``status.replicas``), including terminating ones being replaced.
        observed: the controller has observed the latest spec (``status.observedGeneration``).
    """

    ref: WorkloadRef
    desired: int
    ready: int
    current: int
    observed: bool

    @property
    def settled(self) -> bool:
        """Whether the controller observed the spec and every desired replica (and no more) is ready."""
        return self.observed and self.ready == self.desired and self.current == self.desired


class VolumesInUse(_Frozen):
    """What still uses a group's volumes on one cluster.

    Attributes:
        pods: ``pod -> PVCs it references`` for pods that are not finished.
        attachments: VolumeAttachment names of the group's PVs.
    """

    pods: dict[str, tuple[str, ...]]
    attachments: tuple[str, ...]

    @property
    def idle(self) -> bool:
        """Whether nothing uses the volumes."""
        return not self.pods and not self.attachments

    def describe(self) -> str:
        """A one-line summary for progress messages."""
        if self.idle:
            return "no pod uses the volumes and no VolumeAttachment remains"
        parts = []
        if self.pods:
            parts.append(f"{len(self.pods)} pod(s) still use the volumes ({', '.join(sorted(self.pods))})")
        if self.attachments:
            parts.append(f"{len(self.attachments)} VolumeAttachment(s) remain ({', '.join(self.attachments)})")
        return "; ".join(parts)


def read_workload(api: ClusterApi, namespace: str, ref: WorkloadRef) -> WorkloadState:
    """Read a workload's replica counts."""
    document = api.get(_RESOURCES[ref.kind], ref.name, namespace)
    return workload_state(ref, document)


def workload_state(ref: WorkloadRef, document: JsonObject) -> WorkloadState:
    """Replica counts from a StatefulSet or Deployment document."""
    spec, status = document.get("spec", {}), document.get("status", {})
    generation = document.get("metadata", {}).get("generation", 0)
    return WorkloadState(
        ref=ref,
        desired=int(spec.get("replicas", 1)),
        ready=int(status.get("readyReplicas", 0)),
        current=int(status.get("replicas", 0)),
        observed=int(status.get("observedGeneration", 0)) >= int(generation),
    )


def scale_workload(api: ClusterApi, namespace: str, ref: WorkloadRef, replicas: int) -> bool:
    """Set a workload's replicas through its ``scale`` subresource; no write when it already has them.

    Returns:
        Whether a write happened.
    """
    resource = _RESOURCES[ref.kind]
    current = api.get(resource, ref.name, namespace)
    if int(current.get("spec", {}).get("replicas", 1)) == replicas:
        return False
    api.patch(resource, ref.name, {"spec": {"replicas": replicas}}, namespace, subresource="scale")
    return True


def pvc_names_by_selector(api: ClusterApi, namespace: str, label_selector: str) -> list[str]:
    """The names of the PVCs in ``namespace`` that match ``label_selector``, sorted."""
    return sorted(p["metadata"]["name"] for p in api.list(PVCS, namespace, label_selector=label_selector))


def _pod_claims(pod: JsonObject) -> set[str]:
    return {
        volume["persistentVolumeClaim"]["claimName"]
        for volume in pod.get("spec", {}).get("volumes", []) or []
        if volume.get("persistentVolumeClaim")
    }


def volumes_in_use(api: ClusterApi, namespace: str, pvc_names: list[str] | tuple[str, ...]) -> VolumesInUse:
    """Pods that reference any of ``pvc_names`` and VolumeAttachments of their bound PVs."""
    wanted = set(pvc_names)
    pods: dict[str, tuple[str, ...]] = {}
    for pod in api.list(PODS, namespace):
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        claims = _pod_claims(pod) & wanted
        if claims:
            pods[pod["metadata"]["name"]] = tuple(sorted(claims))
    volume_names = {
        claim["spec"].get("volumeName")
        for claim in api.list(PVCS, namespace)
        if claim["metadata"]["name"] in wanted and claim.get("spec", {}).get("volumeName")
    }
    attachments = tuple(
        sorted(
            attachment["metadata"]["name"]
            for attachment in api.list(VOLUME_ATTACHMENTS)
            if attachment.get("spec", {}).get("source", {}).get("persistentVolumeName") in volume_names
        )
    )
    return VolumesInUse(pods=pods, attachments=attachments)


def running_pods(api: ClusterApi, namespace: str, ref: WorkloadRef) -> list[str]:
    """Names of the workload's pods that are Running (by the workload's selector)."""
    document = api.get(_RESOURCES[ref.kind], ref.name, namespace)
    labels = document.get("spec", {}).get("selector", {}).get("matchLabels", {})
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return sorted(
        pod["metadata"]["name"]
        for pod in api.list(PODS, namespace, label_selector=selector or None)
        if pod.get("status", {}).get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
    )
