"""The Dell CSM replication controller for PowerStore: DellCSIReplicationGroup actions (reference/backends.md §4).

An RG is cluster-scoped; the pair is the RG of the same name on the other cluster, and its volumes are the PVCs
(any namespace) labelled ``replication.storage.dell.com/replicationGroupName=<rg name>``. Dell has no role in
spec, so the first source of a fresh group is: the side whose RG status already says ``isSource`` (a restarted
simulator), else the cluster named by the RG annotation ``sandbox.failover-orchestrator.io/initial-source``, else
the first configured cluster.

Action lifecycle (as upstream csm-replication): ``spec.action`` set -> ``status.state = <ACTION>_IN_PROGRESS``
with ``lastAction`` cleared -> after ``action_latency`` the driver call. Success: ``spec.action`` reset to ``""``
(written first, so that a ``Ready`` RG never still carries the action), then ``state Ready``,
``lastAction.condition = "Action <ACTION> succeeded"`` and the same entry first in ``conditions`` (at most 20).
A retryable error keeps the state in progress with ``lastAction`` = {condition "Action <ACTION> failed with
error ...", ``errorMessage``, ``firstFailure``, ``time``} and retries every ``retry_interval`` for
``dell_error_after`` seconds; then, or at once for a ``permanent`` fault, ``state Error`` with that condition,
the history entry and ``spec.action`` reset. An unsupported action is reset to ``""`` with a Warning event and no
status change; another action requested while one runs gets a Warning event and is dropped when the running one
ends. ``remoteState`` is never written (csm-replication declares it and leaves it empty).

Actions: FAILOVER_REMOTE (on the source: demote, final sync, promote the peer; link FAILEDOVER),
UNPLANNED_FAILOVER_LOCAL (on the target: promote with what it holds, even while the source is writable; link
FAILEDOVER), REPROTECT_LOCAL (on the source: the peer is made read-only and resynced from it; link active again),
SUSPEND, RESUME, SYNC (an immediate shipment).

``replicationLinkState``: ``isSource`` = this side is writable; ``state`` UNKNOWN (with ``errorMessage``) while
the peer site is down, else EMPTY (no PVCs), SUSPENDED, FAILEDOVER, SYNC_IN_PROGRESS (a final sync or resync
runs), SYNCHRONIZED (shipments flow) or INVALID (two writable sides, or a diverged replica);
``lastSuccessfulUpdate`` = the group's oldest last shipment (frozen under ``stop-lag-updates``).
"""

from __future__ import annotations

import copy
import functools
import logging
from dataclasses import dataclass, field
from typing import ClassVar

from clusters.api import JsonObject, Resource
from sandbox.simulator.controllers.base import Context, Controller, OpTable, reconcile_each
from sandbox.simulator.kube import DELL_RG, nested, rfc3339
from sandbox.simulator.model import Link, PromotionRefusedError, VolumeKey, group_last_shipment
from sandbox.simulator.schemas import FaultKind

log = logging.getLogger(__name__)

GROUP_LABEL = "replication.storage.dell.com/replicationGroupName"
INITIAL_SOURCE_ANNOTATION = "sandbox.failover-orchestrator.io/initial-source"
FAILOVER_REMOTE = "FAILOVER_REMOTE"
UNPLANNED_FAILOVER_LOCAL = "UNPLANNED_FAILOVER_LOCAL"
REPROTECT_LOCAL = "REPROTECT_LOCAL"
SUSPEND, RESUME, SYNC = "SUSPEND", "RESUME", "SYNC"
SUPPORTED_ACTIONS = (FAILOVER_REMOTE, UNPLANNED_FAILOVER_LOCAL, REPROTECT_LOCAL, SUSPEND, RESUME, SYNC)
MAX_HISTORY = 20


class ActionError(Exception):
    """An action attempt failed; ``permanent`` ones go to ``Error`` at once, the others are retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass
class RgOp:
    """One action on one RG, from the request to its written outcome."""

    action: str
    next_attempt: float
    phase: str = "start"
    first_failure: float | None = None
    outcome: str | None = None
    """``Ready`` or ``Error`` once the action is over (until its spec and status writes are done)."""
    last_action: JsonObject = field(default_factory=dict)
    """What ``status.lastAction`` says: empty from the start of the action (as upstream clears it) until an
    attempt fails or the action ends."""
    refused: set[str] = field(default_factory=set)
    """Other actions requested meanwhile (warned about once each)."""


class DellReplicationController(Controller):
    """Plays dell-csi-replicator and the PowerStore driver's replication calls."""

    resources: ClassVar[tuple[Resource, ...]] = (DELL_RG,)

    def __init__(self) -> None:
        self._ops: OpTable[RgOp] = OpTable()

    def reconcile(self, ctx: Context) -> None:
        """Reconcile every RG on ``ctx.cluster``."""
        reconcile_each(ctx, DELL_RG, self._ops, functools.partial(self._reconcile, ctx))

    # ------------------------------------------------------------------------------------------------ volumes

    def _volumes(self, ctx: Context, name: str) -> list[VolumeKey]:
        keys = sorted(
            VolumeKey(pvc["metadata"]["namespace"], pvc["metadata"]["name"])
            for pvc in ctx.view.pvcs()
            if nested(pvc, "metadata", "labels", GROUP_LABEL) == name
        )
        for key in keys:
            ctx.model.ensure(key, ctx.now)
            ctx.shared.aliases.setdefault(key, set()).add(name)
        return keys

    def _initial_source(self, ctx: Context, rg: JsonObject) -> str:
        name = rg["metadata"]["name"]
        pair = {ctx.cluster: rg, ctx.peer: ctx.peer_view.find(DELL_RG, name) if ctx.peer_view else None}
        for cluster in ctx.clusters:
            if nested(pair.get(cluster), "status", "replicationLinkState", "isSource") is True:
                return cluster
        for candidate in pair.values():
            wanted = nested(candidate, "metadata", "annotations", INITIAL_SOURCE_ANNOTATION)
            if wanted in ctx.clusters:
                return str(wanted)
        return ctx.clusters[0]

    # ------------------------------------------------------------------------------------------------ reconcile

    def _reconcile(self, ctx: Context, rg: JsonObject) -> None:
        metadata = rg["metadata"]
        name, uid = metadata["name"], metadata["uid"]
        keys = self._volumes(ctx, name)
        initial = self._initial_source(ctx, rg)
        for key in keys:
            ctx.model.bootstrap(key, initial, ctx.now)
        action = nested(rg, "spec", "action", default="")
        op = self._ops.get(ctx.cluster, uid)
        if op is None and action:
            if action not in SUPPORTED_ACTIONS:
                # As upstream: reset the action and raise a Warning event; the status does not change.
                if self._reset_action(ctx, rg) is not None:
                    ctx.event(rg, "Warning", "Unsupported", f"Cannot proceed with action {action}: not supported")
                return
            op = self._ops.put(ctx.cluster, uid, RgOp(action, ctx.due(ctx.now + ctx.config.action_latency)))
            log.info("%s RG %s: %s requested", ctx.cluster, name, action)
        elif op is not None and op.outcome is None and action not in ("", op.action, *op.refused):
            # Upstream warns and carries on with the running action; the completion resets spec.action.
            op.refused.add(action)
            message = (
                f"Action [{op.action}] on DellCSIReplicationGroup [{name}] is in progress, cannot execute [{action}]"
            )
            ctx.event(rg, "Warning", "InProgress", message)
        if op is not None and op.outcome is None and ctx.now >= op.next_attempt:
            self._attempt(ctx, op, keys, name)
        if op is not None and op.outcome is not None and action:
            # Reset the action before reporting the outcome: a Ready RG must not still carry it.
            updated = self._reset_action(ctx, rg)
            if updated is None:
                return
            rg = updated
        status = self._render(ctx, rg, op, keys, initial)
        if status != rg.get("status") and ctx.write_status(DELL_RG, rg, status) is None:
            return
        if op is not None and op.outcome is not None:
            log.info("%s RG %s: %s", ctx.cluster, name, op.last_action.get("condition"))
            self._ops.drop(ctx.cluster, uid)

    def _reset_action(self, ctx: Context, rg: JsonObject) -> JsonObject | None:
        """Write ``spec.action: ""`` (the CRD requires the field: it is emptied, never removed)."""
        body = copy.deepcopy(rg)
        body["spec"]["action"] = ""
        return ctx.update(DELL_RG, body)

    # ------------------------------------------------------------------------------------------------ actions

    def _attempt(self, ctx: Context, op: RgOp, keys: list[VolumeKey], name: str) -> None:
        try:
            done = self._step(ctx, op, keys, ctx.groups(keys, name))
        except ActionError as exc:
            message = str(exc)
            op.first_failure = op.first_failure or ctx.now
            op.last_action = {
                "condition": f"Action {op.action} failed with error {message}",
                "time": rfc3339(ctx.now),
                "errorMessage": message,
                "firstFailure": rfc3339(op.first_failure),
            }
            if exc.permanent or ctx.now - op.first_failure >= ctx.config.dell_error_after:
                op.outcome = "Error"
            else:
                op.next_attempt = ctx.due(ctx.now + ctx.config.retry_interval)
            return
        if done:
            op.outcome = "Ready"
            op.last_action = {"condition": f"Action {op.action} succeeded", "time": rfc3339(ctx.now)}

    def _fault(self, ctx: Context, kind: FaultKind, groups: set[str], cluster: str) -> None:
        fault = ctx.take_fault(kind, groups, cluster)
        if fault is not None:
            raise ActionError(
                f"injected {kind.value} fault on {cluster} (attempt {fault.fired})", permanent=fault.permanent
            )

    def _require_peer(self, ctx: Context) -> None:
        if not ctx.model.site_up[ctx.peer]:
            raise ActionError(f"remote system {ctx.peer} is unreachable")

    def _step(self, ctx: Context, op: RgOp, keys: list[VolumeKey], groups: set[str]) -> bool:
        """Advance the action by one phase; whether it is complete.

        Raises:
            ActionError: the attempt failed.
        """
        model, here, peer = ctx.model, ctx.cluster, ctx.peer
        if op.action == FAILOVER_REMOTE:
            if op.phase == "start":
                if not all(model.writable(k, here) for k in keys):
                    raise ActionError(f"cannot fail over to {peer}: {here} is not the source", permanent=True)
                self._require_peer(ctx)
                self._fault(ctx, FaultKind.FAIL_DEMOTE, groups, here)
                for key in keys:
                    model.demote(key, here, ctx.now, final_sync=True)
                op.phase = "final-sync"
            if op.phase == "final-sync":
                if any(model.syncing(k, here) or not model.peer_holds_all(k, here) for k in keys):
                    return False
                op.phase = "promote-remote"
            self._fault(ctx, FaultKind.FAIL_PROMOTE, groups, peer)
            try:
                for key in keys:
                    model.promote(key, peer, ctx.now, force=False)
                    model.set_link(key, Link.FAILED_OVER, ctx.now)
            except PromotionRefusedError as exc:
                raise ActionError(str(exc)) from exc
            return True
        if op.action == UNPLANNED_FAILOVER_LOCAL:
            self._fault(ctx, FaultKind.FAIL_PROMOTE, groups, here)
            for key in keys:
                model.promote(key, here, ctx.now, force=True)
                model.set_link(key, Link.FAILED_OVER, ctx.now)
            return True
        if op.action == REPROTECT_LOCAL:
            if op.phase == "start":
                if not all(model.writable(k, here) for k in keys):
                    raise ActionError(f"cannot reprotect: {here} is not the source (fail over first)", permanent=True)
                self._require_peer(ctx)
                self._fault(ctx, FaultKind.FAIL_RESYNC, groups, here)
                for key in keys:
                    model.set_link(key, Link.ACTIVE, ctx.now)
                    model.request_resync(key, peer, ctx.now)
                op.phase = "resync"
            return not any(model.syncing(k, peer) for k in keys)
        links = {v.link for k in keys if (v := model.get(k)) is not None}
        if Link.FAILED_OVER in links:
            raise ActionError(f"the group is failed over: use {REPROTECT_LOCAL}", permanent=True)
        if op.action == SYNC:
            if Link.SUSPENDED in links:
                raise ActionError("the replication session is suspended", permanent=True)
            self._require_peer(ctx)
            for key in keys:
                model.ship_now(key, ctx.now)
            return True
        for key in keys:
            model.set_link(key, Link.SUSPENDED if op.action == SUSPEND else Link.ACTIVE, ctx.now)
        return True

    # ------------------------------------------------------------------------------------------------ status

    def _render(self, ctx: Context, rg: JsonObject, op: RgOp | None, keys: list[VolumeKey], initial: str) -> JsonObject:
        previous: JsonObject = rg.get("status") or {}
        status = copy.deepcopy(previous)
        if op is None:
            status["state"] = "Error" if previous.get("state") == "Error" else "Ready"
        elif op.outcome is None:
            status["state"] = f"{op.action}_IN_PROGRESS"
        else:
            status["state"] = op.outcome
        if op is not None:
            status["lastAction"] = op.last_action
            if op.outcome in ("Ready", "Error"):
                history = list(previous.get("conditions", []))
                if not history or history[0] != op.last_action:
                    history.insert(0, op.last_action)
                status["conditions"] = history[:MAX_HISTORY]
        status["replicationLinkState"] = self._link_state(ctx, rg, keys, initial)
        return status

    def _link_state(self, ctx: Context, rg: JsonObject, keys: list[VolumeKey], initial: str) -> JsonObject:
        """``replicationLinkState`` from the model: who is source, the session's state, the last shipment."""
        model, here, peer = ctx.model, ctx.cluster, ctx.peer
        link: JsonObject = {"isSource": all(model.writable(k, here) for k in keys) if keys else initial == here}
        links = {v.link for k in keys if (v := model.get(k)) is not None}
        if not model.site_up[peer]:
            link["state"], link["errorMessage"] = "UNKNOWN", f"remote system {peer} is unreachable"
        elif not keys:
            link["state"] = "EMPTY"
        elif Link.SUSPENDED in links:
            link["state"] = "SUSPENDED"
        elif Link.FAILED_OVER in links:
            link["state"] = "FAILEDOVER"
        elif any(model.syncing(k, here) or model.syncing(k, peer) for k in keys):
            link["state"] = "SYNC_IN_PROGRESS"
        elif all(model.replicating(k, here) for k in keys):
            link["state"] = "SYNCHRONIZED"
        else:
            writable = {c for k in keys for c in (here, peer) if model.writable(k, c)}
            link["state"] = "INVALID"
            link["errorMessage"] = (
                "both sites are writable (split-brain)" if len(writable) > 1 else "the replica has diverged"
            )
        if ctx.fault_active(FaultKind.STOP_LAG_UPDATES, ctx.groups(keys, rg["metadata"]["name"])):
            last = nested(rg, "status", "replicationLinkState", "lastSuccessfulUpdate")
        else:
            shipped = group_last_shipment(model, keys)
            last = rfc3339(shipped) if shipped is not None else None
        if last:
            link["lastSuccessfulUpdate"] = last
        return link
