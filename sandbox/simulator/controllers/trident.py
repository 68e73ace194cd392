"""The Trident controllers (TMR, TSI, TAMU) and the snapshotter that makes VolumeSnapshots ready (backends.md §3).

A TMR covers one PVC. ``promoted`` with a ``promotedSnapshotHandle`` breaks the mirror if that snapshot has reached
this side, and otherwise fails the TMR ("Could not promote mirror": upstream's ONTAP lookup answers NotFound and
there is no waiting state); without a handle it promotes at once (unplanned). ``established`` makes this side a
mirror destination (``establishing``, then ``established``); ``reestablished`` resyncs it from the peer, overwriting
its data. Trident does not check the peer before promoting, so a planned promotion leaves the old source writable
until it is reestablished (the ledger records the two writable sides; the application's quiesce is what keeps them
from diverging).

As upstream Trident: a TMR's status is written only when its state changes (a spec edit that keeps the state
leaves ``observedGeneration`` behind), and a ``failed`` attempt is not retried until the spec changes (a new
generation is a new attempt). A TridentActionMirrorUpdate is checked first (its TMR must be established or
reestablished here), then goes ``In progress`` with the previous transfer time, then ``Succeeded`` or ``Failed``
(held ``In progress`` while a ``stall-final-sync`` fault holds on the source: a slow SnapMirror transfer).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import ClassVar

from clusters.api import JsonObject, Resource
from sandbox.simulator.controllers.base import Context, Controller, OpTable, SnapshotRecord, reconcile_each
from sandbox.simulator.kube import TAMU, TMR, TSI, VOLUME_SNAPSHOTS, nested, rfc3339
from sandbox.simulator.model import VolumeKey
from sandbox.simulator.schemas import FaultKind

log = logging.getLogger(__name__)

PROMOTED, ESTABLISHED, REESTABLISHED = "promoted", "established", "reestablished"
IN_PROGRESS = {PROMOTED: "promoting", ESTABLISHED: "establishing", REESTABLISHED: "reestablishing"}
FAILED = "failed"


def volume_handle(cluster: str, pvc: JsonObject) -> str:
    """The ONTAP volume of a PVC on a cluster, as Trident names it: ``svm-<cluster>:trident_pvc_<uid short>``."""
    return f"svm-{cluster}:trident_pvc_{pvc['metadata']['uid'].split('-')[0]}"


def snapshot_uid(handle: str) -> str | None:
    """The VolumeSnapshot UID in a snapshot handle ``<volume>/snapshot-<uid>`` (Trident's ``MakeSnapshotID``)."""
    _, _, name = handle.rpartition("/")
    return name.removeprefix("snapshot-") if name.startswith("snapshot-") else None


@dataclass
class TmrOp:
    """The controller's progress on one generation of one TMR."""

    generation: int
    desired: str
    snapshot_handle: str
    next_attempt: float
    done: bool = False
    failure: str | None = None
    resync_requested: bool = False


@dataclass
class TamuOp:
    """When a mirror update is due."""

    due: float


class TridentController(Controller):
    """Plays Trident (mirror relationships, snapshot info, mirror updates) and the CSI snapshotter."""

    resources: ClassVar[tuple[Resource, ...]] = (TMR, TSI, TAMU, VOLUME_SNAPSHOTS)

    def __init__(self) -> None:
        self._tmr_ops: OpTable[TmrOp] = OpTable()
        self._tamu_ops: OpTable[TamuOp] = OpTable()

    def reconcile(self, ctx: Context) -> None:
        """Snapshots first (a TMR may wait for one), then TSIs, TMRs and mirror updates."""
        reconcile_each(ctx, VOLUME_SNAPSHOTS, None, functools.partial(self._snapshot, ctx))
        reconcile_each(ctx, TSI, None, functools.partial(self._snapshot_info, ctx))
        reconcile_each(ctx, TMR, self._tmr_ops, functools.partial(self._mirror, ctx))
        reconcile_each(ctx, TAMU, self._tamu_ops, functools.partial(self._mirror_update, ctx))

    # ------------------------------------------------------------------------------------------------ snapshots

    def _snapshot(self, ctx: Context, snapshot: JsonObject) -> None:
        """Make a VolumeSnapshot of a PVC ready, capturing what the volume holds on this side now."""
        if nested(snapshot, "status", "readyToUse") is True:
            return
        claim = nested(snapshot, "spec", "source", "persistentVolumeClaimName")
        if not claim:
            return  # pre-provisioned snapshot contents are not simulated
        key = VolumeKey(snapshot["metadata"]["namespace"], claim)
        pvc = ctx.view.pvc(key)
        if pvc is None:
            status: JsonObject = {
                "readyToUse": False,
                "error": {"message": f"PersistentVolumeClaim {claim} not found", "time": rfc3339(ctx.now)},
            }
            if nested(snapshot, "status", "error", "message") != status["error"]["message"]:
                ctx.write_status(VOLUME_SNAPSHOTS, snapshot, status)
            return
        uid = snapshot["metadata"]["uid"]
        ctx.shared.snapshots[uid] = SnapshotRecord(ctx.cluster, key, ctx.model.snapshot(key, ctx.cluster))
        status = {
            "readyToUse": True,
            "creationTime": rfc3339(ctx.now),
            "boundVolumeSnapshotContentName": f"snapcontent-{uid}",
        }
        if size := nested(pvc, "spec", "resources", "requests", "storage"):
            status["restoreSize"] = size
        if ctx.write_status(VOLUME_SNAPSHOTS, snapshot, status) is not None:
            log.info("%s VolumeSnapshot %s/%s ready", ctx.cluster, key.namespace, snapshot["metadata"]["name"])

    def _snapshot_info(self, ctx: Context, info: JsonObject) -> None:
        """Publish the snapshot handle of a ready VolumeSnapshot."""
        namespace = info["metadata"]["namespace"]
        snapshot = ctx.view.find(VOLUME_SNAPSHOTS, nested(info, "spec", "snapshotName", default=""), namespace)
        if snapshot is None or nested(snapshot, "status", "readyToUse") is not True:
            return
        claim = nested(snapshot, "spec", "source", "persistentVolumeClaimName", default="")
        pvc = ctx.view.pvc(VolumeKey(namespace, claim))
        if pvc is None:
            return
        # Trident's storage.MakeSnapshotID: <volume name>/<snapshot name>; CSI names both after their objects' UIDs.
        handle = f"pvc-{pvc['metadata']['uid']}/snapshot-{snapshot['metadata']['uid']}"
        previous = info.get("status") or {}
        status = {
            "snapshotHandle": handle,
            "observedGeneration": int(info["metadata"].get("generation", 1)),
            "lastTransitionTime": (
                previous["lastTransitionTime"]
                if previous.get("snapshotHandle") == handle and previous.get("lastTransitionTime")
                else rfc3339(ctx.now)
            ),
        }
        if status != previous:
            ctx.write_status(TSI, info, status)

    # ------------------------------------------------------------------------------------------------ mirrors

    def _mirror(self, ctx: Context, tmr: JsonObject) -> None:
        metadata = tmr["metadata"]
        generation = int(metadata.get("generation", 1))
        mapping = (nested(tmr, "spec", "volumeMappings", default=[]) or [{}])[0]
        key = VolumeKey(metadata["namespace"], mapping.get("localPVCName", ""))
        pvc = ctx.view.pvc(key)
        if pvc is None:
            return  # Trident waits for the PVC's volume
        desired = nested(tmr, "spec", "state", default="")
        ctx.model.ensure(key, ctx.now)
        op = self._tmr_ops.get(ctx.cluster, metadata["uid"])
        if op is None or op.generation != generation:
            latency = ctx.config.promote_latency if desired == PROMOTED else ctx.config.demote_latency
            op = self._tmr_ops.put(
                ctx.cluster,
                metadata["uid"],
                TmrOp(generation, desired, mapping.get("promotedSnapshotHandle", ""), ctx.due(ctx.now + latency)),
            )
        if desired == PROMOTED:
            self._promote(ctx, op, key)
        elif desired in (ESTABLISHED, REESTABLISHED):
            self._follow(ctx, op, key, mapping.get("remoteVolumeHandle", ""))
        if not desired:
            state, message = "", ""
        elif op.failure is not None:
            state, message = FAILED, op.failure
        elif op.done:
            state, message = desired, ""
        else:
            state, message = IN_PROGRESS[desired], ""
        self._write_mirror_status(ctx, tmr, generation, state, message, volume_handle(ctx.cluster, pvc))

    def _promote(self, ctx: Context, op: TmrOp, key: VolumeKey) -> None:
        """Advance a promotion: with a snapshot handle only if that snapshot is here already, else it fails."""
        if op.done or ctx.now < op.next_attempt:
            return
        if op.snapshot_handle:
            uid = snapshot_uid(op.snapshot_handle)
            record = ctx.shared.snapshots.get(uid) if uid else None
            if record is None or not ctx.model.holds_snapshot(key, ctx.cluster, record.point):
                # Upstream: ONTAP's snapshot lookup answers NotFound and the TMR fails (no waiting state).
                op.failure = "Could not promote mirror"
                op.next_attempt = math.inf
                return
        fault = ctx.take_fault(FaultKind.FAIL_PROMOTE, ctx.groups([key]))
        if fault is not None:
            op.failure = f"Could not promote mirror: injected fault (attempt {fault.fired})"
            op.next_attempt = math.inf  # Trident does not retry a failed TMR until its spec changes
            return
        # Trident breaks the mirror without asking the peer: no precondition, hence force.
        ctx.model.promote(key, ctx.cluster, ctx.now, force=True)
        op.done, op.failure = True, None

    def _follow(self, ctx: Context, op: TmrOp, key: VolumeKey, remote_handle: str) -> None:
        """Advance ``established`` (become a mirror destination) or ``reestablished`` (resync from the peer)."""
        if op.done:
            return
        if op.resync_requested:
            op.done = not ctx.model.syncing(key, ctx.cluster)
            return
        if ctx.now < op.next_attempt:
            return
        op.failure = self._follow_failure(ctx, op, key, remote_handle)
        if op.failure is not None:
            op.next_attempt = math.inf  # Trident does not retry a failed TMR until its spec changes
            return
        ctx.model.demote(key, ctx.cluster, ctx.now, final_sync=False)
        if op.desired == REESTABLISHED:
            ctx.model.request_resync(key, ctx.cluster, ctx.now)
            op.resync_requested = True
        else:
            op.done = True

    def _follow_failure(self, ctx: Context, op: TmrOp, key: VolumeKey, remote_handle: str) -> str | None:
        peer_pvc = ctx.peer_view.pvc(key) if ctx.peer_view is not None else None
        if peer_pvc is not None and remote_handle != (expected := volume_handle(ctx.peer, peer_pvc)):
            return f"remote volume {remote_handle} not found: the peer's volume for {key.pvc} is {expected}"
        kind = FaultKind.FAIL_RESYNC if op.desired == REESTABLISHED else FaultKind.FAIL_DEMOTE
        fault = ctx.take_fault(kind, ctx.groups([key]))
        if fault is not None:
            return f"Could not {op.desired.removesuffix('ed')} mirror: injected fault (attempt {fault.fired})"
        if op.desired == ESTABLISHED and not ctx.model.peer_holds_all(key, ctx.cluster):
            return f"volume {key.pvc} holds writes its peer lacks: use state reestablished to resync it"
        return None

    def _write_mirror_status(
        self, ctx: Context, tmr: JsonObject, generation: int, state: str, message: str, local_handle: str
    ) -> None:
        spec = tmr.get("spec", {})
        mapping = (spec.get("volumeMappings") or [{}])[0]
        previous = (nested(tmr, "status", "conditions", default=[]) or [{}])[0]
        condition: JsonObject = {
            "state": state,
            "message": message,
            "lastTransitionTime": rfc3339(ctx.now),
            "observedGeneration": generation,
            "localPVCName": mapping.get("localPVCName", ""),
            "localVolumeHandle": local_handle,
        }
        for field, value in (
            ("remoteVolumeHandle", mapping.get("remoteVolumeHandle")),
            ("replicationPolicy", spec.get("replicationPolicy")),
            ("replicationSchedule", spec.get("replicationSchedule")),
        ):
            if value:
                condition[field] = value
        if "state" in previous and previous.get("state") == state:
            return  # upstream rewrites the status only when the state changes
        if ctx.write_status(TMR, tmr, {"conditions": [condition]}) is not None:
            metadata = tmr["metadata"]
            log.info("%s TMR %s/%s: %s %s", ctx.cluster, metadata["namespace"], metadata["name"], state, message)

    # ------------------------------------------------------------------------------------------------ updates

    def _mirror_update(self, ctx: Context, update: JsonObject) -> None:
        """A TridentActionMirrorUpdate: checks, ``In progress``, then one transfer to this (destination) side."""
        status: JsonObject = dict(update.get("status") or {})
        if status.get("state") in ("Succeeded", "Failed"):
            return
        metadata = update["metadata"]
        name = nested(update, "spec", "tridentMirrorRelationshipName", default="")
        tmr = ctx.view.find(TMR, name, metadata["namespace"])
        mapping = (nested(tmr, "spec", "volumeMappings", default=[]) or [{}])[0]
        key = VolumeKey(metadata["namespace"], mapping.get("localPVCName", ""))
        op = self._tamu_ops.get(ctx.cluster, metadata["uid"])
        if status.get("state") != "In progress" or op is None:
            failure: str | None
            if op is None and status.get("state") == "In progress":
                failure = "in-progress mirror update found at startup, marking it Failed"  # as Trident does
            else:
                failure = self._mirror_update_failure(tmr, name, metadata["name"])
            if failure is not None:
                self._finish_update(ctx, update, {**status, "state": "Failed", "message": failure})
                return
            condition = nested(tmr, "status", "conditions", default=[{}])[0]
            status = {"state": "In progress", "message": ""}
            for field in ("localVolumeHandle", "remoteVolumeHandle"):
                if condition.get(field):
                    status[field] = condition[field]
            if snapshot_handle := nested(update, "spec", "snapshotHandle"):
                status["snapshotHandle"] = snapshot_handle
            volume = ctx.model.get(key)
            if volume is not None and volume.last_shipment is not None:
                status["previousTransferTime"] = rfc3339(volume.last_shipment)
            if ctx.write_status(TAMU, update, status) is not None:
                self._tamu_ops.put(
                    ctx.cluster, metadata["uid"], TamuOp(ctx.due(ctx.now + ctx.config.final_sync_latency))
                )
            return
        if ctx.now < op.due or ctx.fault_active(FaultKind.STALL_FINAL_SYNC, ctx.groups([key]), ctx.peer):
            return  # a stall-final-sync fault on the source holds the transfer back, as a slow SnapMirror would
        result = {**status, "state": "Succeeded", "message": ""}
        if ctx.model.writable(key, ctx.cluster) or not ctx.model.ship_now(key, ctx.now):
            result.update(state="Failed", message=f"mirror update of {key.pvc} failed: the source is not replicating")
        elif snapshot_handle := nested(update, "spec", "snapshotHandle"):
            uid = snapshot_uid(snapshot_handle)
            record = ctx.shared.snapshots.get(uid) if uid else None
            if record is None or not ctx.model.holds_snapshot(key, ctx.cluster, record.point):
                result.update(state="Failed", message=f"snapshot {snapshot_handle} was not transferred")
        self._finish_update(ctx, update, result)

    @staticmethod
    def _mirror_update_failure(tmr: JsonObject | None, name: str, update_name: str) -> str | None:
        """Why a mirror update cannot start (Trident's pre-checks), or ``None``."""
        if tmr is None:
            return f"TridentMirrorRelationship '{name}' does not exist"
        state = nested(tmr, "status", "conditions", default=[{}])[0].get("state", "")
        if state not in (ESTABLISHED, REESTABLISHED):
            return f"mirror update failed: TAMU {update_name} cannot be executed for TMR {name} in {state} state"
        return None

    def _finish_update(self, ctx: Context, update: JsonObject, status: JsonObject) -> None:
        status["completionTime"] = rfc3339(ctx.now)
        metadata = update["metadata"]
        if ctx.write_status(TAMU, update, status) is not None:
            self._tamu_ops.drop(ctx.cluster, metadata["uid"])
            log.info(
                "%s TAMU %s/%s: %s %s",
                ctx.cluster,
                metadata["namespace"],
                metadata["name"],
                status["state"],
                status.get("message", ""),
            )
