"""Pick the adapter class for a group's backend."""

from __future__ import annotations

from adapters.base import Backend, ReplicationAdapter, ReplicationTarget
from adapters.csi_addons import CsiAddonsAdapter
from adapters.powerstore import PowerStoreAdapter
from adapters.trident import TridentAdapter
from adapters.unified import UnifiedAdapter
from clusters.api import ClusterApi

ADAPTERS: dict[Backend, type[ReplicationAdapter]] = {
    Backend.CSI_ADDONS: CsiAddonsAdapter,
    Backend.UNIFIED: UnifiedAdapter,
    Backend.TRIDENT: TridentAdapter,
    Backend.POWERSTORE: PowerStoreAdapter,
}


def adapter_for(api: ClusterApi, target: ReplicationTarget) -> ReplicationAdapter:
    """The adapter of ``target.backend`` bound to ``api``'s cluster."""
    return ADAPTERS[target.backend](api, target)
