"""The csi-addons replication controller, for csi-addons VolumeGroupReplication/VolumeReplication and unified VGR.

One implementation (reference/backends.md section 1) parameterised by :class:`CsiFlavor`: the unified API
(section 2) has the same semantics and differs only in where the PVC selector lives and in which optional status
fields its schema has (fields a schema lacks would be pruned by the API server and rewritten every tick).

Per object and generation: after ``promote_latency``/``demote_latency`` the controller attempts the requested
role change for every PVC of the group at once; a failed attempt is written as Completed=False with the
matching reason and retried every ``retry_interval``. Status carries ``observedGeneration`` (also on every
condition) only once an attempt for that generation has completed or failed, so an unobserved generation means
"not yet".
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from clusters.api import JsonObject, Resource
from sandbox.simulator.controllers.base import Context, Controller, OpTable, reconcile_each
from sandbox.simulator.kube import CSI_VGR, CSI_VR, UNIFIED_VGR, go_duration, label_selector_matches, nested, rfc3339
from sandbox.simulator.kube import set_condition as condition
from sandbox.simulator.model import PromotionRefusedError, VolumeKey, group_last_shipment
from sandbox.simulator.schemas import FaultKind
from sandbox.simulator.view import ClusterView

log = logging.getLogger(__name__)

PRIMARY, SECONDARY, RESYNC = "primary", "secondary", "resync"
MAX_PVC_REFS = 100
"""The CRD's limit on ``persistentVolumeClaimsRefList`` (and the real controller's group size limit)."""

SYNC_FIELDS = ("lastSyncTime", "lastSyncDuration", "lastSyncBytes")


@dataclass(frozen=True)
class CsiFlavor:
    """Where one API keeps what the csi-addons semantics need.

    Attributes:
        resource: the kind.
        selector: the PVC label selector of a group kind; ``None`` for a single-volume kind.
        extended_status: the status schema has ``lastStartTime``, ``lastCompletionTime`` and ``lastSyncBytes``.
        pvc_refs: the status schema has ``persistentVolumeClaimsRefList``.
    """

    resource: Resource
    selector: Callable[[JsonObject], Mapping[str, Any] | None] | None
    extended_status: bool
    pvc_refs: bool


CSI_ADDONS_VGR_FLAVOR = CsiFlavor(
    CSI_VGR, lambda obj: nested(obj, "spec", "source", "selector"), extended_status=True, pvc_refs=True
)
CSI_ADDONS_VR_FLAVOR = CsiFlavor(CSI_VR, None, extended_status=True, pvc_refs=False)
UNIFIED_VGR_FLAVOR = CsiFlavor(
    UNIFIED_VGR, lambda obj: nested(obj, "spec", "selector"), extended_status=False, pvc_refs=True
)


@dataclass
class CsiOp:
    """The controller's progress on one generation of one object."""

    generation: int
    desired: str
    auto_resync: bool
    started: float
    next_attempt: float
    completed: float | None = None
    failure: tuple[str, str] | None = None
    first_pass_written: bool = False


class CsiReplicationController(Controller):
    """Plays the csi-addons replication controller (and the unified operator passing its status through)."""

    all_flavors: ClassVar[tuple[CsiFlavor, ...]] = (CSI_ADDONS_VGR_FLAVOR, CSI_ADDONS_VR_FLAVOR, UNIFIED_VGR_FLAVOR)
    resources: ClassVar[tuple[Resource, ...]] = tuple(f.resource for f in all_flavors)

    def __init__(self, *, real_csi_addons: bool = False) -> None:
        """Play every kind, or (``real_csi_addons``) only the unified one: the upstream controllers own the rest."""
        self.flavors = (UNIFIED_VGR_FLAVOR,) if real_csi_addons else self.all_flavors
        self._ops: dict[Resource, OpTable[CsiOp]] = {f.resource: OpTable() for f in self.flavors}

    def reconcile(self, ctx: Context) -> None:
        """Reconcile every VGR/VR of the kinds this controller plays on ``ctx.cluster``."""
        for flavor in self.flavors:
            ops = self._ops[flavor.resource]
            reconcile_each(ctx, flavor.resource, ops, functools.partial(self._reconcile, ctx, flavor, ops))

    # ------------------------------------------------------------------------------------------------ volumes

    def _volumes(self, ctx: Context, flavor: CsiFlavor, obj: JsonObject) -> list[VolumeKey]:
        namespace = obj["metadata"]["namespace"]
        if flavor.selector is not None:
            selector = flavor.selector(obj)
        else:
            source = nested(obj, "spec", "dataSource", default={})
            if source.get("kind") == "PersistentVolumeClaim":
                return [VolumeKey(namespace, source["name"])]
            # A VR standing for a group replicates the PVCs its VolumeGroupReplication selects.
            group = ctx.view.find(CSI_VGR, source.get("name", ""), namespace)
            selector = nested(group, "spec", "source", "selector") if group else None
        keys = [
            VolumeKey(namespace, pvc["metadata"]["name"])
            for pvc in ctx.view.pvcs(namespace)
            if label_selector_matches(selector, nested(pvc, "metadata", "labels", default={}))
        ]
        return sorted(keys)

    # ------------------------------------------------------------------------------------------------ reconcile

    def _reconcile(self, ctx: Context, flavor: CsiFlavor, ops: OpTable[CsiOp], obj: JsonObject) -> None:
        metadata = obj["metadata"]
        generation = int(metadata.get("generation", 1))
        desired = nested(obj, "spec", "replicationState", default="")
        if desired not in (PRIMARY, SECONDARY, RESYNC):
            return
        keys = self._volumes(ctx, flavor, obj)
        for key in keys:
            ctx.model.ensure(key, ctx.now)
        op = ops.get(ctx.cluster, metadata["uid"])
        if op is None or op.generation != generation:
            latency = ctx.config.promote_latency if desired == PRIMARY else ctx.config.demote_latency
            op = ops.put(
                ctx.cluster,
                metadata["uid"],
                CsiOp(
                    generation=generation,
                    desired=desired,
                    auto_resync=bool(nested(obj, "spec", "autoResync", default=False)),
                    started=ctx.now,
                    next_attempt=ctx.due(ctx.now + latency),
                ),
            )
        if ctx.now >= op.next_attempt:
            if self._needs_attempt(ctx, op, keys):
                op.failure = self._attempt(ctx, op, keys)
                if op.failure is None:
                    op.completed = op.completed or ctx.now
                    op.next_attempt = ctx.now
                else:
                    op.next_attempt = ctx.due(ctx.now + ctx.config.retry_interval)
            elif op.completed is not None:
                op.failure = None  # what a later pass failed to do is no longer needed
        if op.completed is None and op.failure is None:
            return  # nothing observed for this generation yet: the status stays stale on purpose
        status = self._render(ctx, flavor, obj, op, keys)
        if status == obj.get("status"):
            op.first_pass_written = op.completed is not None
            return
        if ctx.write_status(flavor.resource, obj, status) is not None and op.completed is not None:
            op.first_pass_written = True
        if status.get("state") != nested(obj, "status", "state") or status.get("message") != nested(
            obj, "status", "message"
        ):
            log.info(
                "%s %s %s/%s: %s (%s)",
                ctx.cluster,
                flavor.resource.kind,
                metadata["namespace"],
                metadata["name"],
                status.get("state") or "-",
                status.get("message", ""),
            )

    def _needs_attempt(self, ctx: Context, op: CsiOp, keys: list[VolumeKey]) -> bool:
        if op.completed is None:
            return True
        if op.desired == PRIMARY:
            return not all(ctx.model.writable(k, ctx.cluster) for k in keys)
        if any(ctx.model.writable(k, ctx.cluster) for k in keys):
            return True
        return op.desired == SECONDARY and op.auto_resync and bool(self._to_resync(ctx, keys))

    def _to_resync(self, ctx: Context, keys: list[VolumeKey]) -> list[VolumeKey]:
        return [k for k in keys if ctx.model.diverged(k, ctx.cluster) and not ctx.model.syncing(k, ctx.cluster)]

    def _attempt(self, ctx: Context, op: CsiOp, keys: list[VolumeKey]) -> tuple[str, str] | None:
        """One attempt at the requested role change; the failure (reason, message), or ``None`` on success."""
        groups = ctx.groups(keys)
        if op.desired == PRIMARY:
            return self._promote(ctx, keys, groups)
        if op.desired == RESYNC:
            fault = ctx.take_fault(FaultKind.FAIL_RESYNC, groups)
            if fault is not None:
                return "FailedToResync", f"failed to resync volume: injected fault (attempt {fault.fired})"
            for key in keys:
                ctx.model.demote(key, ctx.cluster, ctx.now, final_sync=False)
                ctx.model.request_resync(key, ctx.cluster, ctx.now)
            return None
        was_writable = [k for k in keys if ctx.model.writable(k, ctx.cluster)]
        if was_writable or op.completed is None:
            if ctx.fault_active(FaultKind.REFUSE_DEMOTE_IN_USE, groups) and (usage := in_use(ctx.view, keys)):
                return "FailedToDemote", f"failed to demote volume: {usage}"
            fault = ctx.take_fault(FaultKind.FAIL_DEMOTE, groups)
            if fault is not None:
                return "FailedToDemote", f"failed to demote volume: injected fault (attempt {fault.fired})"
            for key in keys:
                # autoResync discards what a final sync would ship: the resync copies the peer instead.
                ctx.model.demote(key, ctx.cluster, ctx.now, final_sync=not op.auto_resync)
        if op.auto_resync:
            to_resync = sorted(set(was_writable) | set(self._to_resync(ctx, keys)))
            if to_resync:
                fault = ctx.take_fault(FaultKind.FAIL_RESYNC, groups)
                if fault is not None:
                    return "FailedToResync", f"failed to resync volume: injected fault (attempt {fault.fired})"
                for key in to_resync:
                    ctx.model.request_resync(key, ctx.cluster, ctx.now)
        return None

    def _promote(self, ctx: Context, keys: list[VolumeKey], groups: set[str]) -> tuple[str, str] | None:
        fault = ctx.take_fault(FaultKind.FAIL_PROMOTE, groups)
        if fault is not None:
            return "FailedToPromote", f"failed to promote volume: injected fault (attempt {fault.fired})"
        pending = [k for k in keys if not ctx.model.writable(k, ctx.cluster)]
        blocked = [k for k in pending if ctx.model.writable(k, ctx.peer)]
        # A promote while the peer is primary fails with a precondition error. The real controller then retries
        # with force on its own; the simulator does so when the peer site is down (the unplanned case) and, when
        # the peer is up, only under the force-promote-on-precondition fault.
        force = bool(blocked) and (
            not ctx.model.site_up[ctx.peer] or ctx.fault_active(FaultKind.FORCE_PROMOTE_ON_PRECONDITION, groups)
        )
        if blocked and not force:
            names = ", ".join(k.pvc for k in blocked)
            return "FailedToPromote", f"failed to promote volume: peer {ctx.peer} is still primary for {names}"
        try:
            for key in pending:
                ctx.model.promote(key, ctx.cluster, ctx.now, force=force)
        except PromotionRefusedError as exc:
            return "FailedToPromote", f"failed to promote volume: {exc}"
        return None

    # ------------------------------------------------------------------------------------------------ status

    def _render(self, ctx: Context, flavor: CsiFlavor, obj: JsonObject, op: CsiOp, keys: list[VolumeKey]) -> JsonObject:
        previous: JsonObject = obj.get("status") or {}
        earlier = {c["type"]: c for c in previous.get("conditions", []) if "type" in c}
        generation = op.generation

        def cond(condition_type: str, status: bool, reason: str, message: str = "") -> JsonObject:
            return condition(earlier, condition_type, status, reason, message, generation, ctx.now)

        def kept(condition_type: str, reason: str) -> JsonObject:
            """An unchanged condition, refreshed for this generation (False/``reason`` when it never existed)."""
            old = earlier.get(condition_type)
            if old is None:
                return cond(condition_type, False, reason)
            return cond(condition_type, old.get("status") == "True", old.get("reason", reason), old.get("message", ""))

        validated = cond("Validated", True, "PrerequisiteMet")
        replicating = all(ctx.model.replicating(k, ctx.cluster) for k in keys)
        replicating_condition = cond("Replicating", replicating, "Replicating" if replicating else "NotReplicating")
        status: JsonObject = {"observedGeneration": generation}
        if op.failure is not None:
            reason, message = op.failure
            status["state"] = previous.get("state", "")
            status["message"] = message
            status["conditions"] = [
                cond("Completed", False, reason, message),
                cond("Degraded", True, "Error", message),
                kept("Resyncing", "NotResyncing"),
                kept("Replicating", "NotReplicating"),
                validated,
            ]
        elif op.desired == PRIMARY:
            status["state"] = "Primary"
            status["message"] = "volume is promoted"
            status["conditions"] = [
                cond("Completed", True, "Promoted"),
                cond("Degraded", False, "Healthy"),
                cond("Resyncing", False, "NotResyncing"),
                replicating_condition,
                validated,
            ]
            status.update(self._sync_info(ctx, flavor, previous, keys))
        else:
            status["state"] = "Secondary"
            status["message"] = "volume is demoted"
            status["conditions"] = [
                cond("Completed", True, "Demoted"),
                *self._secondary_health(ctx, op, keys, cond),
                replicating_condition,
                validated,
            ]
        if flavor.extended_status:
            status["lastStartTime"] = rfc3339(op.started)
            if op.completed is not None:
                status["lastCompletionTime"] = rfc3339(op.completed)
        if flavor.pvc_refs:
            status["persistentVolumeClaimsRefList"] = [{"name": k.pvc} for k in keys[:MAX_PVC_REFS]]
        return status

    def _secondary_health(
        self, ctx: Context, op: CsiOp, keys: list[VolumeKey], cond: Callable[..., JsonObject]
    ) -> list[JsonObject]:
        """Degraded and Resyncing of a secondary: the first pass after a demote, then the sync's progress."""
        if not op.first_pass_written:
            return [cond("Degraded", True, "VolumeDegraded"), cond("Resyncing", False, "NotResyncing")]
        if any(ctx.model.syncing(k, ctx.cluster) for k in keys):
            return [
                cond("Degraded", True, "VolumeDegraded", "volume is syncing with its peer"),
                cond("Resyncing", True, "ResyncTriggered", "volume is syncing with its peer"),
            ]
        diverged = [k.pvc for k in keys if not ctx.model.peer_holds_all(k, ctx.cluster)]
        if diverged:
            message = f"split-brain: {', '.join(diverged)} hold writes the peer lacks; a resync is required"
            return [cond("Degraded", True, "VolumeDegraded", message), cond("Resyncing", False, "NotResyncing")]
        return [cond("Degraded", False, "Healthy"), cond("Resyncing", False, "NotResyncing")]

    def _sync_info(self, ctx: Context, flavor: CsiFlavor, previous: JsonObject, keys: list[VolumeKey]) -> JsonObject:
        """``lastSyncTime``, ``lastSyncDuration`` (and ``lastSyncBytes``) of a primary, from the model's shipments."""
        fields = SYNC_FIELDS if flavor.extended_status else SYNC_FIELDS[:2]
        if ctx.fault_active(FaultKind.STOP_LAG_UPDATES, ctx.groups(keys)):
            return {name: previous[name] for name in fields if name in previous}
        last = group_last_shipment(ctx.model, keys)
        if last is None:
            return {}
        volumes = [v for k in keys if (v := ctx.model.get(k)) is not None]
        info: JsonObject = {
            "lastSyncTime": rfc3339(last),
            "lastSyncDuration": go_duration(max(v.last_shipment_duration for v in volumes)),
        }
        if flavor.extended_status:
            info["lastSyncBytes"] = sum(v.last_shipment_writes for v in volumes) * ctx.config.write_bytes
        return info


def in_use(view: ClusterView, keys: Iterable[VolumeKey]) -> str | None:
    """Why a demote is refused (newer ceph-csi): a pod uses a PVC or a VolumeAttachment publishes its PV."""
    for key in keys:
        for pod in view.pods_using(key):
            node = nested(pod, "spec", "nodeName", default="no node yet")
            return f"volume {key.pvc} is still in use: published on node {node} (pod {pod['metadata']['name']})"
        pv = nested(view.pvc(key), "spec", "volumeName")
        for attachment in view.attachments(pv) if pv else []:
            node = nested(attachment, "spec", "nodeName", default="?")
            name = attachment["metadata"]["name"]
            return f"volume {key.pvc} is still in use: VolumeAttachment {name} publishes it on node {node}"
    return None
