"""The csi-addons adapter, and the one implementation it shares with the unified adapter.

A group is one VolumeGroupReplication per cluster (or one VolumeReplication when the group is a single PVC).
Role changes are requests in ``spec.replicationState``; the controller reports the outcome in ``status.state`` and
``status.conditions``, which :func:`read_status` normalises with the predicates Ramen uses (reference/backends.md,
section 1). The unified replication operator passes csi-addons status through under other field names, so both
adapters are :class:`CsiAddonsFamilyAdapter` with a different :class:`ReplicationFields`; nothing else differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from adapters.base import (
    Backend,
    PeerInfo,
    ReplicationAdapter,
    ReplicationStatus,
    ReplicationTarget,
    Role,
    SyncPoint,
    VolumeState,
    WriteResult,
)
from adapters.conditions import (
    COMPLETED,
    DEGRADED,
    FALSE,
    REPLICATING,
    RESYNCING,
    STICKY,
    TRUE,
    VALIDATED,
    Condition,
    Conditions,
    as_generation,
)
from clusters.api import ClusterApi, JsonObject, Resource
from clusters.errors import InvalidSpecError, ObjectMissingError
from clusters.watch import WatchScope

__all__ = [
    "CSI_ADDONS_FIELDS",
    "CsiAddonsAdapter",
    "CsiAddonsFamilyAdapter",
    "ReplicationFields",
    "inner_replication_lag",
    "read_status",
    "reported_role",
]

Path = tuple[str, ...]


@dataclass(frozen=True)
class ReplicationFields:
    """Where one csi-addons-style API keeps what the adapter reads and writes.

    Attributes:
        group: the VolumeGroupReplication kind (a group of PVCs).
        volume: the VolumeReplication kind (one PVC, ``ReplicationTarget.single_volume``).
        volume_pvc: path to the PVC name in a VolumeReplication.
        group_pvcs: path to the list of ``{name: <pvc>}`` references in a VolumeGroupReplication.
        replication_state: path to the desired role (``primary``, ``secondary``, ``resync``).
        auto_resync: path to the flag that lets the controller discard this side's divergent writes.
        sticky_conditions: condition types the controller leaves untouched on most transitions; a stale one is
            disregarded instead of holding the status back (see :class:`adapters.conditions.Conditions`).
        controller: who writes the status, for messages.
    """

    group: Resource
    volume: Resource
    volume_pvc: Path
    group_pvcs: Path = ("status", "persistentVolumeClaimsRefList")
    replication_state: Path = ("spec", "replicationState")
    auto_resync: Path = ("spec", "autoResync")
    sticky_conditions: frozenset[str] = STICKY
    controller: str = "the csi-addons controller"


CSI_ADDONS_GROUP = "replication.storage.openshift.io"

CSI_ADDONS_FIELDS = ReplicationFields(
    group=Resource(CSI_ADDONS_GROUP, "v1alpha1", "volumegroupreplications", "VolumeGroupReplication"),
    volume=Resource(CSI_ADDONS_GROUP, "v1alpha1", "volumereplications", "VolumeReplication"),
    volume_pvc=("spec", "dataSource", "name"),
)
"""csi-addons ``replication.storage.openshift.io/v1alpha1``."""

# ``resync`` is a request to stay Secondary and resync; the unified operator may copy it into status.state.
CSI_ADDONS_SYNC_SOURCE = (
    "lastSyncTime on the Primary, which csi-addons refreshes only every schedulingInterval/2 of the class (one "
    "hour when it sets none): the lag is at least as old as that refresh"
)
"""What a csi-addons ``lastSyncTime`` is (the VR controller's periodic refresh, kept on a Secondary until demoted)."""

_ROLES = {"primary": Role.PRIMARY, "secondary": Role.SECONDARY, "resync": Role.SECONDARY}

_ACTIONS = {
    "FailedToPromote": "promotion",
    "FailedToDemote": "demotion",
    "FailedToResync": "resync",
    "primary": "promotion",
    "secondary": "demotion",
    "resync": "resync",
}


def reported_role(state: object) -> Role:
    """The role in ``status.state``, case-insensitively.

    csi-addons writes ``Primary``/``Secondary``/``Unknown``; the unified operator may copy ``spec.replicationState``
    (``primary``, ``secondary``, ``resync``) instead. Anything else, including an empty state, is Unknown.
    """
    return _ROLES.get(str(state or "").strip().lower(), Role.UNKNOWN)


def read_status(
    document: JsonObject,
    *,
    cluster: str,
    backend: Backend,
    resource: Resource,
    fields: ReplicationFields,
    single_volume: bool = False,
    expected_pvcs: Sequence[str] = (),
) -> ReplicationStatus:
    """Normalise one VolumeGroupReplication or VolumeReplication into a :class:`ReplicationStatus`.

    Args:
        document: the object as the API server returns it.
        cluster: where it was read.
        backend: the backend it belongs to.
        resource: its kind (names the object in messages and ``generations``).
        fields: the API's field names.
        single_volume: the object is a VolumeReplication (its PVC is in the spec, not in the status).
        expected_pvcs: the group's configured PVCs; those missing from the object's PVC list are reported in
            ``missing_volumes`` and as unhealthy volumes (state ``not replicated``), because a failover would leave
            them behind. Once the controller has reconciled the latest generation, an empty or absent PVC list
            means the group replicates none of them (all are missing); before that the configured PVCs are shown
            without being judged.

    Returns:
        The observation. ``role`` is Unknown and ``current`` false until the controller has reconciled the latest
        spec generation in ``status.observedGeneration`` and in every (non-sticky) condition.
    """
    metadata = document.get("metadata") or {}
    name = str(metadata.get("name") or "?")
    ref = resource.ref(name, metadata.get("namespace"))
    generation = as_generation(metadata.get("generation"))
    raw_status = document.get("status")
    status: JsonObject = raw_status if isinstance(raw_status, dict) else {}
    observed = as_generation(status.get("observedGeneration"))
    conditions = Conditions(status.get("conditions"), generation, fields.sticky_conditions)
    state = str(status.get("state") or "")
    reported = reported_role(state)

    status_current = observed is not None and observed == generation
    stale = conditions.stale() if status_current else []
    current = status_current and not stale

    validated = _current_validation(conditions)
    # Validated is optional (csi-addons < 0.10 never writes it); when current it must be True.
    completed = conditions.is_true(COMPLETED) and (validated is None or validated.status == TRUE)
    healthy = conditions.is_false(DEGRADED)
    syncing = conditions.is_true(RESYNCING)
    replicating = conditions.is_true(REPLICATING)

    # A failure written for an older spec is history, not an answer to the latest request.
    failure, unmet = _failure(conditions, str(status.get("message") or "")) if status_current else (None, False)
    # Only the primary side reports its last sync; a Secondary keeps an old value until its resync completes.
    last_sync = _timestamp(status.get("lastSyncTime")) if reported is Role.PRIMARY else None

    desired = str(_dig(document, fields.replication_state) or "")
    auto_resync = _dig(document, fields.auto_resync) is True
    if observed is None:
        summary = _never_observed(generation, bool(status), fields)
    elif not status_current:
        summary = (
            f"status is for generation {observed}, object is at generation {generation}: {fields.controller} has "
            f"not reconciled the latest spec yet (last reported state: {state or 'none'})"
        )
    elif failure is not None:
        action = _action(conditions.current(COMPLETED), desired)
        if unmet:
            summary = (
                f"{_state_word(reported, state)}, {action} failing on an unmet prerequisite: an operator must fix "
                f"it, {fields.controller} retrying until then ({failure})"
            )
        else:
            summary = f"{_state_word(reported, state)}, {action} failing, {fields.controller} retrying ({failure})"
    elif stale:
        summary = f"{_state_word(reported, state)}, not current yet: " + ", ".join(
            f"{c.label()} is for generation {c.observed_generation}" for c in stale
        )
        summary += f" (object at generation {generation})"
    else:
        summary = _steady_summary(reported, state, conditions, completed, last_sync)

    if current and desired and reported_role(desired) not in (reported, Role.UNKNOWN):
        summary += f"; spec asks {desired}"
    if auto_resync and reported_role(desired) is Role.SECONDARY:
        summary += "; autoResync=true"

    role = reported if current else Role.UNKNOWN
    volumes, missing = _volumes(
        document,
        fields,
        single_volume=single_volume,
        expected=expected_pvcs,
        role=role,
        state=state,
        healthy=healthy,
        health_note="" if healthy else _health_note(conditions),
        reconciled=status_current,
        fallback_name=name,
    )
    if missing and status_current:
        summary += f"; not in the group, so not replicated: {', '.join(missing)}"

    return ReplicationStatus(
        cluster=cluster,
        backend=backend,
        role=role,
        current=current,
        completed=completed,
        healthy=healthy,
        replicating=replicating,
        syncing=syncing,
        failure=f"{ref}: {failure}" if failure else None,
        # csi-addons never gives up: it retries even after PrerequisiteNotMet, so the caller's timeout decides.
        failure_permanent=False,
        last_sync_time=last_sync,
        last_sync_source=(
            (CSI_ADDONS_SYNC_SOURCE if backend is Backend.CSI_ADDONS else f"lastSyncTime on {ref}") if last_sync else ""
        ),
        message=f"{ref}: {summary}",
        volumes=volumes,
        missing_volumes=tuple(missing),
        generations={ref: generation} if generation is not None else {},
    )


def _health_note(conditions: Conditions) -> str:
    """Why the volumes count as unhealthy: the current Degraded condition, or its absence."""
    degraded = conditions.current(DEGRADED)
    return degraded.describe() if degraded is not None else "no current Degraded condition"


def _failure(conditions: Conditions, status_message: str) -> tuple[str | None, bool]:
    """The current failed attempt, verbatim enough to act on, and whether a prerequisite is unmet (Validated=False)."""
    validated = _current_validation(conditions)
    completed = conditions.current(COMPLETED)
    unmet = validated is not None and validated.status == FALSE
    failing = completed is not None and completed.status == FALSE
    if not (unmet or failing):
        return None, False
    parts = [c.describe() for c in (validated if unmet else None, completed if failing else None) if c]
    # Newer csi-addons keeps Completed's message generic and puts the driver's error on Degraded=True/Error.
    degraded = conditions.current(DEGRADED)
    if degraded is not None and degraded.status == TRUE and degraded.reason == "Error" and degraded.message:
        parts.append(degraded.describe())
    text = "; ".join(parts)
    if status_message and status_message not in text:
        text += f"; status: {status_message}"
    return text, unmet


def _current_validation(conditions: Conditions) -> Condition | None:
    """The current Validated condition, unless a later attempt has completed since it failed.

    csi-addons writes Validated=False/PrerequisiteNotMet (with Completed=False) when enabling replication fails on a
    precondition, retries, and on success writes Completed=True without touching Validated (status.go,
    setPromotedCondition); a VGR then re-stamps that old Validated=False with its latest generation. So a current
    Completed=True supersedes a Validated=False.
    """
    validated = conditions.current(VALIDATED)
    if validated is not None and validated.status == FALSE and conditions.is_true(COMPLETED):
        return None
    return validated


def _state_word(reported: Role, state: str) -> str:
    """The reported role as operators read it (``Primary`` even when the unified operator wrote ``primary``)."""
    if reported is not Role.UNKNOWN:
        return reported.value
    return f"state {state}" if state else "no state"


def _action(completed: Condition | None, desired: str) -> str:
    reason = completed.reason if completed is not None and completed.status == FALSE else ""
    return _ACTIONS.get(reason) or _ACTIONS.get(desired.lower(), "role change")


def _never_observed(generation: int | None, has_status: bool, fields: ReplicationFields) -> str:
    what = "status carries no observedGeneration" if has_status else "status is empty"
    return (
        f"generation {generation} never observed by {fields.controller} ({what}); if it stays like this, check the "
        "controller's logs and the object's class and content objects (kubernetes-csi-addons issue 1076: a failing "
        "VolumeGroupReplicationContent leaves the status empty)"
    )


def _steady_summary(
    reported: Role, state: str, conditions: Conditions, completed: bool, last_sync: datetime | None
) -> str:
    """The one-liner for a current status without a failure."""
    if reported is Role.UNKNOWN:
        details = conditions.labels(COMPLETED, DEGRADED, RESYNCING)
        return f"state {state or 'empty'}, role unknown" + (f" ({details})" if details else "")
    if not completed:
        completed_condition = conditions.current(COMPLETED)
        validated = conditions.current(VALIDATED)
        if validated is not None and validated.status != TRUE:
            return f"{reported}, not validated yet ({validated.label()})"
        if completed_condition is None:
            return f"{reported}, no Completed condition yet"
        return f"{reported}, role change not completed ({completed_condition.label()})"
    if reported is Role.PRIMARY:
        parts = ["Primary, promoted"]
        degraded = conditions.current(DEGRADED)
        parts.append(
            "healthy"
            if conditions.is_false(DEGRADED)
            else f"degraded ({degraded.label() if degraded else 'no Degraded condition'})"
        )
        replicating = conditions.current(REPLICATING)
        if replicating is not None:
            parts.append("replicating" if replicating.status == TRUE else f"not replicating ({replicating.label()})")
        if last_sync is not None:
            parts.append(f"last sync {last_sync.isoformat()}")
        return ", ".join(parts)
    if conditions.is_true(RESYNCING):
        return f"Secondary, final sync running ({conditions.labels(RESYNCING, DEGRADED)})"
    if conditions.is_false(DEGRADED) and conditions.is_false(RESYNCING):
        return f"Secondary, final sync complete ({conditions.labels(DEGRADED, RESYNCING)})"
    details = conditions.labels(DEGRADED, RESYNCING) or "no Degraded/Resyncing condition yet"
    return f"Secondary, demoted, waiting for the sync pass ({details})"


def _volumes(
    document: JsonObject,
    fields: ReplicationFields,
    *,
    single_volume: bool,
    expected: Sequence[str],
    role: Role,
    state: str,
    healthy: bool,
    health_note: str,
    reconciled: bool,
    fallback_name: str,
) -> tuple[tuple[VolumeState, ...], list[str]]:
    """One VolumeState per PVC the object replicates, plus the expected PVCs it does not list.

    The object's conditions are the only health the API reports, so every listed PVC shares them (``healthy``,
    and ``health_note`` as the message of an unhealthy one).
    """
    if single_volume:
        names = [str(_dig(document, fields.volume_pvc) or fallback_name)]
    else:
        refs = _dig(document, fields.group_pvcs)
        names = (
            [str(r["name"]) for r in refs if isinstance(r, dict) and r.get("name")] if isinstance(refs, list) else []
        )
    shown = state or "unobserved"
    if not names and not reconciled:
        # Nothing reported yet (status never observed): show the configured PVCs without judging them.
        return tuple(VolumeState(name=n, role=role, state=shown, healthy=healthy) for n in expected), []
    volumes = [VolumeState(name=n, role=role, state=shown, message=health_note, healthy=healthy) for n in names]
    missing = [n for n in dict.fromkeys(expected) if n not in names]
    why = (
        f"{'.'.join(fields.volume_pvc)} is {names[0]}, not this PVC"
        if single_volume
        else f"not listed in {'.'.join(fields.group_pvcs)}: check the PVC's labels against the group's selector"
    )
    volumes += [
        VolumeState(name=n, role=Role.UNKNOWN, state="not replicated", message=why, healthy=False) for n in missing
    ]
    return tuple(volumes), missing


def _dig(document: object, path: Path) -> object:
    for key in path:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _merge_patch(*settings: tuple[Path, object]) -> JsonObject:
    """A merge-patch body setting each path to its value."""
    body: JsonObject = {}
    for path, value in settings:
        node = body
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return body


class CsiAddonsFamilyAdapter(ReplicationAdapter):
    """A group replicated through a csi-addons-style VolumeGroupReplication (or VolumeReplication).

    Subclasses set ``backend`` and ``fields``; that is the whole difference between csi-addons and unified.

    Args:
        api: the cluster's API.
        target: ``name`` is the VolumeGroupReplication (or, with ``single_volume``, the VolumeReplication) in
            ``namespace``; ``pvc_names``, when given, are checked against the PVCs the object reports (those it
            does not list end up in ``ReplicationStatus.missing_volumes``, see :func:`read_status`).

    Raises:
        InvalidSpecError: the target is for another backend or names no object.
    """

    fields: ClassVar[ReplicationFields]

    def __init__(self, api: ClusterApi, target: ReplicationTarget) -> None:
        super().__init__(api, target)
        kind = self.fields.volume.kind if target.single_volume else self.fields.group.kind
        if target.backend is not self.backend:
            raise InvalidSpecError(
                f"a {target.backend} group cannot be driven by the {self.backend} adapter",
                cluster=api.cluster,
                condition=f"backend={target.backend}",
            )
        if not target.name:
            raise InvalidSpecError(
                f"the group in namespace {target.namespace} names no {kind}: set its replication object name",
                cluster=api.cluster,
                condition="name missing",
            )
        self.name: str = target.name
        self.resource = self.fields.volume if target.single_volume else self.fields.group
        self.ref = self.resource.ref(self.name, target.namespace)

    def watch_scopes(self) -> tuple[WatchScope, ...]:
        """The one replication object."""
        return (WatchScope(self.resource, self.target.namespace, name=self.name),)

    def observe(self) -> ReplicationStatus:
        """Read the object and normalise its status (see :func:`read_status`).

        Raises:
            ObjectMissingError: the object does not exist on this cluster.
        """
        return self._read(self._document())

    def _document(self) -> JsonObject:
        try:
            return self.api.get(self.resource, self.name, self.target.namespace)
        except ObjectMissingError as exc:
            raise self._missing(exc) from exc

    def _read(self, document: JsonObject) -> ReplicationStatus:
        return read_status(
            document,
            cluster=self.cluster,
            backend=self.backend,
            resource=self.resource,
            fields=self.fields,
            single_volume=self.target.single_volume,
            expected_pvcs=self.target.pvc_names,
        )

    def demote(self, *, peer: ReplicationAdapter | None = None) -> WriteResult:
        """Request Secondary with ``autoResync: false``: the controller demotes, then the peer catches up.

        Never a forced resync: a planned demotion that discards this side's writes has lost data in the field
        (ceph-csi issue 3209). Forced resync is only for :meth:`reprotect` after an unplanned failover.
        """
        return self._ensure(
            _merge_patch((self.fields.replication_state, "secondary"), (self.fields.auto_resync, False))
        )

    def promote(
        self, *, force: bool, sync_point: SyncPoint | None = None, peer: ReplicationAdapter | None = None
    ) -> WriteResult:
        """Request Primary.

        The API has no force field, so ``force`` changes nothing here: when a plain promotion fails with a
        precondition error (typically: the peer is still Primary) the controller retries with force *on its own*.
        The caller must therefore have confirmed the peer Secondary, or declared it lost and fenced, before calling
        this: asking for ``primary`` is already a potential forced promotion.
        """
        return self._ensure(_merge_patch((self.fields.replication_state, "primary")))

    def reprotect(self, *, resync: bool, peer: ReplicationAdapter) -> WriteResult:
        """Request Secondary following ``peer``, with ``autoResync`` = ``resync``.

        ``resync=True`` lets the controller discard this side's divergent writes (the old primary's after an
        unplanned failover); after a planned failover it must be false.
        """
        return self._ensure(
            _merge_patch((self.fields.replication_state, "secondary"), (self.fields.auto_resync, resync))
        )

    def peer_info(self) -> PeerInfo:
        """Nothing: the storage links the peers itself."""
        return PeerInfo()

    @staticmethod
    def still_syncing(status: ReplicationStatus) -> bool:
        """Whether this side is demoted and its final sync is running (Completed=True, Resyncing=True, Degraded)."""
        return (
            status.current
            and status.role is Role.SECONDARY
            and status.completed
            and status.syncing
            and not status.healthy
        )

    def _ensure(self, desired: JsonObject) -> WriteResult:
        try:
            changed, document = self.ensure_fields(self.resource, self.name, desired, self.target.namespace)
        except ObjectMissingError as exc:
            raise self._missing(exc) from exc
        generation = as_generation((document.get("metadata") or {}).get("generation"))
        return WriteResult(
            cluster=self.cluster,
            changed=changed,
            generations={self.ref: generation} if generation is not None else {},
        )

    def _missing(self, exc: ObjectMissingError) -> ObjectMissingError:
        hint = "create it or fix the group's replication name"
        if "could not find the requested resource" in exc.message:
            # The kind itself is unknown to the API server, not just this object.
            hint = f"install the {self.resource.group} CRDs and the replication controller"
        return ObjectMissingError(
            f"{self.ref} not found on {self.cluster}: {hint} (API server: {exc.message})",
            cluster=self.cluster,
            object_ref=self.ref,
            condition=exc.condition,
        )


class CsiAddonsAdapter(CsiAddonsFamilyAdapter):
    """csi-addons (Ceph RBD and other CSI drivers): ``replication.storage.openshift.io/v1alpha1``.

    A VolumeGroupReplication's status is only a copy of its inner VolumeReplication's (named in
    ``spec.volumeReplicationName``), re-stamped with the VGR's generation on every VGR reconcile, before the VR
    controller has acted on the request passed on to it (kubernetes-csi-addons v0.14.0
    volumegroupreplication_controller.go, "Update VGR status based on VR Status"). So the VGR's own
    ``observedGeneration`` proves nothing: its status counts as current only once that VR asks what the VGR asks and
    reports on its own latest generation, and the VGR holds that VR status (:func:`inner_replication_lag`).
    """

    backend = Backend.CSI_ADDONS
    fields = CSI_ADDONS_FIELDS

    def observe(self) -> ReplicationStatus:
        """Read the object (and a VGR's inner VolumeReplication) and normalise its status.

        Raises:
            ObjectMissingError: the object does not exist on this cluster.
        """
        document = self._document()
        status = self._read(document)
        inner = _dig(document, ("spec", "volumeReplicationName"))
        if self.target.single_volume or not status.current or not isinstance(inner, str) or not inner:
            return status
        try:
            replication: JsonObject | None = self.api.get(self.fields.volume, inner, self.target.namespace)
        except ObjectMissingError:
            replication = None
        lag = inner_replication_lag(document, replication, inner)
        if lag is None:
            return status
        return status.model_copy(
            update={
                "role": Role.UNKNOWN,
                "current": False,
                "completed": False,
                "failure": None,
                "failure_permanent": False,
                "message": f"{self.ref}: {lag} (the group's status is a copy of its VolumeReplication's)",
            }
        )


def inner_replication_lag(group: JsonObject, replication: JsonObject | None, name: str) -> str | None:
    """Why a VolumeGroupReplication's status does not yet answer its latest request, or ``None`` when it does.

    Args:
        group: the VolumeGroupReplication.
        replication: its inner VolumeReplication (``None`` when it does not exist).
        name: that VolumeReplication's name (``spec.volumeReplicationName``).
    """
    if replication is None:
        return f"its VolumeReplication {name} does not exist yet"
    fields = CSI_ADDONS_FIELDS
    asked = (_dig(group, fields.replication_state), _dig(group, fields.auto_resync) is True)
    passed = (_dig(replication, fields.replication_state), _dig(replication, fields.auto_resync) is True)
    if asked != passed:
        return (
            f"its VolumeReplication {name} still asks replicationState={passed[0]}, autoResync={passed[1]} where "
            f"the group asks {asked[0]}, {asked[1]}: the controller has not passed the latest request on yet"
        )
    inner = read_status(
        replication, cluster="", backend=Backend.CSI_ADDONS, resource=fields.volume, fields=fields, single_volume=True
    )
    if not inner.current:
        return f"its {inner.message}"
    if _status_content(group) != _status_content(replication):
        return f"the group has not copied the latest status of its VolumeReplication {name} yet"
    return None


def _status_content(document: JsonObject) -> tuple[object, ...]:
    """A status's state and conditions (type, status, reason): what a VGR copies from its VR, less the re-stamp."""
    status = document.get("status") or {}
    conditions = status.get("conditions") or []
    return (
        status.get("state"),
        tuple(sorted((str(c.get("type")), str(c.get("status")), str(c.get("reason"))) for c in conditions)),
    )
