"""The storage array behind the real csi-addons sidecar: one cluster's csi-addons driver services on a unix socket.

The lab runs the upstream csi-addons manager and sidecar; the sidecar forwards every replication and volume-group
call to the driver socket, which this module serves from the simulator's replication model, as ceph-csi's RBD
driver answers them (its findings: sandbox/real-controllers-research.md). So the real controllers write
VolumeReplication / VolumeGroupReplication status, and the simulator only plays the array: what each side holds,
what a promotion loses, the injected faults and latencies.

The socket, the error codes and the locking are :mod:`sandbox.simulator.grpc_driver`'s.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import grpc

from sandbox.controller_build import STUBS_PACKAGE
from sandbox.simulator.grpc_driver import DRIVER_VERSION, DriverError, GrpcDriver, Services, load_stubs
from sandbox.simulator.kube import CSI_ADDONS_DRIVER, parse_volume_handle, volume_handle
from sandbox.simulator.model import VolumeKey, group_last_shipment
from sandbox.simulator.schemas import FaultKind

if TYPE_CHECKING:
    from pathlib import Path

    from sandbox.simulator.engine import Simulator

log = logging.getLogger(__name__)


class CsiAddonsDriver(GrpcDriver):
    """The csi-addons Identity, replication.Controller and volumegroup.Controller of one cluster's storage.

    Args:
        simulator: the simulator whose model is the array (its lock guards every call).
        cluster: the cluster whose storage this is.
        stubs: the folder holding :data:`STUBS_PACKAGE`.
    """

    def __init__(self, simulator: Simulator, cluster: str, stubs: Path) -> None:
        super().__init__(simulator, cluster, CSI_ADDONS_DRIVER)
        self.identity_pb, self.replication_pb, self.volumegroup_pb = load_stubs(
            stubs, STUBS_PACKAGE, "identity", "replication", "volumegroup"
        )
        self._groups: dict[str, tuple[VolumeKey, ...]] = {}
        """The volume groups (RBD groups) made on this cluster: their volumes by group id."""
        self._frozen_sync: dict[tuple[VolumeKey, ...], Any] = {}

    def services(self) -> Services:
        """Identity, replication.Controller and volumegroup.Controller, as the sidecar calls them."""
        return {
            "identity.Identity": {
                "GetIdentity": (self.get_identity, self.identity_pb.GetIdentityRequest),
                "GetCapabilities": (self.get_capabilities, self.identity_pb.GetCapabilitiesRequest),
                "Probe": (self.probe, self.identity_pb.ProbeRequest),
            },
            "replication.Controller": {
                name: (getattr(self, method), getattr(self.replication_pb, f"{name}Request"))
                for name, method in (
                    ("EnableVolumeReplication", "enable"),
                    ("DisableVolumeReplication", "disable"),
                    ("PromoteVolume", "promote"),
                    ("DemoteVolume", "demote"),
                    ("ResyncVolume", "resync"),
                    ("GetVolumeReplicationInfo", "replication_info"),
                )
            },
            "volumegroup.Controller": {
                name: (getattr(self, method), getattr(self.volumegroup_pb, f"{name}Request"))
                for name, method in (
                    ("CreateVolumeGroup", "create_group"),
                    ("ModifyVolumeGroupMembership", "modify_group"),
                    ("DeleteVolumeGroup", "delete_group"),
                    ("ControllerGetVolumeGroup", "get_group"),
                )
            },
        }

    # ------------------------------------------------------------------------------------------------ identity

    def get_identity(self, _request: Any) -> Any:
        """The driver's name (the classes' provisioner) and version."""
        return self.identity_pb.GetIdentityResponse(name=CSI_ADDONS_DRIVER, vendor_version=DRIVER_VERSION)

    def get_capabilities(self, _request: Any) -> Any:
        """A controller service with volume replication and volume groups (what the manager looks for)."""
        capability = self.identity_pb.Capability
        return self.identity_pb.GetCapabilitiesResponse(
            capabilities=[
                capability(service=capability.Service(type=capability.Service.CONTROLLER_SERVICE)),
                capability(
                    volume_replication=capability.VolumeReplication(
                        type=capability.VolumeReplication.VOLUME_REPLICATION
                    )
                ),
                capability(volume_group=capability.VolumeGroup(type=capability.VolumeGroup.VOLUME_GROUP)),
                capability(volume_group=capability.VolumeGroup(type=capability.VolumeGroup.MODIFY_VOLUME_GROUP)),
                capability(volume_group=capability.VolumeGroup(type=capability.VolumeGroup.GET_VOLUME_GROUP)),
            ]
        )

    def probe(self, _request: Any) -> Any:
        """Ready while the site's storage is up."""
        ready = self.simulator.model.site_up[self.cluster]
        return self.identity_pb.ProbeResponse(ready={"value": ready})

    # ------------------------------------------------------------------------------------------------ volumes

    def _keys(self, request: Any) -> tuple[VolumeKey, ...]:
        source = request.replication_source
        if source.HasField("volumegroup"):
            group_id = source.volumegroup.volume_group_id
            with self.simulator.locked():
                members = self._groups.get(group_id)
            if members is None:
                raise DriverError(grpc.StatusCode.NOT_FOUND, f"volume group {group_id} not found")
            return members
        handle = source.volume.volume_id if source.HasField("volume") else request.volume_id
        return (self._key(handle),)

    def _key(self, handle: str) -> VolumeKey:
        parsed = parse_volume_handle(handle)
        if parsed is None:
            raise DriverError(grpc.StatusCode.NOT_FOUND, f"volume {handle!r} not found")
        return VolumeKey(*parsed)

    def _take_fault(self, kind: FaultKind, keys: tuple[VolumeKey, ...]) -> None:
        fault = self.simulator.faults.take(kind, self._fault_groups(keys), self.cluster)
        if fault is not None:
            action = kind.value.removeprefix("fail-")
            raise DriverError(grpc.StatusCode.INTERNAL, f"failed to {action} volume: injected fault ({fault.fired})")

    # ------------------------------------------------------------------------------------------------ replication

    def enable(self, request: Any) -> Any:
        """Mirroring enabled: the volumes exist in the model (FailedPrecondition under refuse-enable)."""
        keys = self._keys(request)
        with self._array() as now:
            fault = self.simulator.faults.take(FaultKind.REFUSE_ENABLE, self._fault_groups(keys), self.cluster)
            if fault is not None:
                raise DriverError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"parent image of {keys[0].pvc} is not enabled for mirroring: injected fault ({fault.fired})",
                )
            for key in keys:
                self.simulator.model.ensure(key, now)
        return self.replication_pb.EnableVolumeReplicationResponse()

    def disable(self, request: Any) -> Any:
        """Mirroring disabled: nothing to undo in the model (an unknown volume is fine, as for ceph-csi)."""
        return self.replication_pb.DisableVolumeReplicationResponse()

    def promote(self, request: Any) -> Any:
        """Promote every volume; FailedPrecondition while the peer is still primary unless ``force``."""
        keys = self._keys(request)
        self._latency(self.simulator.config.promote_latency)
        with self._array() as now:
            model = self.simulator.model
            self._take_fault(FaultKind.FAIL_PROMOTE, keys)
            pending = [k for k in keys if not model.writable(k, self.cluster)]
            busy = [k.pvc for k in pending if model.writable(k, self.peer)]
            if busy and not request.force:
                raise DriverError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"failed to promote image: Device or resource busy ({', '.join(busy)} primary on {self.peer})",
                )
            for key in pending:
                model.promote(key, self.cluster, now, force=request.force)
        return self.replication_pb.PromoteVolumeResponse()

    def demote(self, request: Any) -> Any:
        """Demote every volume (the final sync to the peer follows); refused while in use under the fault."""
        keys = self._keys(request)
        self._latency(self.simulator.config.demote_latency)
        with self._array() as now:
            if self.simulator.faults.active(FaultKind.REFUSE_DEMOTE_IN_USE, self._fault_groups(keys), self.cluster):
                usage = self.simulator.volume_usage(self.cluster, keys)
                if usage:
                    raise DriverError(grpc.StatusCode.FAILED_PRECONDITION, f"failed to demote volume: {usage}")
            self._take_fault(FaultKind.FAIL_DEMOTE, keys)
            for key in keys:
                if self.simulator.model.writable(key, self.cluster):
                    self.simulator.model.demote(key, self.cluster, now, final_sync=True)
        return self.replication_pb.DemoteVolumeResponse()

    def resync(self, request: Any) -> Any:
        """Resync a split-brained secondary from the peer, as ceph-csi does.

        A diverged volume is resynced only with ``force``, and that call answers Unavailable "awaiting initial
        resync due to split brain" (the controller retries); ready only once nothing is diverged or syncing.
        """
        keys = self._keys(request)
        with self._array() as now:
            model = self.simulator.model
            if any(model.writable(k, self.cluster) for k in keys):
                raise DriverError(grpc.StatusCode.INVALID_ARGUMENT, "image is in primary state")
            diverged = [k for k in keys if model.diverged(k, self.cluster) and not model.syncing(k, self.cluster)]
            if diverged and request.force:
                self._take_fault(FaultKind.FAIL_RESYNC, keys)
                for key in diverged:
                    model.request_resync(key, self.cluster, now)
                raise DriverError(grpc.StatusCode.UNAVAILABLE, "awaiting initial resync due to split brain")
            ready = not any(model.diverged(k, self.cluster) or model.syncing(k, self.cluster) for k in keys)
        return self.replication_pb.ResyncVolumeResponse(ready=ready)

    def replication_info(self, request: Any) -> Any:
        """The last completed shipment of a primary (frozen under stop-lag-updates)."""
        keys = self._keys(request)
        with self._array():
            model = self.simulator.model
            if not all(model.writable(k, self.cluster) for k in keys):
                raise DriverError(grpc.StatusCode.INVALID_ARGUMENT, "image is not in primary state")
            response = self.replication_pb.GetVolumeReplicationInfoResponse
            healthy = all(model.replicating(k, self.cluster) for k in keys)
            status = response.HEALTHY if healthy else response.DEGRADED
            if self.simulator.faults.active(FaultKind.STOP_LAG_UPDATES, self._fault_groups(keys), self.cluster):
                frozen = self._frozen_sync.get(keys)
                if frozen is not None:
                    return frozen
            info = response(status=status)
            last = group_last_shipment(model, keys)
            if last is not None:
                volumes = [v for k in keys if (v := model.get(k)) is not None]
                info.last_sync_time.FromNanoseconds(int(last * 1e9))
                info.last_sync_duration.FromNanoseconds(int(max(v.last_shipment_duration for v in volumes) * 1e9))
                writes = sum(v.last_shipment_writes for v in volumes)
                info.last_sync_bytes = writes * self.simulator.config.write_bytes
            self._frozen_sync[keys] = info
        return info

    # ------------------------------------------------------------------------------------------------ groups

    def _group(self, group_id: str) -> Any:
        members = self._groups.get(group_id)
        if members is None:
            raise DriverError(grpc.StatusCode.NOT_FOUND, f"volume group {group_id} not found")
        return self.volumegroup_pb.VolumeGroup(
            volume_group_id=group_id, volumes=[{"volume_id": volume_handle(k.namespace, k.pvc)} for k in members]
        )

    def create_group(self, request: Any) -> Any:
        """A group of the given volumes, its id the requested name (idempotent)."""
        keys = tuple(sorted(self._key(h) for h in request.volume_ids))
        with self._array():
            self._groups[request.name] = keys
            group = self._group(request.name)
        return self.volumegroup_pb.CreateVolumeGroupResponse(volume_group=group)

    def modify_group(self, request: Any) -> Any:
        """The group now holds exactly the given volumes."""
        keys = tuple(sorted(self._key(h) for h in request.volume_ids))
        with self._array():
            self._group(request.volume_group_id)
            self._groups[request.volume_group_id] = keys
            group = self._group(request.volume_group_id)
        return self.volumegroup_pb.ModifyVolumeGroupMembershipResponse(volume_group=group)

    def delete_group(self, request: Any) -> Any:
        """The group is gone (an unknown one too: deletion is idempotent)."""
        with self._array():
            self._groups.pop(request.volume_group_id, None)
        return self.volumegroup_pb.DeleteVolumeGroupResponse()

    def get_group(self, request: Any) -> Any:
        """The group and its volumes."""
        with self._array():
            group = self._group(request.volume_group_id)
        return self.volumegroup_pb.ControllerGetVolumeGroupResponse(volume_group=group)
