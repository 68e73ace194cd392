"""The PowerStore array behind the real Dell csm-replication replicator: dell-csi-extensions' replication service.

The lab runs the upstream dell-csi-replicator and dell-replication-controller; the replicator calls
``replication.v1.Replication`` on the driver socket, which this module serves from the simulator's replication
model the way csi-powerstore v2.16.0 answers (its findings, with file and line: sandbox/dell-replication-research.md
section 5). So the real replicator writes the DellCSIReplicationGroup status and the simulator only plays the
array.

What csi-powerstore does, and the simulator with it:

- A volume group holds the volumes of one demo group (PowerStore's volume group, here one per namespace); its id on
  each array is :func:`~sandbox.simulator.kube.protection_group_id`, and the attributes are csi-powerstore's
  (``powerstore/globalID`` and the rest). CreateStorageProtectionGroup is idempotent: the replicator calls it on
  every reconcile until the PV carries its RG, and finds the RG by the returned id.
- ExecuteAction answers ``{success, action, status}``; the replicator ignores ``success`` and takes the status as the
  new link state. FAILOVER_REMOTE is a planned failover run on the source (demote, final sync, promote the peer):
  while it runs, the call answers ABORTED "still executing previous action", which the replicator retries (as
  csi-powerstore answers an RS in ``Failing_Over``). UNPLANNED_FAILOVER_LOCAL promotes the target with what it holds.
  REPROTECT_LOCAL on the new source reverses the session (the peer is resynced from it); RESUME and REPROTECT are
  no-ops on a session that is OK, as failover is on one already failed over.
- Errors use the codes the replicator sorts by: INTERNAL (retried), UNKNOWN (an array error: final, the RG goes to
  ``Error``), INVALID_ARGUMENT (a missing ``powerstore/globalID``). An injected ``permanent`` fault answers UNKNOWN,
  a transient one INTERNAL.
- GetStorageProtectionGroupStatus: ``isSource`` = this array's side is writable; the state maps the session as
  csi-powerstore maps PowerStore's RS states: OK -> SYNCHRONIZED, Failed_Over -> FAILEDOVER, Paused -> SUSPENDED,
  a final sync or resync -> SYNC_IN_PROGRESS, Error -> INVALID, anything else (the peer unreachable: Fractured)
  -> UNKNOWN. The array cannot be reached while its own site is down: UNAVAILABLE.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import grpc

from sandbox.controller_build import DELL_STUBS_PACKAGE
from sandbox.simulator.grpc_driver import DRIVER_VERSION, DriverError, GrpcDriver, Services, load_stubs
from sandbox.simulator.kube import (
    POWERSTORE_CONTEXT,
    POWERSTORE_DRIVER,
    parse_protection_group_id,
    parse_volume_handle,
    protection_group_attributes,
    protection_group_id,
)
from sandbox.simulator.model import Link, PromotionRefusedError, VolumeKey
from sandbox.simulator.schemas import FaultKind

if TYPE_CHECKING:
    from pathlib import Path

    from sandbox.simulator.engine import Simulator

log = logging.getLogger(__name__)

ACTIONS = ("FAILOVER_REMOTE", "UNPLANNED_FAILOVER_LOCAL", "REPROTECT_LOCAL", "SUSPEND", "RESUME", "SYNC")
"""The actions csi-powerstore advertises (the replicator accepts no other ``spec.action``)."""
PLANNED_FAILOVER_WAIT = 5.0
"""How long one FAILOVER_REMOTE call waits for the final sync before answering "still executing" (well under the
replicator's 10 s RPC deadline)."""
CAPACITY_BYTES = 1 << 30


class DellReplicationDriver(GrpcDriver):
    """csi-powerstore's ``replication.v1.Replication`` service of one cluster's array.

    Args:
        simulator: the simulator whose model is the array (its lock guards every call).
        cluster: the cluster whose storage this is.
        stubs: the folder holding :data:`DELL_STUBS_PACKAGE`.
    """

    def __init__(self, simulator: Simulator, cluster: str, stubs: Path) -> None:
        super().__init__(simulator, cluster, POWERSTORE_DRIVER)
        self.common_pb, self.pb = load_stubs(stubs, DELL_STUBS_PACKAGE, "common", "replication")
        self._failing_over: set[str] = set()
        """Volume groups whose planned failover is under way (the RS is ``Failing_Over``)."""

    def services(self) -> Services:
        """``replication.v1.Replication``, ProbeController included (there is no separate identity service)."""
        methods = (
            ("ProbeController", self.probe, self.common_pb.ProbeControllerRequest),
            ("GetReplicationCapabilities", self.capabilities, self.pb.GetReplicationCapabilityRequest),
            ("CreateRemoteVolume", self.create_remote_volume, self.pb.CreateRemoteVolumeRequest),
            ("CreateStorageProtectionGroup", self.create_group, self.pb.CreateStorageProtectionGroupRequest),
            ("DeleteStorageProtectionGroup", self.delete_group, self.pb.DeleteStorageProtectionGroupRequest),
            ("DeleteLocalVolume", self.delete_volume, self.pb.DeleteLocalVolumeRequest),
            ("ExecuteAction", self.execute_action, self.pb.ExecuteActionRequest),
            ("GetStorageProtectionGroupStatus", self.group_status, self.pb.GetStorageProtectionGroupStatusRequest),
        )
        return {"replication.v1.Replication": {name: (method, request) for name, method, request in methods}}

    # ------------------------------------------------------------------------------------------------ identity

    def probe(self, _request: Any) -> Any:
        """The driver's name (the replicator's driver name everywhere); ready while the site's storage is up."""
        return self.common_pb.ProbeControllerResponse(
            name=POWERSTORE_DRIVER,
            vendor_version=DRIVER_VERSION,
            ready={"value": self.simulator.model.site_up[self.cluster]},
        )

    def capabilities(self, _request: Any) -> Any:
        """csi-powerstore's RPCs (CREATE_REMOTE_VOLUME and CREATE_PROTECTION_GROUP are required) and actions."""
        rpc = self.pb.ReplicationCapability.RPC
        return self.pb.GetReplicationCapabilityResponse(
            capabilities=[
                self.pb.ReplicationCapability(rpc=rpc(type=kind))
                for kind in (
                    rpc.CREATE_REMOTE_VOLUME,
                    rpc.CREATE_PROTECTION_GROUP,
                    rpc.DELETE_PROTECTION_GROUP,
                    rpc.REPLICATION_ACTION_EXECUTION,
                    rpc.MONITOR_PROTECTION_GROUP,
                )
            ],
            actions=[self.pb.SupportedActions(type=self.pb.ActionTypes.Value(name)) for name in ACTIONS],
        )

    # ------------------------------------------------------------------------------------------------ volumes

    def _volume(self, handle: str) -> VolumeKey:
        parsed = parse_volume_handle(handle)
        if parsed is None:
            raise DriverError(grpc.StatusCode.INVALID_ARGUMENT, f"can't parse volume handle {handle!r}")
        return VolumeKey(*parsed)

    def _members(self, group_id: str) -> tuple[VolumeKey, ...]:
        """The volumes of the volume group ``group_id`` on this array."""
        namespace = parse_protection_group_id(self.cluster, group_id)
        if namespace is None:
            raise DriverError(grpc.StatusCode.UNKNOWN, f"volume group {group_id} not found")
        return tuple(sorted(v.key for v in self.simulator.model.volumes() if v.key.namespace == namespace))

    def create_remote_volume(self, request: Any) -> Any:
        """The volume's replica on the peer array: the same handle there (what the peer PV will carry)."""
        key = self._volume(request.volume_handle)
        with self._array() as now:
            self.simulator.model.ensure(key, now)
        return self.pb.CreateRemoteVolumeResponse(
            remote_volume=self.pb.Volume(
                capacity_bytes=CAPACITY_BYTES,
                volume_id=request.volume_handle,
                volume_context={
                    "remoteSystem": f"powerstore-{self.cluster}",
                    f"{POWERSTORE_CONTEXT}arrayID": f"PS{self.peer}",
                    f"{POWERSTORE_CONTEXT}managementAddress": f"powerstore-{self.peer}.lab",
                },
            )
        )

    def create_group(self, request: Any) -> Any:
        """The volume group of the volume's application, replicated to the peer (idempotent).

        The first array asked for a fresh volume's group holds its primary (Dell has no role in spec).
        """
        key = self._volume(request.volume_handle)
        with self._array() as now:
            self.simulator.model.bootstrap(key, self.cluster, now)
        return self.pb.CreateStorageProtectionGroupResponse(
            local_protection_group_id=protection_group_id(self.cluster, key.namespace),
            remote_protection_group_id=protection_group_id(self.peer, key.namespace),
            local_protection_group_attributes=protection_group_attributes(self.cluster, self.peer, key.namespace),
            remote_protection_group_attributes=protection_group_attributes(self.peer, self.cluster, key.namespace),
        )

    def delete_group(self, _request: Any) -> Any:
        """Nothing to undo in the model (an unknown group is fine, as a NotFound is for csi-powerstore)."""
        return self.pb.DeleteStorageProtectionGroupResponse()

    def delete_volume(self, _request: Any) -> Any:
        """Nothing to undo in the model (a volume not found counts as deleted)."""
        return self.pb.DeleteLocalVolumeResponse()

    # ------------------------------------------------------------------------------------------------ actions

    def _fault(self, kind: FaultKind, keys: tuple[VolumeKey, ...], cluster: str) -> None:
        fault = self.simulator.faults.take(kind, self._fault_groups(keys), cluster)
        if fault is not None:
            code = grpc.StatusCode.UNKNOWN if fault.permanent else grpc.StatusCode.INTERNAL
            raise DriverError(code, f"injected {kind.value} fault on {cluster} (attempt {fault.fired})")

    def execute_action(self, request: Any) -> Any:
        """Run the action on the volume group and answer the session's status after it."""
        group_id = request.protection_group_id
        if not request.protection_group_attributes.get(f"{POWERSTORE_CONTEXT}globalID"):
            raise DriverError(grpc.StatusCode.INVALID_ARGUMENT, "missing globalID in protection group attributes")
        action = self.pb.ActionTypes.Name(request.action.action_types)
        keys = self._members(group_id)
        if not keys:
            raise DriverError(grpc.StatusCode.UNKNOWN, f"volume group {group_id} holds no volumes")
        self._latency(self.simulator.config.action_latency)
        if action == "FAILOVER_REMOTE":
            self._planned_failover(group_id, keys)
        else:
            with self._array() as now:
                self._act(action, keys, now)
        log.info("%s: %s on %s done", self.cluster, action, group_id)
        return self.pb.ExecuteActionResponse(success=True, action=request.action, status=self._status(keys))

    def _planned_failover(self, group_id: str, keys: tuple[VolumeKey, ...]) -> None:
        """Demote this side, wait (a bounded while per call) for the final sync, then promote the peer."""
        model = self.simulator.model
        with self._array() as now:
            if group_id not in self._failing_over:
                links = {v.link for k in keys if (v := model.get(k)) is not None}
                if links == {Link.FAILED_OVER} and all(model.writable(k, self.peer) for k in keys):
                    return  # Failed_Over already: a no-op, as csi-powerstore's validateRSState
                if not all(model.writable(k, self.cluster) for k in keys):
                    raise DriverError(grpc.StatusCode.INTERNAL, "UnableToFailoverFromDestination")
                if not model.site_up[self.peer]:
                    raise DriverError(grpc.StatusCode.INTERNAL, f"remote system powerstore-{self.peer} unreachable")
                self._fault(FaultKind.FAIL_DEMOTE, keys, self.cluster)
                for key in keys:
                    model.demote(key, self.cluster, now, final_sync=True)
                self._failing_over.add(group_id)
        deadline = time.monotonic() + PLANNED_FAILOVER_WAIT
        while True:
            with self._array() as now:
                if not any(model.syncing(k, self.cluster) or not model.peer_holds_all(k, self.cluster) for k in keys):
                    self._fault(FaultKind.FAIL_PROMOTE, keys, self.peer)
                    try:
                        for key in keys:
                            model.promote(key, self.peer, now, force=False)
                            model.set_link(key, Link.FAILED_OVER, now)
                    except PromotionRefusedError as exc:
                        raise DriverError(grpc.StatusCode.INTERNAL, str(exc)) from exc
                    self._failing_over.discard(group_id)
                    return
            if time.monotonic() >= deadline:
                raise DriverError(grpc.StatusCode.ABORTED, f"RS ({group_id}) is still executing previous action")
            time.sleep(0.05)

    def _act(self, action: str, keys: tuple[VolumeKey, ...], now: float) -> None:
        """Every action but the planned failover, at once on the array."""
        model, here, peer = self.simulator.model, self.cluster, self.peer
        links = {v.link for k in keys if (v := model.get(k)) is not None}
        if action == "UNPLANNED_FAILOVER_LOCAL":
            if links == {Link.FAILED_OVER} and all(model.writable(k, here) for k in keys):
                return
            self._fault(FaultKind.FAIL_PROMOTE, keys, here)
            for key in keys:
                model.promote(key, here, now, force=True)
                model.set_link(key, Link.FAILED_OVER, now)
        elif action == "REPROTECT_LOCAL":
            if links == {Link.ACTIVE} and all(model.writable(k, here) for k in keys):
                return  # the session is OK already
            if not all(model.writable(k, here) for k in keys):
                raise DriverError(grpc.StatusCode.UNKNOWN, f"cannot reprotect from powerstore-{here}: not the source")
            if not model.site_up[peer]:
                raise DriverError(grpc.StatusCode.INTERNAL, f"remote system powerstore-{peer} unreachable")
            self._fault(FaultKind.FAIL_RESYNC, keys, here)
            for key in keys:
                model.set_link(key, Link.ACTIVE, now)
                model.request_resync(key, peer, now)
        elif Link.FAILED_OVER in links:
            raise DriverError(grpc.StatusCode.UNKNOWN, f"the session is failed over: {action} needs a reprotect")
        elif action == "SYNC":
            if not model.site_up[peer]:
                raise DriverError(grpc.StatusCode.INTERNAL, f"remote system powerstore-{peer} unreachable")
            for key in keys:
                model.ship_now(key, now)
        else:
            for key in keys:
                model.set_link(key, Link.SUSPENDED if action == "SUSPEND" else Link.ACTIVE, now)

    # ------------------------------------------------------------------------------------------------ status

    def group_status(self, request: Any) -> Any:
        """The session's state and whether this side is its source (the replicator's monitor polls this)."""
        keys = self._members(request.protection_group_id)
        return self.pb.GetStorageProtectionGroupStatusResponse(status=self._status(keys))

    def _status(self, keys: tuple[VolumeKey, ...]) -> Any:
        state = self.pb.StorageProtectionGroupStatus.State
        with self._array():
            model, here, peer = self.simulator.model, self.cluster, self.peer
            links = {v.link for k in keys if (v := model.get(k)) is not None}
            if not keys:
                value = state.EMPTY
            elif not model.site_up[peer]:
                value = state.UNKNOWN  # Fractured: the peer array does not answer
            elif Link.SUSPENDED in links:
                value = state.SUSPENDED
            elif Link.FAILED_OVER in links:
                value = state.FAILEDOVER
            elif any(model.syncing(k, here) or model.syncing(k, peer) for k in keys):
                value = state.SYNC_IN_PROGRESS
            elif all(model.replicating(k, here) for k in keys):
                value = state.SYNCHRONIZED
            else:
                value = state.INVALID
            source = bool(keys) and all(model.writable(k, here) for k in keys)
        return self.pb.StorageProtectionGroupStatus(state=value, isSource=source)
