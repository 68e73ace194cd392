"""NetApp Trident: a group is one TridentMirrorRelationship (TMR) per PVC; this adapter drives and reads them as one.

Facts: ``shared/reference/backends.md`` section 3; field names: ``deploy/crds/trident.netapp.io.yaml``.

How the operations map to TMR writes (every write is skipped when the TMRs already say it):

- **Planned failover.** Trident has no demote. On the source, :meth:`TridentAdapter.prepare_sync_point` snapshots
  every PVC (VolumeSnapshot, then a TridentSnapshotInfo for its backend handle) after the workloads stopped. On
  the target, :meth:`TridentAdapter.transfer_sync_point` then requests a SnapMirror update carrying each snapshot
  (a TridentActionMirrorUpdate with its ``snapshotHandle``) and waits until every update succeeded; only then does
  :meth:`TridentAdapter.promote` set every TMR ``state: promoted`` with ``volumeMappings[0].promotedSnapshotHandle``
  (it refuses while a snapshot has not been transferred). The order matters: upstream Trident fails a promotion
  whose snapshot has not reached the destination yet ("Could not promote mirror") and does not retry it, there is
  no waiting state. :meth:`TridentAdapter.demote` therefore writes nothing, and on the source
  :meth:`TridentAdapter.final_sync_complete` only confirms the source is steady (see there). The failover
  snapshots are deleted when the old source is re-protected, before its TMRs are reestablished
  (:meth:`TridentAdapter.reprotect`): by then the target holds them.
- **Unplanned failover.** ``promote(force=True)``: every target TMR ``state: promoted`` without a snapshot handle.
- **Reprotect / fence on return.** On the old source, :meth:`TridentAdapter.reprotect` sets ``state:
  reestablished`` with ``remoteVolumeHandle`` = the new primary's ``localVolumeHandle`` and clears
  ``promotedSnapshotHandle`` in the same write (the CRD rejects that handle without ``promoted``). A reestablish is
  always a SnapMirror resync that overwrites this side from the peer (after a planned failover there is nothing
  divergent, so it only copies what changed): ``resync`` does not change the write.

Normalisation of the TMRs' ``status.conditions[0]`` into :class:`~adapters.base.ReplicationStatus`:

- role: ``promoted`` -> Primary, ``established``/``reestablished`` -> Secondary, anything else -> Unknown; the group
  is Unknown unless every TMR agrees and every status is current.
- current: every condition's ``observedGeneration`` equals its TMR's ``metadata.generation``.
- completed: current, and every TMR reached the final state of its ``spec.state``.
- failure: ``failed``/``invalid`` (and ``released``) with the controller's message, for the current spec only (a
  failure recorded for an older generation is history: the undo of a failed promotion rewrites the spec, and
  the wait for its outcome must not end on the promotion's failure); always permanent, Trident does not retry a
  TMR in those states until its spec changes.
- syncing: any TMR is ``establishing``/``reestablishing``/``promoting``; replicating: every TMR (re)established.
- last_sync_time: a TMR has no transfer time. It comes from TridentActionMirrorUpdates (``completionTime`` of
  succeeded ones, ``previousTransferTime`` of any) on the receiving side only, as the *oldest* of each TMR's newest
  transfer since the TMR took its current state (``lastTransitionTime``: updates from an earlier role are history),
  the group being only as recent as its laggiest volume, and is ``None`` when any TMR has none: scheduled
  SnapMirror transfers leave no trace in Kubernetes, so ``None`` means "unknown", never "in sync".
- volumes: one per configured PVC, unhealthy in a failure state. missing_volumes: the PVCs whose TMR mirrors
  another PVC (``volumeMappings[0].localPVCName``); a PVC whose TMR does not exist makes the read raise
  :class:`~clusters.errors.ObjectMissingError` instead, so every configured PVC is accounted for.

PVCs are matched across the sites by name: ``target.pvc_names`` must be the same on both clusters.

Upstream quirk worth knowing: Trident rewrites a TMR's status only when its state changes, so a spec edit that
keeps the state (made by someone else) leaves ``observedGeneration`` behind and the TMR reads as not current. The
adapter never makes such an edit: it leaves an already promoted TMR alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from adapters.base import (
    Backend,
    PeerInfo,
    ReplicationAdapter,
    ReplicationStatus,
    Role,
    SyncPoint,
    VolumeState,
    WriteResult,
)
from adapters.documents import (
    ANNOTATION_PREFIX,
    MANAGED_BY,
    field,
    follows_peer,
    generation,
    guarded_patch,
    integer,
    mapping,
    objects,
    require_peer,
    text,
    timestamp,
)
from clusters.api import ClusterApi, JsonObject, Resource
from clusters.errors import (
    BackendFailedError,
    ConflictError,
    InvalidSpecError,
    NotReadyError,
    ObjectMissingError,
    PreconditionFailedError,
)
from clusters.watch import WatchScope, observations, poll_intervals

MIRROR_RELATIONSHIPS = Resource("trident.netapp.io", "v1", "tridentmirrorrelationships", "TridentMirrorRelationship")
SNAPSHOT_INFOS = Resource("trident.netapp.io", "v1", "tridentsnapshotinfos", "TridentSnapshotInfo")
MIRROR_UPDATES = Resource("trident.netapp.io", "v1", "tridentactionmirrorupdates", "TridentActionMirrorUpdate")
VOLUME_SNAPSHOTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot")

MIRROR_UPDATE_SOURCE = (
    "the oldest volume's newest TridentActionMirrorUpdate on the receiving side (scheduled SnapMirror transfers "
    "leave no trace in Kubernetes, so the data can be newer)"
)
"""What a Trident group's ``last_sync_time`` is (module docstring: last_sync_time)."""

PROMOTED = "promoted"
ESTABLISHED = "established"
REESTABLISHED = "reestablished"
FOLLOWING = frozenset({ESTABLISHED, REESTABLISHED})
"""States of a TMR whose volume receives SnapMirror transfers (a Secondary)."""
SETTLED = FOLLOWING | {PROMOTED}
TRANSITIONAL = {"establishing": ESTABLISHED, "reestablishing": REESTABLISHED, "promoting": PROMOTED}
"""Each in-between state and the state it is heading for."""
FAILURE_STATES = frozenset({"failed", "invalid", "released"})
"""Final states Trident does not leave on its own (``released``: the mirror was let go, the TMR is deleting)."""

PROMOTED_SNAPSHOT_HANDLE = "promotedSnapshotHandle"
REMOTE_VOLUME_HANDLE = "remoteVolumeHandle"
MIRROR_UPDATE_SUCCEEDED = "Succeeded"
MIRROR_UPDATE_FAILED = "Failed"

OPERATION_LABEL = f"{ANNOTATION_PREFIX}operation"
"""Label on the snapshots of one planned failover (its short id), so that they can be found and cleaned up."""

DEFAULT_SNAPSHOT_TIMEOUT = 600.0
"""Seconds :meth:`TridentAdapter.prepare_sync_point` waits for snapshots and their handles by default."""

_SUFFIX_LENGTH = 10
_NAME_LIMIT = 253


def reached(desired: str, state: str) -> bool:
    """Whether a TMR in ``state`` has reached the final state for ``spec.state == desired``.

    Trident reports ``reestablished`` for a desired ``reestablished`` and ``established`` for ``established``;
    either following state counts for either, since both mean "this volume receives the peer's transfers".
    """
    if desired == PROMOTED:
        return state == PROMOTED
    if desired in FOLLOWING:
        return state in FOLLOWING
    # An empty spec.state leaves the relationship alone: whatever settled state it holds is final.
    return state in SETTLED


@dataclass(frozen=True)
class Mirror:
    """One PVC's TridentMirrorRelationship as read from the cluster.

    Attributes:
        pvc: the PVC it mirrors (the group's name for the volume).
        document: the TMR.
    """

    pvc: str
    document: JsonObject

    @property
    def name(self) -> str:
        """The TMR's name."""
        return text(self.document, "metadata", "name")

    @property
    def ref(self) -> str:
        """``TridentMirrorRelationship <namespace>/<name>``."""
        return MIRROR_RELATIONSHIPS.ref(self.name, text(self.document, "metadata", "namespace"))

    @property
    def desired(self) -> str:
        """``spec.state``."""
        return text(self.document, "spec", "state")

    @property
    def volume_mapping(self) -> JsonObject:
        """``spec.volumeMappings[0]`` (the CRD allows exactly one)."""
        mappings = objects(self.document, "spec", "volumeMappings")
        return dict(mappings[0]) if mappings else {}

    @property
    def local_pvc(self) -> str:
        """``spec.volumeMappings[0].localPVCName``: the PVC this TMR actually mirrors."""
        return text(self.volume_mapping, "localPVCName")

    @property
    def mirrors_pvc(self) -> bool:
        """Whether the TMR mirrors the PVC the group maps to it (a TMR named for one PVC may mirror another)."""
        return self.local_pvc == self.pvc

    @property
    def condition(self) -> JsonObject:
        """``status.conditions[0]`` (Trident keeps exactly one), ``{}`` before the first reconcile."""
        conditions = objects(self.document, "status", "conditions")
        return conditions[0] if conditions else {}

    @property
    def state(self) -> str:
        """The actual mirror state (``""`` before the first reconcile)."""
        return text(self.condition, "state")

    @property
    def message(self) -> str:
        """The controller's message, e.g. ``Could not promote mirror: ...``."""
        return text(self.condition, "message")

    @property
    def generation(self) -> int:
        """``metadata.generation``."""
        return generation(self.document)

    @property
    def observed_generation(self) -> int | None:
        """The generation the status was written for."""
        return integer(self.condition, "observedGeneration")

    @property
    def current(self) -> bool:
        """Whether the status speaks for the latest spec."""
        return self.observed_generation is not None and self.observed_generation == self.generation

    @property
    def local_volume_handle(self) -> str:
        """``<svm>:<volume>`` of this side's volume (what the peer puts in its ``remoteVolumeHandle``)."""
        return text(self.condition, "localVolumeHandle")

    @property
    def pinned_remote(self) -> str:
        """The ``remoteVolumeHandle`` Trident has recorded; once set, Trident fails the TMR if the spec changes it."""
        return text(self.condition, REMOTE_VOLUME_HANDLE)

    @property
    def role(self) -> Role:
        """The role this volume's state stands for."""
        if self.state == PROMOTED:
            return Role.PRIMARY
        if self.state in FOLLOWING:
            return Role.SECONDARY
        return Role.UNKNOWN

    @property
    def done(self) -> bool:
        """Current, and at the final state of its ``spec.state``."""
        return self.current and reached(self.desired, self.state)

    def volume_state(self) -> VolumeState:
        """The volume as one entry of :attr:`ReplicationStatus.volumes`.

        Unhealthy when the TMR is in a failure state, or when it mirrors another PVC than the one the group maps
        to it (then the PVC is not replicated: state ``not replicated``, role Unknown).
        """
        if not self.mirrors_pvc:
            return VolumeState(
                name=self.pvc,
                role=Role.UNKNOWN,
                state="not replicated",
                message=self.not_mirrored(),
                healthy=False,
            )
        message = self.message
        if not self.current:
            observed = self.observed_generation
            stale = (
                f"status is for generation {observed}, spec is at {self.generation}"
                if observed
                else f"no status yet for generation {self.generation}"
            )
            message = f"{message}; {stale}" if message else stale
        return VolumeState(
            name=self.pvc,
            role=self.role,
            state=self.state,
            message=message,
            healthy=self.state not in FAILURE_STATES,
        )

    def not_mirrored(self) -> str:
        """Why this TMR does not replicate its PVC (when :attr:`mirrors_pvc` is false)."""
        mirrored = f"PVC {self.local_pvc}" if self.local_pvc else "no PVC"
        return f"{self.ref} mirrors {mirrored} (its volumeMappings[0].localPVCName)"


def summarise(cluster: str, mirrors: list[Mirror], last_sync_time: datetime | None = None) -> ReplicationStatus:
    """Normalise a group's TMRs into one :class:`ReplicationStatus` (the rules are in the module docstring).

    Args:
        cluster: where they were read.
        mirrors: the group's TMRs, in PVC order.
        last_sync_time: the group's last complete transfer, when known.

    ``missing_volumes`` lists the PVCs whose TMR mirrors another PVC (``volumeMappings[0].localPVCName``); a PVC
    without any TMR never gets here, because reading the group raises :class:`ObjectMissingError` for it.
    """
    unmirrored = [mirror for mirror in mirrors if not mirror.mirrors_pvc]
    note = "; not replicated: " + ", ".join(f"{m.pvc}, {m.not_mirrored()}" for m in unmirrored) if unmirrored else ""
    current = all(mirror.current for mirror in mirrors)
    roles = {mirror.role for mirror in mirrors}
    role = roles.pop() if current and len(roles) == 1 else Role.UNKNOWN
    # A failure written for an older spec is history (the undo of a failed promotion rewrites the spec, and its
    # wait must not give up on the promotion's failure before Trident has reconciled the new one).
    failed = [mirror for mirror in mirrors if mirror.current and mirror.state in FAILURE_STATES]
    failure = "; ".join(f"{m.pvc} {m.state}: {m.message or 'no message from Trident'}" for m in failed) or None
    # Still named, as the likely cause should Trident fail the new spec too: it rewrites a status only when the
    # state changes, so a failure repeated for the new spec leaves the old generation (and a wait's timeout says so).
    earlier = [m for m in mirrors if not m.current and m.state in FAILURE_STATES]
    described = _describe(mirrors)
    history = "".join(
        f"; {m.pvc} {m.state} for its earlier spec (generation {m.observed_generation}): "
        f"{m.message or 'no message from Trident'}"
        for m in earlier
        if f"{m.pvc}: {m.message}" not in described  # a transition's summary quotes the messages already
    )
    if failure:
        # Trident does not retry a failed relationship on its own, and repeating the same spec writes nothing.
        failure += (
            " (Trident retries a failed TridentMirrorRelationship only when its spec changes: fix the cause, then "
            "recreate the relationship or edit its spec, and run the operation again)"
        )
    return ReplicationStatus(
        cluster=cluster,
        backend=Backend.TRIDENT,
        role=role,
        current=current,
        completed=current and all(mirror.done for mirror in mirrors),
        healthy=not failed and not earlier,
        replicating=all(mirror.state in FOLLOWING for mirror in mirrors),
        syncing=any(mirror.state in TRANSITIONAL for mirror in mirrors),
        failure=failure,
        failure_permanent=failure is not None,
        last_sync_time=last_sync_time,
        last_sync_source=MIRROR_UPDATE_SOURCE if last_sync_time else "",
        message=(failure or described + history) + note,
        volumes=tuple(mirror.volume_state() for mirror in mirrors),
        missing_volumes=tuple(dict.fromkeys(mirror.pvc for mirror in unmirrored)),
        generations={mirror.ref: mirror.generation for mirror in mirrors},
    )


def _describe(mirrors: list[Mirror]) -> str:
    """A one-liner such as ``promoting: 1 of 3 volumes promoted; wal: <Trident's message>``."""
    total = len(mirrors)
    moving = [mirror for mirror in mirrors if mirror.state in TRANSITIONAL]
    states = {mirror.state for mirror in mirrors}
    if moving:
        heading = TRANSITIONAL[moving[0].state]
        arrived = sum(1 for mirror in mirrors if reached(heading, mirror.state))
        notes = [f"{m.pvc}: {m.message}" for m in mirrors if m.message and not reached(heading, m.state)]
        summary = "; ".join([f"{moving[0].state}: {arrived} of {total} volumes {heading}", *notes])
    elif states == {""}:
        summary = f"no status yet for any of the {total} volumes"
    elif len(states) == 1:
        summary = f"all {total} volumes {states.pop()}"
    else:
        summary = "volumes disagree: " + ", ".join(f"{m.pvc} {m.state or 'no status yet'}" for m in mirrors)
    stale = [mirror for mirror in mirrors if not mirror.current]
    if stale:
        summary += "; status not yet observed for the latest spec of " + ", ".join(
            f"{m.pvc} (generation {m.generation}, observed {m.observed_generation or 'none'})" for m in stale
        )
    return summary


def snapshot_name(pvc: str, suffix: str) -> str:
    """The deterministic name of a planned failover's snapshot of ``pvc``: ``<pvc>-failover-<suffix>``."""
    return _derived_name(pvc, "failover", suffix)


def transfer_name(pvc: str, snapshot_handle: str) -> str:
    """The name of the mirror update that carries ``snapshot_handle`` to the target: ``<pvc>-transfer-<digest>``.

    Derived from the handle, so that every attempt to transfer one snapshot finds the same update.
    """
    return _derived_name(pvc, "transfer", hashlib.sha256(snapshot_handle.encode()).hexdigest()[:_SUFFIX_LENGTH])


def _derived_name(pvc: str, purpose: str, suffix: str) -> str:
    tail = f"-{purpose}-{suffix}"
    return pvc[: _NAME_LIMIT - len(tail)].rstrip("-.") + tail


def operation_suffix(operation_id: str | None) -> str:
    """A short, name-safe id for one operation: a digest of ``operation_id``, or random when there is none."""
    if operation_id is None:
        return uuid.uuid4().hex[:_SUFFIX_LENGTH]
    return hashlib.sha256(operation_id.encode()).hexdigest()[:_SUFFIX_LENGTH]


def _update_message(update: JsonObject) -> str:
    """A mirror update's state and message, e.g. ``In progress`` or ``Failed: <Trident's message>``."""
    state = text(update, "status", "state") or "not started by Trident yet"
    message = text(update, "status", "message")
    return f"{state}: {message}" if message else state


def _without_empty(values: JsonObject) -> JsonObject:
    """A volume mapping without empty fields (an empty ``promotedSnapshotHandle`` is the same as none)."""
    return {key: value for key, value in values.items() if value not in ("", None)}


@dataclass(frozen=True)
class _Pending:
    """Why one PVC's snapshot handle is not available yet, and the snapshot's error if it reports one."""

    reason: str
    error: str = ""


class TridentAdapter(ReplicationAdapter):
    """A group's TridentMirrorRelationships on one cluster (see the module docstring for the rules)."""

    backend = Backend.TRIDENT

    # ------------------------------------------------------------------------------------------------- reading

    def _mirror_names(self) -> dict[str, str]:
        """TMR name per PVC, in the configured PVC order."""
        if not self.target.pvc_names:
            raise InvalidSpecError(
                "a Trident group needs its PVC names (one TridentMirrorRelationship per PVC)", cluster=self.cluster
            )
        return {pvc: self.target.tmr_names.get(pvc, pvc) for pvc in self.target.pvc_names}

    def _read(self) -> list[Mirror]:
        """Every TMR of the group; :class:`ObjectMissingError` names the first missing one."""
        return [
            Mirror(pvc, self.api.get(MIRROR_RELATIONSHIPS, name, self.target.namespace))
            for pvc, name in self._mirror_names().items()
        ]

    def watch_scopes(self) -> tuple[WatchScope, ...]:
        """The TMRs and the mirror updates of the group's namespace (one watch each)."""
        namespace = self.target.namespace
        return (WatchScope(MIRROR_RELATIONSHIPS, namespace), WatchScope(MIRROR_UPDATES, namespace))

    def observe(self) -> ReplicationStatus:
        """Read the group's TMRs (and, on the receiving side, its mirror updates) and normalise them.

        Every configured PVC has its TMR read, so no PVC is skipped silently: a missing TMR raises, and a TMR that
        mirrors another PVC puts the configured one in ``missing_volumes`` (see :func:`summarise`).

        Raises:
            InvalidSpecError: the target names no PVC.
            ObjectMissingError: a PVC's TridentMirrorRelationship does not exist on this cluster.
        """
        mirrors = self._read()
        return summarise(self.cluster, mirrors, self._last_transfer(mirrors))

    def _last_transfer(self, mirrors: list[Mirror]) -> datetime | None:
        """The group's last complete transfer from TridentActionMirrorUpdates (module docstring: last_sync_time)."""
        if any(mirror.state == PROMOTED for mirror in mirrors):
            # A source's mirror updates are history from when it last received data: they say nothing about lag.
            return None
        try:
            updates = self.api.list(MIRROR_UPDATES, self.target.namespace)
        except ObjectMissingError:
            return None  # the TridentActionMirrorUpdate CRD is not installed: no transfer times at all
        # Only transfers since each TMR took its current state count: older updates ran when this side followed
        # the peer in an earlier role (before a failover and a reprotect), and would show a lag that only grows.
        since = {mirror.name: timestamp(field(mirror.condition, "lastTransitionTime")) for mirror in mirrors}
        newest: dict[str, datetime] = {}
        for update in updates:
            relationship = text(update, "spec", "tridentMirrorRelationshipName")
            times = [timestamp(field(update, "status", "previousTransferTime"))]
            if text(update, "status", "state") == MIRROR_UPDATE_SUCCEEDED:
                times.append(timestamp(field(update, "status", "completionTime")))
            began = since.get(relationship)
            for moment in times:
                if moment is None or (began is not None and moment < began):
                    continue
                if relationship not in newest or moment > newest[relationship]:
                    newest[relationship] = moment
        per_volume = [newest.get(mirror.name) for mirror in mirrors]
        known = [moment for moment in per_volume if moment is not None]
        return min(known) if known and len(known) == len(per_volume) else None

    def peer_info(self) -> PeerInfo:
        """The ``localVolumeHandle`` of each PVC here (PVCs whose TMR has not reported one yet are left out)."""
        return PeerInfo(volume_handles={m.pvc: m.local_volume_handle for m in self._read() if m.local_volume_handle})

    # ------------------------------------------------------------------------------------------------- predicates

    @staticmethod
    def final_sync_complete(status: ReplicationStatus) -> bool:
        """Trident: whether the *source* is steady for the target's promote-with-snapshot (nothing was demoted).

        Trident has no demote, so a source never turns Secondary before the target is promoted. The final sync
        happens on the target instead: :meth:`transfer_sync_point` brings the sync point's snapshots there, and
        :meth:`promote` promotes at them. This predicate only confirms the source still holds the data as the
        untouched, current Primary, so that a generic "demote, wait, promote" sequence proceeds; the safety comes
        from :meth:`promote` refusing a planned promotion without a sync point whose snapshots were transferred.
        """
        return (
            status.current
            and status.role is Role.PRIMARY
            and status.completed
            and status.healthy
            and status.failure is None
        )

    @staticmethod
    def resync_complete(status: ReplicationStatus) -> bool:
        """Whether every TMR is (re)established for its latest spec: this side receives the peer's transfers."""
        return follows_peer(status)

    # ------------------------------------------------------------------------------------------------- writes

    def prepare_sync_point(
        self,
        *,
        operation_id: str | None = None,
        timeout: float = DEFAULT_SNAPSHOT_TIMEOUT,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        watch: bool = False,
    ) -> SyncPoint:
        """On the planned source, after the workloads stopped: snapshot every PVC and return the snapshot handles.

        Per PVC: a VolumeSnapshot ``<pvc>-failover-<short id>`` (class ``target.snapshot_class`` when set), once it
        is ``readyToUse`` a TridentSnapshotInfo of the same name, whose ``status.snapshotHandle`` goes into the
        target's ``promotedSnapshotHandle``. Names derive from ``operation_id``, so a retry of the same operation
        re-uses what exists (ready or not) instead of taking new snapshots. Without an ``operation_id`` every call
        takes fresh snapshots: re-using a snapshot from another attempt would promote the target at a point
        before writes acknowledged since, so names are never derived from anything longer-lived than the operation.

        Args:
            operation_id: identifies the failover attempt (e.g. the workflow id and run id).
            timeout: seconds to wait for every snapshot to be ready and every handle to be known.
            interval: seconds between polls.
            clock: monotonic clock (injectable for tests).
            sleep: sleep function (injectable for tests).
            watch: follow the snapshots with watches while waiting, instead of polling every ``interval``.

        Raises:
            PreconditionFailedError: a TMR here is not ``promoted``: this is not the source.
            InvalidSpecError: an object with the snapshot's name exists for something else.
            BackendFailedError: the timeout passed and a snapshot reports an error.
            NotReadyError: the timeout passed without an error (a retry with the same id re-uses the snapshots).
        """
        mirrors = self._read()
        not_source = [f"{m.pvc} is {m.state or 'not reconciled yet'}" for m in mirrors if m.state != PROMOTED]
        if not_source:
            raise PreconditionFailedError(
                "snapshots for a planned Trident failover are taken on the source, whose TMRs are all promoted; "
                + ", ".join(not_source),
                cluster=self.cluster,
            )
        suffix = operation_suffix(operation_id)
        names = {mirror.pvc: snapshot_name(mirror.pvc, suffix) for mirror in mirrors}
        for pvc, name in names.items():
            self._ensure_snapshot(pvc, name, suffix)
        deadline = clock() + timeout
        handles: dict[str, str] = {}

        def still_pending(reads: ClusterApi) -> dict[str, _Pending]:
            pending: dict[str, _Pending] = {}
            for pvc, name in names.items():
                if pvc not in handles:
                    outcome = self.with_api(reads)._snapshot_handle(pvc, name, suffix)
                    if isinstance(outcome, _Pending):
                        pending[pvc] = outcome
                    else:
                        handles[pvc] = outcome
            return pending

        namespace = self.target.namespace
        scopes = (WatchScope(VOLUME_SNAPSHOTS, namespace), WatchScope(SNAPSHOT_INFOS, namespace)) if watch else ()
        found = observations(
            self.api,
            scopes,
            still_pending,
            deadline=time.monotonic() + timeout,
            sleep=sleep,
            poll=poll_intervals(interval, interval),
        )
        with contextlib.closing(found):
            for pending in found:
                if isinstance(pending, dict) and not pending:
                    return SyncPoint(snapshot_handles=handles)
                if clock() >= deadline:
                    if isinstance(pending, dict):
                        raise self._snapshots_late(pending, timeout)
                    raise pending
        raise AssertionError("observations never end")

    def _ensure_snapshot(self, pvc: str, name: str, suffix: str) -> None:
        """Create the VolumeSnapshot of ``pvc`` unless it exists (then check that it is a snapshot of ``pvc``)."""
        namespace = self.target.namespace
        existing = self.api.find(VOLUME_SNAPSHOTS, name, namespace)
        if existing is None:
            spec: JsonObject = {"source": {"persistentVolumeClaimName": pvc}}
            if self.target.snapshot_class:
                spec["volumeSnapshotClassName"] = self.target.snapshot_class
            self.api.create(VOLUME_SNAPSHOTS, {"metadata": self._metadata(name, suffix), "spec": spec}, namespace)
            return
        source = text(existing, "spec", "source", "persistentVolumeClaimName")
        if source != pvc:
            raise InvalidSpecError(
                f"{VOLUME_SNAPSHOTS.ref(name, namespace)} exists but snapshots {source or 'no PVC'}, not {pvc}",
                cluster=self.cluster,
                object_ref=VOLUME_SNAPSHOTS.ref(name, namespace),
            )

    def _snapshot_handle(self, pvc: str, name: str, suffix: str) -> str | _Pending:
        """The backend handle of ``pvc``'s snapshot, or why it is not known yet (creates the TSI once ready)."""
        namespace = self.target.namespace
        snapshot = self.api.get(VOLUME_SNAPSHOTS, name, namespace)
        if field(snapshot, "status", "readyToUse") is not True:
            return _Pending(
                f"{VOLUME_SNAPSHOTS.ref(name, namespace)} is not readyToUse",
                text(snapshot, "status", "error", "message"),
            )
        info = self.api.find(SNAPSHOT_INFOS, name, namespace)
        if info is None:
            # Created only once the snapshot is ready: Trident resolves the handle from the bound snapshot content.
            body = {"metadata": self._metadata(name, suffix), "spec": {"snapshotName": name}}
            with contextlib.suppress(ConflictError):  # created already; the watch has not shown it yet
                self.api.create(SNAPSHOT_INFOS, body, namespace)
            return _Pending(f"{SNAPSHOT_INFOS.ref(name, namespace)} created, waiting for its snapshotHandle")
        if text(info, "spec", "snapshotName") != name:
            raise InvalidSpecError(
                f"{SNAPSHOT_INFOS.ref(name, namespace)} exists for snapshot "
                f"{text(info, 'spec', 'snapshotName') or '?'}, not {name} ({pvc})",
                cluster=self.cluster,
                object_ref=SNAPSHOT_INFOS.ref(name, namespace),
            )
        handle = text(info, "status", "snapshotHandle")
        return handle or _Pending(f"{SNAPSHOT_INFOS.ref(name, namespace)} has no snapshotHandle yet")

    def _snapshots_late(self, pending: dict[str, _Pending], timeout: float) -> BackendFailedError | NotReadyError:
        """The error for snapshots still pending at the deadline: permanent when a snapshot reports an error."""
        details = "; ".join(
            f"{pvc}: {why.reason}" + (f" (error: {why.error})" if why.error else "") for pvc, why in pending.items()
        )
        errors = [why.error for why in pending.values() if why.error]
        if errors:
            return BackendFailedError(
                f"planned-failover snapshots failed within {timeout:.0f}s: {details}",
                cluster=self.cluster,
                condition=errors[0],
            )
        return NotReadyError(
            f"planned-failover snapshots not ready within {timeout:.0f}s (a retry with the same operation id "
            f"re-uses them): {details}",
            cluster=self.cluster,
        )

    def _metadata(self, name: str, suffix: str) -> JsonObject:
        return {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, OPERATION_LABEL: suffix},
        }

    def transfer_sync_point(
        self,
        sync_point: SyncPoint,
        *,
        timeout: float,
        progress: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] | None = None,
        watch: bool = False,
    ) -> WriteResult:
        """On the planned target: a TridentActionMirrorUpdate per PVC carrying its snapshot; wait until all succeed.

        Upstream Trident fails a promotion whose snapshot has not reached the destination ("Could not promote
        mirror") and does not retry it, so the snapshots are brought here first and :meth:`promote` checks that
        they were. Each update is named after its snapshot handle (:func:`transfer_name`): a retry re-uses it, and
        an update Trident ran once is never run again (it is an action object).

        Raises:
            PreconditionFailedError: a TMR here is not a current SnapMirror destination, or the sync point lacks a
                PVC's snapshot.
            InvalidSpecError: an object with an update's name exists for another relationship or snapshot.
            BackendFailedError: an update failed (a new failover takes new snapshots, and so new updates), or the
                timeout passed with updates still running (the wait's deadline is the step's: a new call re-uses
                them).
        """
        mirrors = self._read()
        not_destination = [
            f"{m.pvc} is {m.state or 'not reconciled yet'}" for m in mirrors if not (m.current and m.state in FOLLOWING)
        ]
        if not_destination:
            raise PreconditionFailedError(
                "a snapshot is transferred to a SnapMirror destination, whose TMRs are all (re)established for "
                "their latest spec; " + ", ".join(not_destination),
                cluster=self.cluster,
            )
        handles = self._planned_handles(sync_point, [m.pvc for m in mirrors])
        names = {m.pvc: transfer_name(m.pvc, handles[m.pvc]) for m in mirrors}
        changed = False
        for mirror in mirrors:
            changed |= self._ensure_mirror_update(names[mirror.pvc], mirror.name, handles[mirror.pvc])
        namespace = self.target.namespace

        def states(reads: ClusterApi) -> dict[str, JsonObject]:
            return {pvc: reads.get(MIRROR_UPDATES, name, namespace) for pvc, name in names.items()}

        found = observations(
            self.api,
            (WatchScope(MIRROR_UPDATES, namespace),) if watch else (),
            states,
            deadline=time.monotonic() + timeout,
            sleep=sleep or time.sleep,
            poll=poll_intervals(0.2, 2.0),
        )
        deadline = time.monotonic() + timeout
        with contextlib.closing(found):
            for updates in found:
                if not isinstance(updates, dict):
                    if time.monotonic() >= deadline:
                        raise updates
                    continue
                failed = {pvc: u for pvc, u in updates.items() if text(u, "status", "state") == MIRROR_UPDATE_FAILED}
                if failed:
                    raise BackendFailedError(
                        "the final snapshots did not reach this side: "
                        + "; ".join(f"{pvc}: {_update_message(u)}" for pvc, u in failed.items())
                        + " (nothing was promoted; a new failover takes new snapshots)",
                        cluster=self.cluster,
                        condition=text(next(iter(failed.values())), "status", "message"),
                    )
                running = {
                    pvc: u for pvc, u in updates.items() if text(u, "status", "state") != MIRROR_UPDATE_SUCCEEDED
                }
                summary = f"mirror updates: {len(updates) - len(running)} of {len(updates)} succeeded" + "".join(
                    f"; {pvc}: {_update_message(u)}" for pvc, u in running.items()
                )
                if progress is not None:
                    progress(summary)
                if not running:
                    return WriteResult(
                        cluster=self.cluster,
                        changed=changed,
                        generations={MIRROR_UPDATES.ref(n, namespace): 1 for n in names.values()},
                    )
                if time.monotonic() >= deadline:
                    raise BackendFailedError(
                        f"the final snapshots have not reached this side within {timeout:.0f}s ({summary}); nothing "
                        "was promoted (a new attempt re-uses the running mirror updates)",
                        cluster=self.cluster,
                    )
        raise AssertionError("observations never end")

    def _ensure_mirror_update(self, name: str, relationship: str, snapshot_handle: str) -> bool:
        """Create the mirror update ``name`` unless it exists (then check that it carries the same snapshot)."""
        namespace = self.target.namespace
        spec = {"tridentMirrorRelationshipName": relationship, "snapshotHandle": snapshot_handle}
        existing = self.api.find(MIRROR_UPDATES, name, namespace)
        if existing is None:
            body = {"metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}}, "spec": spec}
            try:
                self.api.create(MIRROR_UPDATES, body, namespace)
            except ConflictError:
                existing = self.api.get(MIRROR_UPDATES, name, namespace)
            else:
                return True
        if {key: text(existing, "spec", key) for key in spec} != spec:
            raise InvalidSpecError(
                f"{MIRROR_UPDATES.ref(name, namespace)} exists for another relationship or snapshot than "
                f"{relationship} {snapshot_handle}",
                cluster=self.cluster,
                object_ref=MIRROR_UPDATES.ref(name, namespace),
            )
        return False

    def _untransferred(self, pvcs: list[str], handles: dict[str, str]) -> list[str]:
        """Those of ``pvcs`` whose snapshot no succeeded mirror update has brought here."""
        namespace = self.target.namespace
        missing = []
        for pvc in pvcs:
            update = self.api.find(MIRROR_UPDATES, transfer_name(pvc, handles[pvc]), namespace)
            if update is None or text(update, "status", "state") != MIRROR_UPDATE_SUCCEEDED:
                missing.append(pvc)
        return missing

    def demote(self, *, peer: ReplicationAdapter | None = None) -> WriteResult:
        """Write nothing: Trident has no demote (the target's promote-with-snapshot is the handover).

        The old source is re-established as Secondary afterwards with :meth:`reprotect`. The TMRs are read so that
        a missing one fails here, and their generations are returned.
        """
        mirrors = self._read()
        return WriteResult(cluster=self.cluster, changed=False, generations={m.ref: m.generation for m in mirrors})

    def promote(
        self, *, force: bool, sync_point: SyncPoint | None = None, peer: ReplicationAdapter | None = None
    ) -> WriteResult:
        """Set every TMR ``state: promoted``; planned with the sync point's snapshot handles, forced without.

        ``volumeMappings`` is a list, which a merge patch replaces whole: the full mapping is sent, keeping
        ``localPVCName`` and ``remoteVolumeHandle`` (Trident fails a TMR whose recorded remote handle changes), and
        compared with the current one so that a repeated call writes nothing. A TMR that is already ``promoted``
        for its latest spec is left alone, whatever snapshot handle it was promoted with, so re-promoting an
        untouched source (compensation) writes nothing and needs no sync point. ``peer`` is not needed.

        Raises:
            PreconditionFailedError: a planned promotion (``force`` false) of TMRs that are not promoted yet without a
                sync point, or with one lacking a PVC: promoting without the snapshot would break the mirror before
                the last writes arrived.
        """
        mirrors = self._read()
        # Already promoted for its latest spec: left alone, whatever snapshot it was promoted with.
        pending = [mirror for mirror in mirrors if not (mirror.desired == PROMOTED and mirror.done)]
        handles = {} if force or not pending else self._planned_handles(sync_point, [m.pvc for m in pending])
        untransferred = self._untransferred([m.pvc for m in pending], handles) if handles else []
        if untransferred:
            raise PreconditionFailedError(
                f"the snapshots of {', '.join(untransferred)} have not been transferred here (transfer_sync_point): "
                "Trident fails a promotion whose snapshot has not arrived and does not retry it",
                cluster=self.cluster,
            )
        changed = False
        generations = {mirror.ref: mirror.generation for mirror in mirrors}
        for mirror in pending:
            volume_mapping = {k: v for k, v in mirror.volume_mapping.items() if k != PROMOTED_SNAPSHOT_HANDLE}
            if not force:
                volume_mapping[PROMOTED_SNAPSHOT_HANDLE] = handles[mirror.pvc]
            wrote, document = self._set_spec(mirror, PROMOTED, volume_mapping)
            changed |= wrote
            generations[mirror.ref] = generation(document)
        return WriteResult(cluster=self.cluster, changed=changed, generations=generations)

    def _planned_handles(self, sync_point: SyncPoint | None, pvcs: list[str]) -> dict[str, str]:
        """The snapshot handle of each of ``pvcs`` for a planned promotion (each must have one)."""
        if sync_point is None:
            raise PreconditionFailedError(
                "a planned Trident promotion needs the sync point from prepare_sync_point() on the source "
                "(force=True promotes without one, for an unplanned failover only)",
                cluster=self.cluster,
            )
        handles = sync_point.snapshot_handles
        missing = [pvc for pvc in pvcs if not handles.get(pvc)]
        if missing:
            raise PreconditionFailedError(
                f"the sync point has no snapshot handle for {', '.join(missing)}", cluster=self.cluster
            )
        return handles

    def reprotect(self, *, resync: bool, peer: ReplicationAdapter) -> WriteResult:
        """Make every TMR here follow ``peer``: ``state: reestablished`` with the peer's volume handles.

        The same write clears ``promotedSnapshotHandle`` (the CRD rejects it without ``promoted``). A TMR already
        (re)established towards the same handle is left alone. ``resync`` does not change the write: a reestablish
        is always a SnapMirror resync from the peer (see the module docstring). First the planned-failover
        snapshots taken here are deleted (:meth:`_delete_failover_snapshots`).

        Raises:
            NotReadyError: the peer has not reported a ``localVolumeHandle`` for some PVC yet, or a failover
                snapshot here is still being deleted.
            PreconditionFailedError: the peer is not a Trident adapter, or a TMR here already records another
                remote volume (Trident fails a TMR whose remote handle changes: it must be recreated).
        """
        peer = require_peer(peer, Backend.TRIDENT, cluster=self.cluster, purpose="re-protecting a Trident group")
        handles = peer.peer_info().volume_handles
        mirrors = self._read()
        missing = [mirror.pvc for mirror in mirrors if not handles.get(mirror.pvc)]
        if missing:
            raise NotReadyError(
                f"the peer (cluster {peer.cluster}) reports no localVolumeHandle yet for {', '.join(missing)}",
                cluster=self.cluster,
            )
        # Check every TMR before writing any, so that a refusal leaves the group untouched.
        for mirror in mirrors:
            if mirror.pinned_remote and mirror.pinned_remote != handles[mirror.pvc]:
                raise PreconditionFailedError(
                    f"{mirror.pvc} mirrors {mirror.pinned_remote}, not the peer's {handles[mirror.pvc]}: Trident "
                    "cannot change a TMR's remote volume; delete and recreate the TMR",
                    cluster=self.cluster,
                    object_ref=mirror.ref,
                )
        pending_deletion = self._delete_failover_snapshots()
        if pending_deletion:
            raise NotReadyError(
                f"the planned-failover snapshots {', '.join(pending_deletion)} are still being deleted; this side "
                "follows the peer once they are gone (Trident cannot delete a snapshot of a mirror destination)",
                cluster=self.cluster,
            )
        changed = False
        generations: dict[str, int] = {}
        for mirror in mirrors:
            volume_mapping = {
                key: value
                for key, value in mirror.volume_mapping.items()
                if key not in (PROMOTED_SNAPSHOT_HANDLE, REMOTE_VOLUME_HANDLE)
            }
            volume_mapping[REMOTE_VOLUME_HANDLE] = handles[mirror.pvc]
            # Already (re)established towards the same volume: it follows the peer, and rewriting "established"
            # as "reestablished" would start a needless resync.
            following = mirror.desired in FOLLOWING and _without_empty(mirror.volume_mapping) == _without_empty(
                volume_mapping
            )
            wrote, document = (
                (False, mirror.document) if following else self._set_spec(mirror, REESTABLISHED, volume_mapping)
            )
            changed |= wrote
            generations[mirror.ref] = generation(document)
        return WriteResult(cluster=self.cluster, changed=changed, generations=generations)

    def _delete_failover_snapshots(self) -> list[str]:
        """Delete this side's planned-failover snapshots of the group's PVCs; those not gone yet.

        They were taken here while this side was a planned failover's source. When it is to follow the peer, that
        failover either promoted the peer at them (the peer holds them) or was undone: either way they have served,
        and kept they would pin their blocks on the array. They go before the TMRs are reestablished because ONTAP
        deletes no snapshot of a mirror destination. The SnapMirror snapshots of the transfer remain common to
        both sides for the resync.
        """
        namespace = self.target.namespace
        try:
            snapshots = self.api.list(VOLUME_SNAPSHOTS, namespace)
        except ObjectMissingError:
            return []  # no VolumeSnapshot CRD here: no snapshot was ever taken
        pvcs = set(self.target.pvc_names)
        remaining = []
        for snapshot in snapshots:
            labels = mapping(snapshot, "metadata", "labels")
            if labels.get("app.kubernetes.io/managed-by") != MANAGED_BY or OPERATION_LABEL not in labels:
                continue
            if text(snapshot, "spec", "source", "persistentVolumeClaimName") not in pvcs:
                continue
            name = text(snapshot, "metadata", "name")
            if not text(snapshot, "metadata", "deletionTimestamp"):
                self.api.delete(SNAPSHOT_INFOS, name, namespace)
                self.api.delete(VOLUME_SNAPSHOTS, name, namespace)
            if self.api.find(VOLUME_SNAPSHOTS, name, namespace) is not None:
                remaining.append(name)
        return remaining

    def _set_spec(self, mirror: Mirror, state: str, volume_mapping: JsonObject) -> tuple[bool, JsonObject]:
        """Write ``spec.state`` and the one volume mapping unless the TMR already has them.

        Not :meth:`ensure_fields`: it would read the TMR again, and it compares lists exactly, so an empty
        ``promotedSnapshotHandle`` would count as a difference. Here the mapping read with the group is compared
        without empty fields, and the patch carries that read's resourceVersion (a concurrent edit is a 409).
        """
        if mirror.desired == state and _without_empty(mirror.volume_mapping) == _without_empty(volume_mapping):
            return False, mirror.document
        body = {"spec": {"state": state, "volumeMappings": [_without_empty(volume_mapping)]}}
        return True, guarded_patch(self.api, MIRROR_RELATIONSHIPS, mirror.document, body, self.target.namespace)
