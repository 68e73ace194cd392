"""Dell CSM replication (PowerStore): a group is one cluster-scoped DellCSIReplicationGroup (RG) on each cluster.

Facts: ``shared/reference/backends.md`` section 4; field names: ``deploy/crds/replication.storage.dell.com.yaml``.

Every role change is an *action*: the adapter sets ``spec.action``, Dell's replication controller runs it against
the array (``status.state`` ``<ACTION>_IN_PROGRESS``), then resets ``spec.action`` to ``""`` and records the result
in ``status.lastAction`` (``Action <ACTION> succeeded`` with state ``Ready``, or ``Action <ACTION> failed with
error ...`` with state ``Error`` once it gives up; while it retries, ``lastAction.errorMessage``/``firstFailure``
are set and the state stays in progress).

How the operations map to writes:

- **Planned failover.** :meth:`PowerStoreAdapter.demote` on the source sets ``FAILOVER_REMOTE`` on the source's RG:
  the array ships the last writes and makes the peer the source. ``promote(force=False, peer=source)`` on the
  target writes nothing when the target already reports ``isSource``, and otherwise is the source's ``demote()``
  (the same action, itself a no-op once it ran). The same call on the old source undoes a planned failover.
- **Unplanned failover.** ``promote(force=True)`` sets ``UNPLANNED_FAILOVER_LOCAL`` on this (the target's) RG.
- **Reprotect / fence on return.** ``reprotect(peer=new primary)`` sets ``REPROTECT_LOCAL`` on the *peer's* RG
  (:meth:`PowerStoreAdapter.protect_peer` there): the new primary re-protects and this side resyncs from it. The
  same call undoes a planned failover whose target never ran the application (``target.reprotect(peer=source)``:
  the original source becomes the source again and resyncs the target).
  PowerStore has one re-protect action and the array copies what differs, so ``resync`` does not change the write.

Rules for every action request (so that a repeated call writes nothing and nothing races Dell's controller):

1. the same action already in ``spec.action``: nothing is written, the controller is on it;
2. another action in ``spec.action``, or a status still ``<ACTION>_IN_PROGRESS``: :class:`ConflictError` /
   :class:`NotReadyError` (both retryable), never a write, because Dell rejects a new action while one runs;
3. the status already shows the result (demote: ``isSource`` false; forced promote: ``isSource`` true; reprotect:
   the peer is source and its link ``SYNCHRONIZED``/``SYNC_IN_PROGRESS``): nothing is written;
4. otherwise one merge patch, guarded by the read ``resourceVersion``, sets ``spec.action`` together with two
   annotations: the requested action and a *baseline*, a digest of ``status.lastAction`` and ``conditions`` as
   they were before the request.

Currency (an RG status has no ``observedGeneration``): the status speaks for the latest request when no request
is waiting for the controller (``spec.action`` set but no ``<ACTION>_IN_PROGRESS``), no result is waiting to be
recorded (``spec.action`` reset but the state still in progress) and the state is initialised. Dell's own repctl
waits for ``lastSuccessfulUpdate`` to change and never checks the result; here a request counts as done only when
the RG is ``Ready`` and its action history changed since the baseline, i.e. the controller recorded an outcome
after the request (it clears ``lastAction`` when it starts an action and writes ``Action <A> succeeded`` when it
ends). An RG back to ``Ready`` with ``spec.action`` empty and the history unchanged had the request reset without
running (an unsupported action, or someone cleared it): a permanent failure, where repctl would time out.

Normalisation into :class:`~adapters.base.ReplicationStatus`:

- role: ``replicationLinkState.isSource`` true -> Primary, false -> Secondary (the last known role, also while
  an action runs); Unknown when not reported or the status is not current.
- completed: current, state ``Ready``, ``spec.action`` empty, the last request not reset without running.
- failure: state ``Error`` (``lastAction.condition``), ``Invalid``, ``Deleting`` or a reset request: permanent;
  an action in progress with ``lastAction.errorMessage`` set: the controller retries (not permanent).
- an acknowledged ``Error``: upstream keeps an RG in ``Error`` after a failed action until another action
  succeeds (it accepts new actions meanwhile). A planned ``promote`` on a side that is still the source after
  its ``FAILOVER_REMOTE`` failed (the undo of that demote), with the peer's RG confirming it is the target,
  acknowledges that failure (annotation carrying the digest of ``lastAction``, so any new outcome on the RG ends
  it): the status is then completed and healthy with the failure as a note, once the replicator polled the array
  after the failure (``lastSuccessfulUpdate`` later than ``lastAction.time``), so that the application may restart
  there. It stays so when the peer later makes this side the target (a fence's REPROTECT_LOCAL there: the
  replicator records ``IsSource changed from (true) to (false)`` after the failure), where upstream would keep the
  RG in ``Error`` until an action on it succeeds.
- healthy: link state not ``SUSPENDED``/``INVALID``/``UNKNOWN``/``EMPTY``/unreported, state not ``Invalid`` and not
  an unacknowledged ``Error``.
- replicating: link ``SYNCHRONIZED``; syncing: link ``SYNC_IN_PROGRESS``; replication_stopped: link ``FAILEDOVER``
  (the array failed the session over and nothing reprotected it yet: no data flows either way).
- last_sync_time: ``lastSuccessfulUpdate`` while the link is ``SYNCHRONIZED``; ``None`` otherwise. Upstream, that
  time is when the replicator last polled the array (every ``--monitoring-interval``, 60 s by default, and not
  while an action runs), not when data last reached the target: ``SYNCHRONIZED`` only says the array's session
  was fine then. ``last_sync_source`` says so (:data:`POLL_SOURCE`), so that a lag or a data-loss window derived
  from it is shown as "as of the replicator's poll", wrong by up to a poll interval.
- the peer: csm-replication declares ``status.remoteState`` but never writes it, so an action requested on the
  peer's RG (``REPROTECT_LOCAL`` for :meth:`PowerStoreAdapter.reprotect`) shows, and fails, only on the peer's
  RG. ``reprotect_acts_on_peer`` makes a resync wait follow that RG first
  (:func:`adapters.waiting.wait_for_resync`); this side's status never speaks for the peer.
- volumes: one entry standing for the whole group, named after the RG (the array reports the protection group,
  not its volumes), unhealthy when the group is.
- missing_volumes: an RG does not list its PVCs; Dell's replicator labels the volumes of the group
  ``replication.storage.dell.com/replicationGroupName=<RG name>``: every PV on both sides (the replicator on the
  side that provisioned it, the replication controller on the peer) but only the PVCs whose PV it provisioned
  (csm-replication ``persistentvolumeclaim_controller.go`` waits for the PV's ``remoteVolume`` annotation, which
  a peer's PV never gets). When ``target.pvc_names`` is given, observing lists the PVCs of the group's namespace
  (one namespaced request) and, only when some configured PVC lacks the label, the PVs that carry it (one
  labelled cluster-scoped list). It reports each configured PVC that is absent from this cluster, labelled for
  another RG, or whose own and whose PV's labels both do not name this RG. Without ``pvc_names`` nothing is read
  and ``missing_volumes`` stays empty.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from adapters.base import (
    Backend,
    ReplicationAdapter,
    ReplicationStatus,
    Role,
    SyncPoint,
    VolumeState,
    WriteResult,
)
from adapters.documents import (
    ANNOTATION_PREFIX,
    field,
    flag,
    follows_peer,
    generation,
    guarded_patch,
    mapping,
    objects,
    require_peer,
    text,
    timestamp,
)
from clusters.api import PVCS, PVS, JsonObject, Resource
from clusters.errors import ConflictError, InvalidSpecError, NotReadyError, PreconditionFailedError
from clusters.watch import WatchScope

REPLICATION_GROUPS = Resource(
    "replication.storage.dell.com", "v1", "dellcsireplicationgroups", "DellCSIReplicationGroup", namespaced=False
)


class Action(StrEnum):
    """The PowerStore actions the adapter requests."""

    FAILOVER_REMOTE = "FAILOVER_REMOTE"
    UNPLANNED_FAILOVER_LOCAL = "UNPLANNED_FAILOVER_LOCAL"
    REPROTECT_LOCAL = "REPROTECT_LOCAL"


READY = "Ready"
ERROR = "Error"
INVALID = "Invalid"
DELETING = "Deleting"
IN_PROGRESS_SUFFIX = "_IN_PROGRESS"

SYNCHRONIZED = "SYNCHRONIZED"
FAILEDOVER = "FAILEDOVER"
SYNC_IN_PROGRESS = "SYNC_IN_PROGRESS"
FLOWING_LINK_STATES = frozenset({SYNCHRONIZED, SYNC_IN_PROGRESS})
UNHEALTHY_LINK_STATES = frozenset({"SUSPENDED", "INVALID", "UNKNOWN", "EMPTY", ""})
"""``EMPTY`` (a protection group without volumes) and an unreported link are not healthy either."""

POLL_SOURCE = (
    "the replicator's last poll of the array, not a data time (every --monitoring-interval, 60 s by default, "
    "skipped while an action runs): the data on the target can be older by up to that interval"
)
"""What ``lastSuccessfulUpdate`` is (csm-replication's replicator stamps it when it polls a SYNCHRONIZED link)."""

GROUP_LABEL = "replication.storage.dell.com/replicationGroupName"
"""The label on each PVC of an RG, whose value is the RG's name: the only per-PVC membership Dell records."""

REQUESTED_ACTION_ANNOTATION = f"{ANNOTATION_PREFIX}requested-action"
ACTION_BASELINE_ANNOTATION = f"{ANNOTATION_PREFIX}action-baseline"
REQUESTED_AT_ANNOTATION = f"{ANNOTATION_PREFIX}requested-at"
ACKNOWLEDGED_FAILURE_ANNOTATION = f"{ANNOTATION_PREFIX}acknowledged-failure"
"""The ``lastAction`` digest of a failed action after which this side was confirmed to keep the source role."""


def succeeded(action: str) -> str:
    """The ``lastAction.condition`` Dell writes when ``action`` succeeded."""
    return f"Action {action} succeeded"


def action_history_digest(document: JsonObject) -> str:
    """A digest of the RG's ``status.lastAction`` and ``status.conditions`` (the baseline of a request).

    The controller rewrites ``lastAction`` when it starts an action, while it retries and when it ends, and
    appends to ``conditions`` at the end, so any outcome recorded after a request changes the digest. Comparing
    digests needs no clock shared between the orchestrator and the controller.
    """
    history = {
        "lastAction": mapping(document, "status", "lastAction"),
        "conditions": objects(document, "status", "conditions"),
    }
    return _digest(history)


def last_action_digest(document: JsonObject) -> str:
    """A digest of the RG's ``status.lastAction`` alone: what an acknowledged failure is tied to.

    Unlike :func:`action_history_digest` it ignores ``conditions``, where the replicator also records role changes
    ("Replication Link State:IsSource changed ..."): the peer's later REPROTECT_LOCAL making this side the target
    must not revive the failure, whereas any new outcome on this RG (a started action clears ``lastAction``) ends it.
    """
    return _digest(mapping(document, "status", "lastAction"))


def _digest(value: object) -> str:
    """A short, stable digest of a JSON value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Progress:
    """What an RG says about its latest action.

    Attributes:
        current: the status speaks for the latest request.
        completed: the latest action ended successfully and none is pending.
        failure: the backend's report of a failed attempt, or ``None``.
        permanent: the controller has given up (otherwise it retries).
        note: what is going on, for the message.
    """

    current: bool
    completed: bool = False
    failure: str | None = None
    permanent: bool = False
    note: str = ""


@dataclass(frozen=True)
class Group:
    """One DellCSIReplicationGroup as read from the cluster."""

    document: JsonObject

    @property
    def name(self) -> str:
        """The RG's name."""
        return text(self.document, "metadata", "name")

    @property
    def ref(self) -> str:
        """``DellCSIReplicationGroup <name>``."""
        return REPLICATION_GROUPS.ref(self.name)

    @property
    def generation(self) -> int:
        """``metadata.generation``."""
        return generation(self.document)

    @property
    def action(self) -> str:
        """``spec.action``, upper-cased as the controller compares it (``""`` when idle)."""
        return text(self.document, "spec", "action").strip().upper()

    @property
    def state(self) -> str:
        """``status.state``."""
        return text(self.document, "status", "state")

    @property
    def running(self) -> str:
        """The action the state says is in progress (``FAILOVER_REMOTE_IN_PROGRESS`` -> ``FAILOVER_REMOTE``)."""
        return self.state.removesuffix(IN_PROGRESS_SUFFIX) if self.state.endswith(IN_PROGRESS_SUFFIX) else ""

    @property
    def link_state(self) -> str:
        """``replicationLinkState.state`` (``""`` when not reported)."""
        return text(self.document, "status", "replicationLinkState", "state")

    @property
    def is_source(self) -> bool | None:
        """``replicationLinkState.isSource``, ``None`` when not reported."""
        return flag(self.document, "status", "replicationLinkState", "isSource")

    @property
    def last_action(self) -> JsonObject:
        """``status.lastAction``."""
        return mapping(self.document, "status", "lastAction")

    @property
    def requested(self) -> str:
        """The action this orchestrator last requested on the RG (annotation), ``""`` if none."""
        return text(self.document, "metadata", "annotations", REQUESTED_ACTION_ANNOTATION)

    @property
    def baseline(self) -> str:
        """The action-history digest at the time of that request."""
        return text(self.document, "metadata", "annotations", ACTION_BASELINE_ANNOTATION)

    @property
    def acknowledged(self) -> bool:
        """Whether the current ``Error`` was acknowledged by a planned promotion that found this side the source."""
        digest = text(self.document, "metadata", "annotations", ACKNOWLEDGED_FAILURE_ANNOTATION)
        return bool(digest) and digest == last_action_digest(self.document)

    @property
    def last_action_time(self) -> datetime | None:
        """``status.lastAction.time``: when the controller recorded the last outcome."""
        return timestamp(field(self.document, "status", "lastAction", "time"))

    def polled_after(self, moment: datetime | None) -> bool:
        """Whether the replicator's last poll of the array (``lastSuccessfulUpdate``) is later than ``moment``."""
        polled = timestamp(field(self.document, "status", "replicationLinkState", "lastSuccessfulUpdate"))
        return polled is not None and moment is not None and polled > moment

    def became_target_after(self, moment: datetime | None) -> bool:
        """Whether the replicator recorded this side turning target (``IsSource changed ... to (false)``) later."""
        return moment is not None and any(
            text(entry, "condition").endswith("IsSource changed from (true) to (false)")
            and (changed := timestamp(entry.get("time"))) is not None
            and changed > moment
            for entry in objects(self.document, "status", "conditions")
        )

    def polled_since_last_action(self) -> bool:
        """Whether the replicator polled the array after the last action ended (its link state is newer)."""
        return self.polled_after(self.last_action_time)

    def progress(self) -> Progress:
        """Judge the latest action from spec, state, ``lastAction`` and the request annotations (module docstring)."""
        state, action, running = self.state, self.action, self.running
        error = text(self.last_action, "errorMessage")
        if not state:
            return Progress(current=False, note="not initialised by the replication controller yet")
        if state == DELETING:
            return Progress(current=True, failure="the RG is being deleted", permanent=True)
        if state == INVALID:
            reason = error or "the controller rejected its spec (is protectionGroupId set?)"
            return Progress(current=True, failure=f"the RG is Invalid: {reason}", permanent=True)
        if action:
            if running == action:
                if error:
                    since = text(self.last_action, "firstFailure") or "?"
                    failure = f"{action} failed, the controller retries (first failure {since}): {error}"
                    return Progress(current=True, failure=failure)
                return Progress(current=True)
            if running:
                note = f"{running} in progress; {action} requested meanwhile waits (Dell rejects it while one runs)"
                return Progress(current=True, note=note)
            return Progress(
                current=False, note=f"{action} requested; the controller has not started it (state {state})"
            )
        if running:
            return Progress(current=False, note=f"{running} ended; waiting for the controller to record the result")
        if self.requested and self.baseline == action_history_digest(self.document):
            failure = (
                f"{self.requested} was reset without running: the driver does not support it, or someone cleared "
                "spec.action (see the RG's Warning events)"
            )
            return Progress(current=True, failure=failure, permanent=True)
        condition = text(self.last_action, "condition")
        if state == ERROR:
            failed = condition or error or "state Error"
            if not self.acknowledged:
                return Progress(current=True, failure=failed, permanent=True)
            if not self.polled_since_last_action():
                return Progress(current=False, note=f"{failed}; waiting for the replicator's next poll of the array")
            if self.is_source is True:
                note = f"{failed}; acknowledged: the array, polled since, keeps this side the source"
            elif self.became_target_after(self.last_action_time):
                note = f"{failed}; acknowledged, and the array has since made this side the target"
            else:
                return Progress(current=True, failure=failed, permanent=True)
            return Progress(current=True, completed=True, note=note)
        if state == READY:
            return Progress(current=True, completed=True, note=condition)
        return Progress(current=False, note=f"unknown state {state}")

    def role(self) -> Role:
        """The role ``isSource`` stands for."""
        if self.is_source is None:
            return Role.UNKNOWN
        return Role.PRIMARY if self.is_source else Role.SECONDARY


def unlabelled_pvcs(
    rg_name: str, expected: Sequence[str], pvcs: Sequence[JsonObject], rg_volumes: Sequence[str] = ()
) -> dict[str, str]:
    """The expected PVCs that are not volumes of the RG ``rg_name``, each with the reason.

    Args:
        rg_name: the RG's name on this cluster (the value of :data:`GROUP_LABEL` on its volumes).
        expected: the group's configured PVC names.
        pvcs: the PVCs of the group's namespace on this cluster.
        rg_volumes: the names of the PVs labelled for the RG (an unlabelled PVC bound to one of them is in it).

    Returns:
        ``PVC name -> why it is not in the RG``, in the order of ``expected``.
    """
    by_name = {text(pvc, "metadata", "name"): pvc for pvc in pvcs if text(pvc, "metadata", "name")}
    missing: dict[str, str] = {}
    for name in expected:
        pvc = by_name.get(name)
        if pvc is None:
            missing[name] = "no such PVC on this cluster"
            continue
        label = mapping(pvc, "metadata", "labels").get(GROUP_LABEL)
        if label == rg_name or (not label and text(pvc, "spec", "volumeName") in rg_volumes):
            continue
        missing[name] = f"labelled {GROUP_LABEL}={label}" if label else f"no {GROUP_LABEL} label on it or its PV"
    return missing


def needs_pv_labels(rg_name: str, expected: Sequence[str], pvcs: Sequence[JsonObject]) -> bool:
    """Whether some expected PVC lacks the RG label, so that only its PV can tell (see :func:`unlabelled_pvcs`)."""
    labelled = {
        text(pvc, "metadata", "name") for pvc in pvcs if mapping(pvc, "metadata", "labels").get(GROUP_LABEL) == rg_name
    }
    return any(name not in labelled for name in expected)


def summarise(cluster: str, group: Group, unreplicated: Mapping[str, str] | None = None) -> ReplicationStatus:
    """Normalise an RG into one :class:`ReplicationStatus` (the rules are in the module docstring).

    Args:
        cluster: where it was read.
        group: the RG.
        unreplicated: configured PVCs that are not volumes of the RG, with the reason (:func:`unlabelled_pvcs`);
            they become ``missing_volumes`` and a note in the message.
    """
    unreplicated = unreplicated or {}
    progress = group.progress()
    last_poll = (
        timestamp(field(group.document, "status", "replicationLinkState", "lastSuccessfulUpdate"))
        if group.link_state == SYNCHRONIZED
        else None
    )
    link = group.link_state
    failed = group.state == INVALID or (group.state == ERROR and not (progress.current and progress.completed))
    healthy = link not in UNHEALTHY_LINK_STATES and not failed
    side = {Role.PRIMARY: "source", Role.SECONDARY: "target", Role.UNKNOWN: "side unknown"}[group.role()]
    parts = [group.state or "no state", side, f"link {link or 'not reported'}"]
    parts += [detail for detail in (progress.failure, progress.note) if detail]
    if unreplicated:
        parts.append(
            "not in the RG, so not replicated: " + ", ".join(f"{pvc} ({why})" for pvc, why in unreplicated.items())
        )
    return ReplicationStatus(
        cluster=cluster,
        backend=Backend.POWERSTORE,
        role=group.role() if progress.current else Role.UNKNOWN,
        current=progress.current,
        completed=progress.current and progress.completed,
        healthy=healthy,
        replicating=link == SYNCHRONIZED,
        syncing=link == SYNC_IN_PROGRESS,
        replication_stopped=link == FAILEDOVER,
        failure=progress.failure,
        failure_permanent=progress.failure is not None and progress.permanent,
        last_sync_time=last_poll,
        last_sync_source=POLL_SOURCE if last_poll else "",
        message="; ".join(parts),
        volumes=(
            VolumeState(
                name=group.name,
                role=group.role(),
                state=group.state,
                message=f"link {link or 'not reported'}",
                healthy=healthy,
            ),
        ),
        missing_volumes=tuple(unreplicated),
        generations={group.ref: group.generation},
    )


class PowerStoreAdapter(ReplicationAdapter):
    """A group's DellCSIReplicationGroup on one cluster (see the module docstring for the rules)."""

    backend = Backend.POWERSTORE
    reprotect_acts_on_peer = True

    def _read(self) -> Group:
        if not self.target.name:
            raise InvalidSpecError(
                "a PowerStore group needs the name of its DellCSIReplicationGroup (target.name)", cluster=self.cluster
            )
        return Group(self.api.get(REPLICATION_GROUPS, self.target.name))

    def watch_scopes(self) -> tuple[WatchScope, ...]:
        """The RG and, when PVC names are configured, the PVCs of the group's namespace."""
        if not self.target.name:
            return ()
        scopes = [WatchScope(REPLICATION_GROUPS, name=self.target.name)]
        if self.target.pvc_names:
            scopes.append(WatchScope(PVCS, self.target.namespace))
        return tuple(scopes)

    def observe(self) -> ReplicationStatus:
        """Read the RG and normalise its status.

        With ``target.pvc_names``, also list the PVCs of ``target.namespace`` and report each configured PVC that
        is not a volume of this RG (by its own or its PV's :data:`GROUP_LABEL`, or does not exist here) in
        ``missing_volumes``.
        """
        group = self._read()
        unreplicated: dict[str, str] = {}
        if self.target.pvc_names:
            pvcs = self.api.list(PVCS, self.target.namespace)
            rg_volumes: list[str] = []
            if needs_pv_labels(group.name, self.target.pvc_names, pvcs):
                labelled = self.api.list(PVS, label_selector=f"{GROUP_LABEL}={group.name}")
                rg_volumes = [text(pv, "metadata", "name") for pv in labelled]
            unreplicated = unlabelled_pvcs(group.name, self.target.pvc_names, pvcs, rg_volumes)
        return summarise(self.cluster, group, unreplicated)

    @staticmethod
    def resync_complete(status: ReplicationStatus) -> bool:
        """Whether this side is a settled target whose link is ``SYNCHRONIZED`` again.

        After ``FAILOVER_REMOTE`` the old source is already a settled Secondary before any re-protection, so the
        generic predicate would hold at once; only a synchronized link proves the peer's ``REPROTECT_LOCAL`` worked.
        """
        return follows_peer(status)

    def demote(self, *, peer: ReplicationAdapter | None = None) -> WriteResult:
        """Request ``FAILOVER_REMOTE`` on this (the source's) RG; nothing once this side is no longer the source.

        The array ships the last writes before the peer becomes the source, so :meth:`final_sync_complete` on
        this side (Secondary, ``Ready``, the request recorded as succeeded) is the final sync. ``peer`` is not
        needed: the one action covers both sides.
        """
        return self._request(Action.FAILOVER_REMOTE, done=lambda group: group.is_source is False)

    def promote(
        self, *, force: bool, sync_point: SyncPoint | None = None, peer: ReplicationAdapter | None = None
    ) -> WriteResult:
        """Make this side the source.

        Forced (unplanned): ``UNPLANNED_FAILOVER_LOCAL`` on this RG, nothing once it reports ``isSource``. Planned:
        nothing when this side already is the source (the peer's ``FAILOVER_REMOTE`` did it), otherwise
        ``peer.demote()``, i.e. ``FAILOVER_REMOTE`` on the peer's RG. ``sync_point`` is not used.

        Raises:
            PreconditionFailedError: planned, this side is not the source yet and no PowerStore ``peer`` is given.
            ConflictError: planned, and an action is pending on this RG.
        """
        if force:
            return self._request(Action.UNPLANNED_FAILOVER_LOCAL, done=lambda group: group.is_source is True)
        group = self._read()
        self._refuse_while_busy(group, "a planned promotion")
        if group.is_source is True:
            if group.state == ERROR and not group.acknowledged:
                return self._acknowledge_failure(group, peer, "a planned promotion")
            return WriteResult(cluster=self.cluster, changed=False, generations={group.ref: group.generation})
        peer = require_peer(
            peer,
            Backend.POWERSTORE,
            cluster=self.cluster,
            purpose="a planned PowerStore promotion (FAILOVER_REMOTE on the source's RG)",
        )
        return peer.demote()

    def reprotect(self, *, resync: bool, peer: ReplicationAdapter) -> WriteResult:
        """Make this side follow ``peer``: ``REPROTECT_LOCAL`` on the peer's RG (:meth:`protect_peer` there).

        ``resync`` does not change the write (module docstring). The returned result is the peer's cluster's. As
        the compensation of a planned failover (``target.reprotect(peer=source)`` after ``FAILOVER_REMOTE``) this
        makes the original source the source again and resyncs the target from it.

        Raises:
            PreconditionFailedError: the peer is not a PowerStore adapter.
        """
        peer = require_peer(peer, Backend.POWERSTORE, cluster=self.cluster, purpose="re-protecting a PowerStore group")
        if not isinstance(peer, PowerStoreAdapter):
            raise PreconditionFailedError(
                f"re-protecting a PowerStore group needs a PowerStoreAdapter peer, got {type(peer).__name__}",
                cluster=self.cluster,
            )
        return peer.protect_peer(follower=self)

    def protect_peer(self, follower: ReplicationAdapter | None = None) -> WriteResult:
        """Request ``REPROTECT_LOCAL`` on this RG: this side is (or becomes again) the source and resyncs its peer.

        Nothing is written once this side is the source and its link carries data again, except that an ``Error``
        left by an earlier failed action is then acknowledged (module docstring), ``follower`` (the side that
        follows this one) confirming it is the target. When this side is not the source (undoing a planned
        failover whose target never ran the application), the array makes it the source again and overwrites the
        peer: the caller of :meth:`reprotect` declares that this side holds the data.
        """
        group = self._read()
        reprotected = group.is_source is True and group.link_state in FLOWING_LINK_STATES
        if reprotected and follower is not None and group.state == ERROR and not group.acknowledged:
            return self._acknowledge_failure(group, follower, "re-protecting after a failed action")
        return self._request(
            Action.REPROTECT_LOCAL,
            done=lambda read: read.is_source is True and read.link_state in FLOWING_LINK_STATES,
            group=group,
        )

    def _acknowledge_failure(self, group: Group, peer: ReplicationAdapter | None, purpose: str) -> WriteResult:
        """Accept a failed action that left this side the source, for ``purpose``.

        Two callers: the planned promotion undoing a failed demote, and a reprotect that finds this side the
        source with its link carrying data. Upstream keeps an RG in ``Error`` until another action succeeds (and
        accepts new actions from it). When the peer's RG confirms it is the target, this side still holds the
        data and may run the application: the failure is recorded as acknowledged (an annotation carrying the
        digest of ``lastAction``, so that any later outcome voids it) and the status counts as completed once the
        replicator has polled the array since the failure. Anything else, and the RG's Error stands.

        Both RGs must have been polled by their replicators after the failure (``lastSuccessfulUpdate`` later
        than this side's ``lastAction.time``; the two replicators' clocks are assumed close), with no action
        pending on either and the peer's link answering.

        Raises:
            PreconditionFailedError: no PowerStore peer, or the peer's RG reports itself the source too.
            NotReadyError: a poll since the failure is missing on either side, or the peer is busy or its link
                does not answer (retryable: the view is not fresh enough yet).
            ConflictError: an action is requested on this RG.
        """
        peer = require_peer(peer, Backend.POWERSTORE, cluster=self.cluster, purpose=purpose)
        self._refuse_while_busy(group, purpose)
        other = Group(peer.api.get(REPLICATION_GROUPS, peer.target.name or group.name))
        # The peer's isSource is only as fresh as its replicator's last successful poll (none while an action is
        # set or the array does not answer): acknowledge on a view of both sides taken after the failure.
        stale = (
            f"{other.action or other.running} is pending there"
            if other.action or other.running
            else f"its link is {other.link_state or 'not reported'}"
            if other.link_state in UNHEALTHY_LINK_STATES
            else "its replicator has not polled the array since the failure"
            if not other.polled_after(group.last_action_time)
            else ""
        )
        not_yet = (
            "the replicator has not polled the array since it failed; retry after its next poll"
            if not group.polled_since_last_action()
            else f"the peer's RG on {peer.cluster} cannot confirm it is the target yet ({stale}); retry"
            if stale
            else ""
        )
        if not_yet:
            raise NotReadyError(
                f"cannot acknowledge the failed action on {group.ref} for {purpose}: {not_yet}",
                cluster=self.cluster,
                object_ref=group.ref,
                condition=group.state,
            )
        if other.is_source is not False:
            seen = "not reported" if other.is_source is None else "the source too"
            raise PreconditionFailedError(
                f"{group.ref} is in Error after a failed action ({text(group.last_action, 'condition')}) and the "
                f"peer's RG on {peer.cluster} is {seen}: which side holds the data needs an operator",
                cluster=self.cluster,
                object_ref=group.ref,
                condition=group.state,
            )
        body = {"metadata": {"annotations": {ACKNOWLEDGED_FAILURE_ANNOTATION: last_action_digest(group.document)}}}
        document = guarded_patch(self.api, REPLICATION_GROUPS, group.document, body)
        return WriteResult(cluster=self.cluster, changed=True, generations={group.ref: generation(document)})

    def _refuse_while_busy(self, group: Group, wanted: str) -> None:
        """Raise when an action is pending or still ending on the RG (Dell rejects a new one meanwhile)."""
        if group.action:
            raise ConflictError(
                f"cannot start {wanted}: {group.action} is requested on this RG and Dell rejects a new action while "
                "one runs; retry once it has finished",
                cluster=self.cluster,
                object_ref=group.ref,
                condition=group.state or None,
            )
        if group.running:
            raise NotReadyError(
                f"cannot start {wanted}: {group.running} is ending; retry once the RG is Ready",
                cluster=self.cluster,
                object_ref=group.ref,
                condition=group.state,
            )

    def _request(self, action: Action, *, done: Callable[[Group], bool], group: Group | None = None) -> WriteResult:
        """Set ``spec.action`` on this RG unless it is pending or its result already shows (module docstring).

        ``group``: the RG as the caller has just read it (otherwise it is read here).
        """
        group = group or self._read()
        unchanged = WriteResult(cluster=self.cluster, changed=False, generations={group.ref: group.generation})
        if group.action == action:
            return unchanged
        self._refuse_while_busy(group, action)
        if group.state == DELETING or group.state == INVALID:
            raise PreconditionFailedError(
                f"cannot request {action}: the RG is {group.state}",
                cluster=self.cluster,
                object_ref=group.ref,
                condition=group.state,
            )
        if not group.state or group.is_source is None:
            raise NotReadyError(
                f"cannot request {action}: the RG is not initialised yet (state {group.state or 'empty'}, "
                f"isSource {'not reported' if group.is_source is None else group.is_source})",
                cluster=self.cluster,
                object_ref=group.ref,
            )
        if done(group):
            return unchanged
        annotations = {
            REQUESTED_ACTION_ANNOTATION: str(action),
            ACTION_BASELINE_ANNOTATION: action_history_digest(group.document),
            REQUESTED_AT_ANNOTATION: datetime.now(UTC).isoformat(timespec="seconds"),
        }
        body = {"metadata": {"annotations": annotations}, "spec": {"action": str(action)}}
        document = guarded_patch(self.api, REPLICATION_GROUPS, group.document, body)
        return WriteResult(cluster=self.cluster, changed=True, generations={group.ref: generation(document)})
