"""What the Trident and PowerStore adapters share: typed reads of JSON documents, guarded writes, peer checks.

Both adapters read deeply nested, optional fields of custom resources written by someone else's controller, make
read-decide-write changes that must not overwrite a concurrent change, receive the other side's adapter as
``peer`` and judge "this side follows its peer again" the same way. That logic lives here once. No I/O of its
own: every call goes through the :class:`~clusters.api.ClusterApi` it is given.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from adapters.base import Backend, ReplicationAdapter, ReplicationStatus, Role
from clusters.api import ClusterApi, JsonObject, Resource
from clusters.errors import PreconditionFailedError

MANAGED_BY = "failover-orchestrator"
"""Value of ``app.kubernetes.io/managed-by`` on objects the adapters create."""

ANNOTATION_PREFIX = "failover-orchestrator.io/"
"""Prefix of the labels and annotations the adapters write on backend objects."""


def field(document: object, *path: str) -> object:
    """The value at ``path`` inside nested objects, or ``None`` when any step is missing or not an object."""
    value = document
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def text(document: object, *path: str) -> str:
    """A string field; ``""`` when absent or not a string (controllers leave optional strings unset)."""
    value = field(document, *path)
    return value if isinstance(value, str) else ""


def mapping(document: object, *path: str) -> JsonObject:
    """An object field; ``{}`` when absent or not an object."""
    value = field(document, *path)
    return value if isinstance(value, dict) else {}


def objects(document: object, *path: str) -> list[JsonObject]:
    """The objects of a list field, skipping non-object items; ``[]`` when absent."""
    value = field(document, *path)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def flag(document: object, *path: str) -> bool | None:
    """A boolean field, or ``None`` when absent (``False`` and "not reported" must not be confused)."""
    value = field(document, *path)
    return value if isinstance(value, bool) else None


def integer(document: object, *path: str) -> int | None:
    """An integer field, or ``None`` when absent (JSON booleans are not integers here)."""
    value = field(document, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def timestamp(value: object) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime; ``None`` when absent or unparsable.

    A controller's malformed timestamp must not break an observation: it only means "no time reported".
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def generation(document: JsonObject) -> int:
    """``metadata.generation`` (0 when the API server has not set it, which real servers always do)."""
    return integer(document, "metadata", "generation") or 0


def guarded_patch(
    api: ClusterApi, resource: Resource, current: JsonObject, body: JsonObject, namespace: str | None = None
) -> JsonObject:
    """Merge-patch ``body`` into the object read as ``current``, unless it changed since that read.

    The adapters decide what to write from what they read (Dell: "no action runs"; Trident: the full
    ``volumeMappings`` list, which a merge patch replaces wholesale). Sending the read ``resourceVersion`` makes the
    API server refuse the patch with 409 (:class:`~clusters.errors.ConflictError`, retryable) if anyone wrote in
    between, instead of silently overwriting their change.

    Returns:
        The object as it is after the patch.
    """
    guarded = copy.deepcopy(body)
    resource_version = text(current, "metadata", "resourceVersion")
    if resource_version:
        guarded.setdefault("metadata", {})["resourceVersion"] = resource_version
    return api.patch(resource, text(current, "metadata", "name"), guarded, namespace)


def require_peer(
    peer: ReplicationAdapter | None, backend: Backend, *, cluster: str, purpose: str
) -> ReplicationAdapter:
    """The peer adapter, checked to exist and to drive the same backend.

    Args:
        peer: what the caller passed.
        backend: the backend the peer must drive.
        cluster: this side's cluster (for the error).
        purpose: what needs the peer, for the error message.

    Raises:
        PreconditionFailedError: no peer, or a peer of another backend (a configuration or wiring error).
    """
    if peer is None:
        raise PreconditionFailedError(f"{purpose} needs the peer side's adapter ({backend})", cluster=cluster)
    if peer.backend is not backend:
        raise PreconditionFailedError(
            f"{purpose} needs a {backend} peer, got a {peer.backend} adapter for cluster {peer.cluster}",
            cluster=cluster,
        )
    return peer


def follows_peer(status: ReplicationStatus) -> bool:
    """Whether this side is a current, settled Secondary that receives replication from its peer again.

    The reprotect predicate of backends where a freshly demoted side already looks "Secondary and settled" before
    any re-protection happened (Dell after ``FAILOVER_REMOTE``, Trident never demotes at all): only data flowing
    again (``replicating``) proves the re-protection.
    """
    return (
        status.current
        and status.role is Role.SECONDARY
        and status.completed
        and status.healthy
        and status.replicating
        and status.failure is None
    )
