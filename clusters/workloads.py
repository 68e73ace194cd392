"""Workloads and volumes of a protection group on one cluster.

Scale StatefulSets and Deployments (through their ``scale`` subresource, idempotently), read desired and ready
replicas, find the group's PVCs (by label, or the ones its workloads use), and tell whether any volume is still in
use: a pod that references a PVC, or a VolumeAttachment of its PV. The orchestrator demotes only when nothing uses
the volumes (newer ceph-csi refuses to demote a published volume).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
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

RESOURCES: dict[str, Resource] = {"StatefulSet": STATEFULSETS, "Deployment": DEPLOYMENTS}
"""The resource of each workload kind."""


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
        stalled: ``pod -> why it may not go away by itself``, for the pods whose state an operator should know
            when a wait for released volumes does not end: not being deleted (no controller has condemned it, or
            something else runs it), or deleted but not finished and not ready (its node may be down).
    """

    pods: dict[str, tuple[str, ...]]
    attachments: tuple[str, ...]
    stalled: dict[str, str] = {}

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
            names = ", ".join(
                f"{pod} [{self.stalled[pod]}]" if pod in self.stalled else pod for pod in sorted(self.pods)
            )
            parts.append(f"{len(self.pods)} pod(s) still use the volumes ({names})")
        if self.attachments:
            parts.append(f"{len(self.attachments)} VolumeAttachment(s) remain ({', '.join(self.attachments)})")
        return "; ".join(parts)


def read_workload(api: ClusterApi, namespace: str, ref: WorkloadRef) -> WorkloadState:
    """Read a workload's replica counts."""
    document = api.get(RESOURCES[ref.kind], ref.name, namespace)
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


def scale_workload(
    api: ClusterApi, namespace: str, ref: WorkloadRef, replicas: int, current: JsonObject | None = None
) -> bool:
    """Set a workload's replicas through its ``scale`` subresource; no write when it already has them.

    Args:
        api: the cluster's API.
        namespace: the workload's namespace.
        ref: the workload.
        replicas: the desired count.
        current: the workload as the caller just read it (read here when not given).

    Returns:
        Whether a write happened.
    """
    resource = RESOURCES[ref.kind]
    if current is None:
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


def workload_pvcs(api: ClusterApi, namespace: str, workloads: Sequence[WorkloadRef]) -> list[str]:
    """The PVCs the workloads use, whether or not they run now: what a failover must carry across.

    Per workload:

    - StatefulSet: ``<template>-<statefulset>-<ordinal>`` for each of ``spec.volumeClaimTemplates`` and each
      ordinal from ``spec.ordinals.start`` (default 0) on, for ``max(spec.replicas, status.replicas, 1)``
      ordinals, so that a StatefulSet scaled to zero (as during a failover) still names ordinal 0's claims and
      one scaling down still names the claims of pods not yet gone;
    - StatefulSet and Deployment: the ``persistentVolumeClaim.claimName`` volumes of the pod template;
    - the claims of every existing pod matching the workload's ``spec.selector`` (e.g. a pod created from an
      older template, or one patched by hand).

    Generic ephemeral volumes are left out: their PVCs belong to one pod and go with it. Every request is scoped
    to ``namespace``: one GET per workload and one pod list per workload with a selector.

    Args:
        api: the cluster's API.
        namespace: the workloads' namespace.
        workloads: the workloads (StatefulSets and Deployments).

    Returns:
        The PVC names, sorted and without duplicates.

    Raises:
        ObjectMissingError: a workload does not exist on this cluster.
    """
    claims: set[str] = set()
    for ref in workloads:
        document = api.get(RESOURCES[ref.kind], ref.name, namespace)
        spec = document.get("spec") or {}
        if ref.kind == "StatefulSet":
            claims |= _claim_template_pvcs(ref.name, document)
        claims |= _pod_claims(spec.get("template") or {})
        selector = _label_selector(spec.get("selector") or {})
        if selector:
            # An empty selector would match every pod of the namespace, not the workload's.
            for pod in api.list(PODS, namespace, label_selector=selector):
                claims |= _pod_claims(pod)
    return sorted(claims)


def _claim_template_pvcs(name: str, statefulset: JsonObject) -> set[str]:
    """The PVC names a StatefulSet's ``volumeClaimTemplates`` give its ordinals (see :func:`workload_pvcs`)."""
    spec, status = statefulset.get("spec") or {}, statefulset.get("status") or {}
    templates = [
        str(template["metadata"]["name"])
        for template in spec.get("volumeClaimTemplates") or []
        if (template.get("metadata") or {}).get("name")
    ]
    replicas = spec.get("replicas")
    count = max(1 if replicas is None else int(replicas), int(status.get("replicas") or 0), 1)
    start = int((spec.get("ordinals") or {}).get("start") or 0)
    return {f"{template}-{name}-{ordinal}" for template in templates for ordinal in range(start, start + count)}


def _label_selector(selector: JsonObject) -> str:
    """A ``metav1.LabelSelector`` as a label selector string (``matchLabels`` and ``matchExpressions``)."""
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(sorted(str(v) for v in expression.get("values") or []))
        if operator == "In":
            terms.append(f"{key} in ({values})")
        elif operator == "NotIn":
            terms.append(f"{key} notin ({values})")
        elif operator == "Exists":
            terms.append(str(key))
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def volumes_in_use(
    api: ClusterApi, namespace: str, pvc_names: Sequence[str], volume_names: Collection[str] | None = None
) -> VolumesInUse:
    """Pods that reference any of ``pvc_names`` and VolumeAttachments of their bound PVs.

    Args:
        api: the cluster's API.
        namespace: the PVCs' namespace.
        pvc_names: the PVCs.
        volume_names: their bound PVs (:func:`bound_volumes`), when the caller knows them already.
    """
    wanted = set(pvc_names)
    pods: dict[str, tuple[str, ...]] = {}
    stalled: dict[str, str] = {}
    for pod in api.list(PODS, namespace):
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        claims = _pod_claims(pod) & wanted
        if claims:
            pods[pod["metadata"]["name"]] = tuple(sorted(claims))
            why = _stalled_because(pod)
            if why:
                stalled[pod["metadata"]["name"]] = why
    if volume_names is None:
        volume_names = bound_volumes(api, namespace, pvc_names)
    attachments = tuple(
        sorted(
            attachment["metadata"]["name"]
            for attachment in api.list(VOLUME_ATTACHMENTS)
            if attachment.get("spec", {}).get("source", {}).get("persistentVolumeName") in volume_names
        )
    )
    return VolumesInUse(pods=pods, attachments=attachments, stalled=stalled)


def pod_ready(pod: JsonObject) -> bool:
    """Whether the pod's ``Ready`` condition is True (what a kubelet reports once its containers pass readiness)."""
    return any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in pod.get("status", {}).get("conditions", []) or []
    )


def _stalled_because(pod: JsonObject) -> str:
    """Why a pod that uses the volumes may stay: not being deleted, or deleted on a node that does not finish it."""
    ready = pod_ready(pod)
    if not pod.get("metadata", {}).get("deletionTimestamp"):
        return "not being deleted" + ("" if ready else ", not ready")
    if not ready:
        return "deleted, not finished, not ready (is its node down?)"
    return ""


def bound_volumes(api: ClusterApi, namespace: str, pvc_names: Sequence[str]) -> set[str]:
    """The PVs the PVCs ``pvc_names`` are bound to (one list of the namespace's PVCs)."""
    wanted = set(pvc_names)
    return {
        claim["spec"]["volumeName"]
        for claim in api.list(PVCS, namespace)
        if claim["metadata"]["name"] in wanted and claim.get("spec", {}).get("volumeName")
    }


def running_pods(api: ClusterApi, namespace: str, ref: WorkloadRef) -> list[str]:
    """Names of the workload's pods that are Running (by the workload's selector)."""
    document = api.get(RESOURCES[ref.kind], ref.name, namespace)
    labels = document.get("spec", {}).get("selector", {}).get("matchLabels", {})
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return sorted(
        pod["metadata"]["name"]
        for pod in api.list(PODS, namespace, label_selector=selector or None)
        if pod.get("status", {}).get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
    )
