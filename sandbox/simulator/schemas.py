"""The control API's documents: fault specs, the ledger, health and sites, as frozen pydantic models.

The HTTP server serialises these and :class:`sandbox.simulator.client.SimulatorClient` parses them, so both ends
share one definition of every JSON shape.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FaultKind(StrEnum):
    """What an injected fault does (see :class:`FaultSpec`)."""

    FAIL_DEMOTE = "fail-demote"
    """Demotes fail (csi-addons/unified FailedToDemote, Trident ``established`` failed, Dell FAILOVER_REMOTE)."""
    FAIL_PROMOTE = "fail-promote"
    """Promotions fail (FailedToPromote, Trident ``promoted`` failed, Dell UNPLANNED_FAILOVER_LOCAL and the peer
    half of FAILOVER_REMOTE)."""
    FAIL_RESYNC = "fail-resync"
    """Resyncs fail (FailedToResync, Trident ``reestablished`` failed, Dell REPROTECT_LOCAL)."""
    STALL_FINAL_SYNC = "stall-final-sync"
    """The final sync after a planned demote never finishes until the fault is removed."""
    REFUSE_DEMOTE_IN_USE = "refuse-demote-in-use"
    """A csi-addons/unified demote fails while a pod uses a PVC or a VolumeAttachment exists for its PV."""
    FORCE_PROMOTE_ON_PRECONDITION = "force-promote-on-precondition"
    """csi-addons/unified promote while the peer is primary force-promotes (two primaries) instead of failing."""
    REFUSE_ENABLE = "refuse-enable"
    """The real csi-addons controllers only: EnableVolumeReplication fails with FailedPrecondition (as ceph-csi
    answers when the parent image is not mirrored); counted, so a later attempt succeeds."""
    STOP_LAG_UPDATES = "stop-lag-updates"
    """``lastSyncTime``/``lastSyncDuration``/``lastSyncBytes`` (csi-addons, unified) and ``lastSuccessfulUpdate``
    (Dell) stop being refreshed; shipments continue (the ledger keeps moving)."""


COUNTED_FAULTS = frozenset(
    {FaultKind.FAIL_DEMOTE, FaultKind.FAIL_PROMOTE, FaultKind.FAIL_RESYNC, FaultKind.REFUSE_ENABLE}
)
"""Kinds that fail attempts one by one (``times``); the others hold while they are set."""


class FaultSpec(_Frozen):
    """A fault to inject.

    Attributes:
        group: the group it applies to: the namespace of the group's objects (for Dell also the RG name).
        kind: what it does.
        cluster: only on this cluster; both when ``None``.
        times: counted kinds only: fail this many attempts, then succeed; forever when ``None``.
        permanent: Dell only: the failure is final (RG state ``Error``) instead of retried.
    """

    group: str = Field(min_length=1)
    kind: FaultKind
    cluster: str | None = None
    times: int | None = Field(default=None, ge=1)
    permanent: bool = False


class FaultState(FaultSpec):
    """An injected fault and how often it fired.

    Attributes:
        fired: attempts it failed (counted kinds) or times it was applied.
        remaining: failures left (counted kinds with ``times``); ``None`` for forever.
    """

    fired: int = 0
    remaining: int | None = None

    @property
    def exhausted(self) -> bool:
        """A counted fault that has failed all its ``times`` (it no longer applies)."""
        return self.remaining is not None and self.remaining <= 0


class FaultsRemoved(_Frozen):
    """The answer of ``DELETE /faults``."""

    removed: int


class SideLedger(_Frozen):
    """One site's copy of a volume."""

    held: int
    writable: bool
    site_up: bool


class PromotionRecord(_Frozen):
    """One promotion: what the promoted side held, what its peer held and how many writes it lost."""

    time: datetime
    cluster: str
    held: int
    peer_held: int
    lost: int
    forced: bool
    peer_writable: bool
    peer_up: bool


class DualWritableEvent(_Frozen):
    """A moment both sides became writable (an unplanned or forced promotion)."""

    time: datetime
    message: str


class VolumeLedger(_Frozen):
    """The ledger of one replicated volume.

    Attributes:
        namespace: the PVC's namespace.
        pvc: the PVC's name (the same on both sites).
        writable: the sites taking writes (normally one; two after a forced or unplanned promotion).
        sides: writes held, writable flag and site state per cluster.
        acknowledged: every write ever acknowledged to the application, on either side.
        applied_on_replica: writes the read-only side holds, when exactly one side is writable.
        unshipped: writes the primary holds that its replica lacks, when exactly one side is writable.
        last_shipment: when writes last reached the replica (regular shipment, final sync, resync or on demand).
        last_shipped_count: the primary's write count at that shipment.
        lost_at_promotion: writes the peer held and the promoted side lacked, summed over promotions.
        discarded_at_resync: writes resyncs removed from the resynced side (may repeat writes counted as lost).
        split_brain_writes: writes acknowledged by a stale primary while its peer was writable too.
        link: ``active``, ``suspended`` or ``failed-over``.
        final_sync_pending: the cluster whose final sync is still running, if any.
        resync_pending: the cluster waiting for a resync, if any.
        dual_writable: when both sides became writable, and why.
        promotions: every promotion, oldest first.
    """

    namespace: str
    pvc: str
    writable: list[str]
    sides: dict[str, SideLedger]
    acknowledged: int
    applied_on_replica: int | None
    unshipped: int | None
    last_shipment: datetime | None
    last_shipped_count: int
    lost_at_promotion: int
    discarded_at_resync: int
    split_brain_writes: int
    link: str
    final_sync_pending: str | None
    resync_pending: str | None
    dual_writable: list[DualWritableEvent]
    promotions: list[PromotionRecord]


class Ledger(_Frozen):
    """Every replicated volume the simulator knows, and the state of each site."""

    time: datetime
    sites: dict[str, bool]
    volumes: list[VolumeLedger]

    def volume(self, namespace: str, pvc: str) -> VolumeLedger:
        """The ledger of one volume.

        Raises:
            KeyError: the simulator does not know that volume.
        """
        for volume in self.volumes:
            if volume.namespace == namespace and volume.pvc == pvc:
                return volume
        raise KeyError(f"no volume {namespace}/{pvc} in the ledger")


class WriteRequest(_Frozen):
    """Acknowledged writes to apply as an application on ``cluster`` would (``POST /writes``).

    They happen only where the writer's would: on the writable side of a site that is up.
    """

    namespace: str
    pvc: str
    cluster: str
    count: int = Field(default=1, ge=1, le=1_000_000)


class WriteResult(_Frozen):
    """How many of the requested writes were acknowledged, and the volume's ledger after them."""

    acknowledged: int
    volume: VolumeLedger


class ClusterHealth(_Frozen):
    """What the simulator knows about one cluster's API server and site."""

    reachable: bool
    site_up: bool
    last_poll: datetime | None = None
    error: str | None = None


class Health(_Frozen):
    """The answer of ``GET /healthz``."""

    status: str
    ticks: int
    clusters: dict[str, ClusterHealth]


class SiteState(_Frozen):
    """The answer of ``POST /sites/<cluster>/down|up``."""

    cluster: str
    up: bool
