"""The unified adapter: the unified replication operator's ``replication.unified.io/v1alpha2`` API.

The operator passes csi-addons status through, so the semantics are csi-addons' (see :mod:`adapters.csi_addons`);
only the API group, version and the single-volume PVC field differ. Its ``status.state`` may be the lowercase copy
of ``spec.replicationState`` (``primary``), which :func:`adapters.csi_addons.reported_role` normalises.
"""

from __future__ import annotations

from adapters.base import Backend
from adapters.csi_addons import CsiAddonsFamilyAdapter, ReplicationFields
from clusters.api import Resource

UNIFIED_GROUP = "replication.unified.io"

UNIFIED_FIELDS = ReplicationFields(
    group=Resource(UNIFIED_GROUP, "v1alpha2", "volumegroupreplications", "VolumeGroupReplication"),
    volume=Resource(UNIFIED_GROUP, "v1alpha2", "volumereplications", "VolumeReplication"),
    volume_pvc=("spec", "pvcName"),
    controller="the unified replication operator",
)
"""``replication.unified.io/v1alpha2``: spec ``replicationState``, ``autoResync`` (``*bool``: absent until set)."""


class UnifiedAdapter(CsiAddonsFamilyAdapter):
    """A group replicated through the unified operator's VolumeGroupReplication (or VolumeReplication)."""

    backend = Backend.UNIFIED
    fields = UNIFIED_FIELDS
