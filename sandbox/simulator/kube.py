"""Kubernetes conventions the simulated controllers share: resources, timestamps, durations, conditions, selectors.

Everything here is pure: the same inputs always give the same status fragments, which is what lets the
controllers compare the status they would write with the one the object has and skip writes that change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clusters.api import PODS, PVCS, VOLUME_ATTACHMENTS, JsonObject, Resource

CSI_VGR = Resource("replication.storage.openshift.io", "v1alpha1", "volumegroupreplications", "VolumeGroupReplication")
CSI_VR = Resource("replication.storage.openshift.io", "v1alpha1", "volumereplications", "VolumeReplication")
UNIFIED_VGR = Resource("replication.unified.io", "v1alpha2", "volumegroupreplications", "VolumeGroupReplication")
TMR = Resource("trident.netapp.io", "v1", "tridentmirrorrelationships", "TridentMirrorRelationship")
TSI = Resource("trident.netapp.io", "v1", "tridentsnapshotinfos", "TridentSnapshotInfo")
TAMU = Resource("trident.netapp.io", "v1", "tridentactionmirrorupdates", "TridentActionMirrorUpdate")
VOLUME_SNAPSHOTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot")
DELL_RG = Resource(
    "replication.storage.dell.com", "v1", "dellcsireplicationgroups", "DellCSIReplicationGroup", namespaced=False
)

WITHOUT_STATUS_SUBRESOURCE = frozenset({TAMU})
"""Kinds whose status is written with an ordinary update (as upstream Trident does for TAMU)."""

CSI_ADDONS_DRIVER = "rbd.csi.ceph.com"
"""The CSI driver the simulator plays behind the real csi-addons sidecar (ceph-csi's RBD driver): the PVs'
``spec.csi.driver`` and the replication classes' provisioner."""
_HANDLE_PREFIX = "sim:"


def volume_handle(namespace: str, pvc: str) -> str:
    """The CSI volume handle of a simulated volume (the same image name on both sites, as RBD mirroring has)."""
    return f"{_HANDLE_PREFIX}{namespace}/{pvc}"


def parse_volume_handle(handle: str) -> tuple[str, str] | None:
    """The (namespace, PVC) a handle names, or ``None`` for a handle the simulator did not make."""
    namespace, _, pvc = handle.removeprefix(_HANDLE_PREFIX).partition("/")
    if not handle.startswith(_HANDLE_PREFIX) or not namespace or not pvc:
        return None
    return namespace, pvc


POWERSTORE_DRIVER = "csi-powerstore.dellemc.com"
"""The CSI driver the simulator plays behind the real Dell csm-replication replicator (csi-powerstore)."""
POWERSTORE_CONTEXT = "powerstore/"
"""The prefix of csi-powerstore's protection-group attributes (its ``X_CSI_REPLICATION_CONTEXT_PREFIX``)."""


def protection_group_id(cluster: str, namespace: str) -> str:
    """The simulated PowerStore volume group holding a demo group's volumes on ``cluster``'s array."""
    return f"pg-{cluster}-{namespace}"


def parse_protection_group_id(cluster: str, group_id: str) -> str | None:
    """The namespace whose volumes the volume group ``group_id`` of ``cluster``'s array holds, if it is one."""
    namespace = group_id.removeprefix(f"pg-{cluster}-")
    return namespace if namespace != group_id and namespace else None


def protection_group_attributes(cluster: str, peer: str, namespace: str) -> dict[str, str]:
    """csi-powerstore's attributes of the volume group on ``cluster`` replicated to ``peer`` (label-safe values)."""
    return {
        f"{POWERSTORE_CONTEXT}systemName": f"powerstore-{cluster}",
        f"{POWERSTORE_CONTEXT}managementAddress": f"powerstore-{cluster}.lab",
        f"{POWERSTORE_CONTEXT}remoteSystemName": f"powerstore-{peer}",
        f"{POWERSTORE_CONTEXT}remoteManagementAddress": f"powerstore-{peer}.lab",
        f"{POWERSTORE_CONTEXT}globalID": f"PS{cluster}",
        f"{POWERSTORE_CONTEXT}VolumeGroupName": namespace,
    }


__all__ = [
    "CSI_VGR",
    "CSI_VR",
    "DELL_RG",
    "PODS",
    "POWERSTORE_CONTEXT",
    "POWERSTORE_DRIVER",
    "PVCS",
    "TAMU",
    "TMR",
    "TSI",
    "UNIFIED_VGR",
    "VOLUME_ATTACHMENTS",
    "VOLUME_SNAPSHOTS",
    "WITHOUT_STATUS_SUBRESOURCE",
    "go_duration",
    "label_selector_matches",
    "nested",
    "parse_time",
    "rfc3339",
    "set_condition",
]


def rfc3339(timestamp: float) -> str:
    """A ``metav1.Time`` string (UTC, whole seconds), e.g. ``2026-01-02T03:04:05Z``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> float | None:
    """The POSIX time of an RFC 3339 string, or ``None`` when absent or unparsable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def go_duration(seconds: float) -> str:
    """A ``metav1.Duration`` string as Go's ``time.Duration.String`` writes it, to the millisecond (``1m2.5s``)."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    sign = "-" if millis < 0 else ""
    millis = abs(millis)
    if millis < 1000:
        return f"{sign}{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def nested(document: Mapping[str, Any] | None, *path: str, default: Any = None) -> Any:
    """``document[path[0]][path[1]]...``, or ``default`` when any step is missing or not a mapping."""
    current: Any = document
    for step in path:
        if not isinstance(current, Mapping) or step not in current:
            return default
        current = current[step]
    return default if current is None else current


def label_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy a ``metav1.LabelSelector`` (an empty selector matches everything).

    A ``None`` selector matches nothing, as in Kubernetes.
    """
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.get("matchExpressions") or []:
        key, operator = requirement.get("key", ""), requirement.get("operator", "")
        values = requirement.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def set_condition(
    previous: Mapping[str, JsonObject],
    condition_type: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    now: float,
) -> JsonObject:
    """A ``metav1.Condition``; ``lastTransitionTime`` moves only when the status differs from ``previous``'s.

    Args:
        previous: the object's current conditions by type.
        condition_type: e.g. ``Completed``.
        status: the condition's truth.
        reason: a CamelCase reason.
        message: a human-readable message (may be empty).
        generation: the ``metadata.generation`` this condition was computed for.
        now: the current time.
    """
    text = "True" if status else "False"
    earlier = previous.get(condition_type)
    if earlier is not None and earlier.get("status") == text and earlier.get("lastTransitionTime"):
        transition = str(earlier["lastTransitionTime"])
    else:
        transition = rfc3339(now)
    return {
        "type": condition_type,
        "status": text,
        "observedGeneration": generation,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }
