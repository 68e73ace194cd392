"""The one interface every storage backend implements for a protection group's replication on one cluster.

An adapter is bound to one cluster (a :class:`~clusters.api.ClusterApi`) and one group's replication objects
there (a :class:`ReplicationTarget`). It never decides *whether* an operation is safe (the workflow does, from
both sides' :class:`ReplicationStatus`); it sets the desired state idempotently ("set desired, then observe": a
repeated call writes nothing) and reports what the backend says in one normalised shape.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # the models here cross the Temporal boundary: keep this module free of I/O imports
    from typing import Self

    from clusters.api import ClusterApi, JsonObject, Resource
    from clusters.watch import WatchScope


class Backend(StrEnum):
    """How a group is replicated (see reference/backends.md)."""

    CSI_ADDONS = "csi-addons"
    UNIFIED = "unified"
    TRIDENT = "trident"
    POWERSTORE = "powerstore"

    @property
    def old_source_primary_until_reprotect(self) -> bool:
        """Trident: a planned promotion leaves the old source ``promoted`` until it is reestablished.

        The workflow reestablishes such a source right after the target's promotion, before any workload starts,
        so that the window with two promoted sides holds no running application.
        """
        return self is Backend.TRIDENT

    @property
    def demote_may_promote_peer(self) -> bool:
        """PowerStore: the demote (``FAILOVER_REMOTE``) is one array action that also makes the peer the source.

        The replicator retries that action until it succeeds, so once it is requested the Primary may end up on
        either side, whatever the workflow does next (an abort or a failed wait cannot take the request back).
        """
        return self is Backend.POWERSTORE

    @property
    def volumes_are_pvcs(self) -> bool:
        """Whether :attr:`ReplicationStatus.volumes` has one entry per PVC, named after the PVC.

        PowerStore's array reports the protection group as a whole: its one entry stands for the
        DellCSIReplicationGroup (named after it), so "a PVC missing from ``volumes``" means nothing there.
        """
        return self is not Backend.POWERSTORE


class Role(StrEnum):
    """The replication role of one side."""

    PRIMARY = "Primary"
    SECONDARY = "Secondary"
    UNKNOWN = "Unknown"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReplicationTarget(_Frozen):
    """Which objects on one cluster make up a group's replication.

    Attributes:
        backend: the backend.
        namespace: the group's namespace (also where the PVCs live).
        name: the VolumeGroupReplication / VolumeReplication name (csi-addons, unified) or the cluster-scoped
            DellCSIReplicationGroup name (powerstore). Unused for trident.
        single_volume: csi-addons only: the group is one PVC replicated by a VolumeReplication named ``name``.
        pvc_names: the group's PVCs (trident: one TridentMirrorRelationship per PVC, named by ``tmr_names`` or
            after the PVC); informational for the other backends.
        tmr_names: trident only: TMR name per PVC name, when they differ from the PVC names.
        snapshot_class: trident only: the VolumeSnapshotClass for the planned failover's snapshots.
    """

    backend: Backend
    namespace: str
    name: str | None = None
    single_volume: bool = False
    pvc_names: tuple[str, ...] = ()
    tmr_names: dict[str, str] = Field(default_factory=dict)
    snapshot_class: str | None = None


class VolumeState(_Frozen):
    """One replicated volume (or the one object standing for the group) as the backend reports it."""

    name: str
    role: Role
    state: str
    message: str = ""
    healthy: bool = True


class ReplicationStatus(_Frozen):
    """A normalised observation of one side of a group.

    Attributes:
        cluster: where it was observed.
        backend: the backend.
        role: Primary, Secondary or Unknown (Unknown also while objects disagree or status is stale).
        current: every object's status was observed for its latest generation (a stale status means "not yet").
        completed: the last requested role change completed (csi-addons Completed=True, Trident a final state,
            Dell ``Ready`` with no action pending).
        healthy: not degraded.
        replicating: data flows between the sides (Replicating=True, TMR established, Dell link SYNCHRONIZED).
        syncing: a (final or re-) sync is in progress.
        replication_stopped: this side reports that the sides do not replicate and will not until someone acts (a
            Dell link ``FAILEDOVER``: the failover ran but nothing reprotected the old source). The group is then
            not protected, even with one healthy Primary and one healthy Secondary. False when the backend does not
            tell (``replicating`` alone cannot: csi-addons reports it on the Primary only, Trident on the
            Secondary only).
        failure: the backend's report of a failed attempt, verbatim enough to act on; ``None`` when none.
        failure_permanent: the backend has given up (Dell ``Error``, Trident ``failed``/``invalid``); otherwise a
            failure means the backend keeps retrying (csi-addons retries even after Validated=False/PrerequisiteNotMet).
        last_sync_time: the last completed sync the backend reports (primary side only for csi-addons/unified).
        last_sync_source: what :attr:`last_sync_time` is and how old it can be, in words for the lag shown with it
            ("the replicator's poll of the array ...", "lastSyncTime on the VolumeReplication, refreshed ...");
            empty when there is no time.
        message: a human-readable one-liner.
        volumes: per-volume (or per-object) detail: one entry per PVC (csi-addons, unified, trident), or one entry
            standing for the whole group, named after its object (powerstore; see
            :attr:`Backend.volumes_are_pvcs`). ``healthy`` is false for a volume the backend reports degraded or
            failed.
        missing_volumes: PVCs the group expects (``ReplicationTarget.pvc_names``) that the backend's objects here
            do not list or do not replicate, in the configured order; empty when every one is covered, when no
            PVC names were given, or when the backend has not reported its volumes yet (then ``current`` is
            false). A failover would leave these PVCs behind. See each adapter for how it tells.
        generations: the generation of every observed object, by object reference.
    """

    cluster: str
    backend: Backend
    role: Role
    current: bool
    completed: bool
    healthy: bool
    replicating: bool
    syncing: bool
    replication_stopped: bool = False
    failure: str | None = None
    failure_permanent: bool = False
    last_sync_time: datetime | None = None
    last_sync_source: str = ""
    message: str = ""
    volumes: tuple[VolumeState, ...] = ()
    missing_volumes: tuple[str, ...] = ()
    generations: dict[str, int] = Field(default_factory=dict)

    def volume_problems(self, expected: Sequence[str] = ()) -> list[str]:
        """What stands between the group's volumes and a failover that carries every one of them.

        First, in the order of ``expected`` followed by :attr:`missing_volumes` (each PVC once): every PVC that is
        not replicated here, i.e. listed in :attr:`missing_volumes`, or, for backends whose :attr:`volumes` name
        PVCs, absent from :attr:`volumes` (e.g. ``PVC wal-postgres-0 is not replicated by VolumeGroupReplication
        pg-prod/postgres``). Then every unhealthy volume not reported yet, as ``PVC <name>: <state> (<message>)``.

        For a backend whose one volume entry stands for the group (PowerStore, see
        :attr:`Backend.volumes_are_pvcs`) the entries cannot be matched with PVC names: an ``expected`` PVC is
        reported only when the adapter listed it in :attr:`missing_volumes`, and the health problems name the
        group's object (``DellCSIReplicationGroup rg-pg-prod (every PVC of the group): Error (...)``).

        This judges the volumes only: whether the observation is ``current`` (a status not yet reconciled can
        still list PVCs from before), and the group's role and health, are for the caller to check.

        Args:
            expected: the PVCs the caller needs replicated, e.g. the group's configured PVCs or the PVCs its
                workloads use (:func:`clusters.workloads.workload_pvcs`).

        Returns:
            Human-readable problems, one per PVC or unhealthy volume; empty when there are none.
        """
        by_name = {volume.name: volume for volume in self.volumes}
        per_pvc = self.backend.volumes_are_pvcs
        missing = set(self.missing_volumes)
        problems: list[str] = []
        reported: set[str] = set()
        for name in dict.fromkeys([*expected, *self.missing_volumes]):
            if name in missing or (per_pvc and name not in by_name):
                volume = by_name.get(name) if per_pvc else None
                detail = f" ({volume.message})" if volume is not None and volume.message else ""
                problems.append(f"PVC {name} is not replicated by {self._replicated_by()}{detail}")
                reported.add(name)
        for volume in self.volumes:
            if volume.healthy or (per_pvc and volume.name in reported):
                continue
            subject = f"PVC {volume.name}" if per_pvc else f"{self._object_ref(volume.name)} (every PVC of the group)"
            detail = f" ({volume.message})" if volume.message else ""
            problems.append(f"{subject}: {volume.state or 'no state reported'}{detail}")
        return problems

    def _replicated_by(self) -> str:
        """The object that should replicate the group's PVCs, when there is one; else a generic phrase."""
        refs = list(self.generations)
        if len(refs) == 1:
            return refs[0]
        kinds = {ref.split(" ", 1)[0] for ref in refs}
        return f"the group's {kinds.pop()}s" if len(kinds) == 1 else f"the group's {self.backend} replication objects"

    def _object_ref(self, name: str) -> str:
        """The reference (``Kind [namespace/]name``) of the observed object called ``name``, else ``name``."""
        for ref in self.generations:
            if ref.rsplit(" ", 1)[-1].rsplit("/", 1)[-1] == name:
                return ref
        return name


class WriteResult(_Frozen):
    """What a desired-state call did.

    Attributes:
        cluster: where it wrote.
        changed: false when every object already had the desired spec (nothing was written).
        generations: the generation of each object after the call (wait for ``observedGeneration`` to reach it).
    """

    cluster: str
    changed: bool
    generations: dict[str, int] = Field(default_factory=dict)


class SyncPoint(_Frozen):
    """A point in the data stream the target must reach before it may be promoted (Trident's snapshot handles).

    Attributes:
        snapshot_handles: ``promotedSnapshotHandle`` per PVC name.
    """

    snapshot_handles: dict[str, str] = Field(default_factory=dict)


class PeerInfo(_Frozen):
    """What the other side needs to follow this one (Trident's ``localVolumeHandle`` per PVC name)."""

    volume_handles: dict[str, str] = Field(default_factory=dict)


class ReplicationAdapter(abc.ABC):
    """A group's replication on one cluster.

    Args:
        api: the cluster's API.
        target: the group's replication objects on that cluster.
    """

    backend: ClassVar[Backend]

    reprotect_acts_on_peer: ClassVar[bool] = False
    """Whether :meth:`reprotect` requests its action on the peer's objects (Dell ``REPROTECT_LOCAL`` on the new
    source's RG): only the peer's objects then report that action's progress and failure, so a resync wait
    follows them until the action has ended (:func:`adapters.waiting.wait_for_resync`)."""

    def __init__(self, api: ClusterApi, target: ReplicationTarget) -> None:
        self.api = api
        self.target = target

    @property
    def cluster(self) -> str:
        """The cluster this adapter acts on."""
        return self.api.cluster

    @abc.abstractmethod
    def observe(self) -> ReplicationStatus:
        """Read the group's replication objects and normalise their status."""

    def watch_scopes(self) -> tuple[WatchScope, ...]:
        """What :meth:`observe` reads, as watchable scopes: a wait follows them instead of polling.

        Empty (the default) means "poll": a backend whose observation cannot be told from watched objects.
        """
        return ()

    def with_api(self, api: ClusterApi) -> Self:
        """The same adapter reading and writing through ``api`` (e.g. a :class:`clusters.watch.WatchedApi`)."""
        return type(self)(api, self.target)

    @abc.abstractmethod
    def demote(self, *, peer: ReplicationAdapter | None = None) -> WriteResult:
        """Ask this side (the current Primary) to become Secondary after shipping its last writes.

        Planned operations only: never a forced resync. ``peer`` is the other side, for backends whose planned
        handover is one action covering both sides (Dell ``FAILOVER_REMOTE``).
        """

    @abc.abstractmethod
    def promote(
        self, *, force: bool, sync_point: SyncPoint | None = None, peer: ReplicationAdapter | None = None
    ) -> WriteResult:
        """Ask this side to become Primary.

        Args:
            force: unplanned failover: the peer is lost (Dell ``UNPLANNED_FAILOVER_LOCAL``, Trident promote without
                snapshot). The caller has decided that split-brain is impossible or fenced.
            sync_point: what the source prepared with :meth:`prepare_sync_point` (Trident snapshot handles).
            peer: the other side, for backends whose planned promotion is an action there.
        """

    @abc.abstractmethod
    def reprotect(self, *, resync: bool, peer: ReplicationAdapter) -> WriteResult:
        """Make this side follow ``peer`` (the Primary) as Secondary.

        Args:
            resync: discard this side's divergent writes and copy from the peer (only after an unplanned
                failover, when the old primary returns: never after a planned one).
            peer: the Primary this side will follow (Trident reads its volume handles; Dell acts on its RG).
        """

    def ensure_fields(
        self, resource: Resource, name: str, desired: JsonObject, namespace: str | None = None
    ) -> tuple[bool, JsonObject]:
        """Merge-patch ``desired`` into an object unless it already holds those values (then nothing is written).

        Returns:
            Whether a write happened, and the object as it is now.
        """
        current = self.api.get(resource, name, namespace)
        if contains(current, desired):
            return False, current
        return True, self.api.patch(resource, name, desired, namespace)

    def prepare_sync_point(self, *, operation_id: str | None = None, watch: bool = False) -> SyncPoint | None:
        """On the source, before the target's promotion: create what the target must reach (Trident snapshots).

        Args:
            operation_id: names what is created, so that a retry of the same operation reuses it (and another
                operation never reuses an older, incomplete sync point).
            watch: follow what is created with watches while waiting for it (instead of polling).
        """
        return None

    def transfer_sync_point(
        self,
        sync_point: SyncPoint,
        *,
        timeout: float,
        progress: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] | None = None,
        watch: bool = False,
    ) -> WriteResult:
        """On the target of a planned failover, after the final sync: bring ``sync_point`` here and wait for it.

        Nothing to do by default: the other backends' final sync is observed on the demoted source.

        Args:
            sync_point: what :meth:`prepare_sync_point` returned on the source.
            timeout: seconds to wait for it to arrive.
            progress: told what is still awaited, on every observation.
            sleep: sleep function while polling (``time.sleep`` when omitted).
            watch: follow the objects with watches while waiting (instead of polling).
        """
        return WriteResult(cluster=self.cluster, changed=False)

    def peer_info(self) -> PeerInfo:
        """What the peer needs to follow this side (Trident volume handles)."""
        return PeerInfo()

    # Predicates over an observation. Each is false while the status is stale (``current`` false).

    @staticmethod
    def promoted(status: ReplicationStatus) -> bool:
        """Whether this side is Primary and its promotion completed."""
        return status.current and status.role is Role.PRIMARY and status.completed

    @staticmethod
    def final_sync_complete(status: ReplicationStatus) -> bool:
        """Whether this side is Secondary, demoted, and the peer holds every write (no sync running)."""
        return (
            status.current
            and status.role is Role.SECONDARY
            and status.completed
            and status.healthy
            and not status.syncing
            and status.failure is None
        )

    @staticmethod
    def resync_complete(status: ReplicationStatus) -> bool:
        """Whether this side follows the peer again and has caught up."""
        return ReplicationAdapter.final_sync_complete(status)

    @staticmethod
    def peer_reprotect_complete(status: ReplicationStatus) -> bool:
        """On the Primary a :attr:`reprotect_acts_on_peer` reprotect acted on: whether that action ended well."""
        return (
            status.current
            and status.role is Role.PRIMARY
            and status.completed
            and status.healthy
            and status.failure is None
        )


def contains(document: object, subset: object) -> bool:
    """Whether ``document`` holds every value of ``subset`` (a merge-patch body; ``None`` means absent)."""
    if isinstance(subset, dict):
        if not isinstance(document, dict):
            return False
        return all(
            (key not in document or document[key] is None) if value is None else contains(document.get(key), value)
            for key, value in subset.items()
        )
    return document == subset
