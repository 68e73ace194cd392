"""The demo data: PostgreSQL-like groups (one per backend, or more) and one Redis, primary on the first cluster.

Each group lives in its own namespace on both clusters: a StatefulSet ``postgres`` (1 replica on the primary, 0 on
the secondary) whose data, WAL and config PVCs exist on both sides (the replicated volumes), plus the backend's
class and replication objects. ``redis-prod`` is the single-volume group: a StatefulSet ``redis`` with one PVC,
replicated by a csi-addons VolumeReplication of its own. :func:`demo_config` is the matching ``orchestrate.yaml``.
:func:`demo_groups` makes more groups than the five named ones for site failovers: the four backends in turn,
spread over three priority tiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adapters.base import Backend
from clusters.api import NAMESPACES, PVCS, STATEFULSETS, ClusterApi, JsonObject, Resource
from clusters.errors import ConflictError
from sandbox.csi_addons import NAMESPACE as CSI_ADDONS_NAMESPACE
from sandbox.csi_addons import REPLICATION_SECRET as CSI_ADDONS_SECRET
from sandbox.simulator.kube import (
    CSI_ADDONS_DRIVER,
    POWERSTORE_DRIVER,
    protection_group_id,
    volume_handle,
)

VOLUMES = ("data", "wal", "config")
APP = "postgres"
SINGLE_VOLUME_APP = "redis"
"""The application of the single-volume demo group (one PVC, ``data``)."""
DELL_GROUP_LABEL = "replication.storage.dell.com/replicationGroupName"
INITIAL_SOURCE_ANNOTATION = "sandbox.failover-orchestrator.io/initial-source"

CSI_VGRC = Resource(
    "replication.storage.openshift.io",
    "v1alpha1",
    "volumegroupreplicationclasses",
    "VolumeGroupReplicationClass",
    namespaced=False,
)
CSI_VGR = Resource("replication.storage.openshift.io", "v1alpha1", "volumegroupreplications", "VolumeGroupReplication")
CSI_VR = Resource("replication.storage.openshift.io", "v1alpha1", "volumereplications", "VolumeReplication")
CSI_VRC = Resource(
    "replication.storage.openshift.io",
    "v1alpha1",
    "volumereplicationclasses",
    "VolumeReplicationClass",
    namespaced=False,
)
STORAGE_CLASSES = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False)
PERSISTENT_VOLUMES = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
RBD_STORAGE_CLASS = "rbd-replicated"
POWERSTORE_STORAGE_CLASS = "powerstore-replicated"
"""The StorageClass of the PowerStore groups' volumes when the upstream Dell controllers run (the same name on both
clusters, each naming the other as its remote)."""
DELL = "replication.storage.dell.com/"
"""The StorageClass of the csi-addons groups' volumes: CSI PersistentVolumes of the driver the simulator plays."""
REPLICATION_SECRET = (CSI_ADDONS_SECRET, CSI_ADDONS_NAMESPACE)
"""The Secret the csi-addons classes name (the sidecar reads it before every driver call)."""
UNIFIED_VGRC = Resource(
    "replication.unified.io",
    "v1alpha2",
    "volumegroupreplicationclasses",
    "VolumeGroupReplicationClass",
    namespaced=False,
)
UNIFIED_VGR = Resource("replication.unified.io", "v1alpha2", "volumegroupreplications", "VolumeGroupReplication")
SNAPSHOT_CLASS = Resource(
    "snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", "VolumeSnapshotClass", namespaced=False
)
TMR = Resource("trident.netapp.io", "v1", "tridentmirrorrelationships", "TridentMirrorRelationship")
DELL_RG = Resource(
    "replication.storage.dell.com", "v1", "dellcsireplicationgroups", "DellCSIReplicationGroup", namespaced=False
)


@dataclass(frozen=True)
class DemoGroup:
    """One demo protection group."""

    name: str
    backend: Backend
    priority: int | None = None
    """The site-failover tier (``None``: the configuration's default)."""
    single_volume: bool = False
    """csi-addons only: one PVC (a Redis StatefulSet's), replicated by a VolumeReplication rather than a VGR."""

    @property
    def namespace(self) -> str:
        """Each group has a namespace of its own name."""
        return self.name

    @property
    def app(self) -> str:
        """The StatefulSet (and its pods' ``app`` label)."""
        return SINGLE_VOLUME_APP if self.single_volume else APP

    @property
    def volumes(self) -> tuple[str, ...]:
        """The StatefulSet's volume claim templates."""
        return VOLUMES[:1] if self.single_volume else VOLUMES

    @property
    def pvcs(self) -> tuple[str, ...]:
        """The StatefulSet's PVC names for ordinal 0."""
        return tuple(f"{volume}-{self.app}-0" for volume in self.volumes)

    @property
    def replication_name(self) -> str:
        """The VGR (or single-volume VR) name: the application's; the RG name for PowerStore."""
        return f"rg-{self.name}" if self.backend is Backend.POWERSTORE else self.app


DEMO_GROUPS = (
    DemoGroup("pg-prod", Backend.CSI_ADDONS),
    DemoGroup("pg-unified", Backend.UNIFIED),
    DemoGroup("pg-trident", Backend.TRIDENT),
    DemoGroup("pg-powerstore", Backend.POWERSTORE),
    DemoGroup("redis-prod", Backend.CSI_ADDONS, single_volume=True),
)
TIER_PRIORITIES = (10, 20, 30)


def demo_groups(count: int = len(DEMO_GROUPS), only: tuple[str, ...] = ()) -> tuple[DemoGroup, ...]:
    """The first ``count`` of the five named demo groups, or more: the four backends in turn, over three tiers.

    With more than five, the first third has priority 10, the next 20, the rest 30; the five alone keep the
    configuration's default priority. ``only`` (names of named groups) chooses those instead of ``count``.
    """
    if only:
        unknown = sorted(set(only) - {g.name for g in DEMO_GROUPS})
        if unknown:
            known = ", ".join(g.name for g in DEMO_GROUPS)
            raise ValueError(f"no demo group {', '.join(unknown)}; the demo groups are {known}")
        return tuple(g for g in DEMO_GROUPS if g.name in only)
    if count < 1:
        raise ValueError("the lab needs at least one demo group")
    if count <= len(DEMO_GROUPS):
        return DEMO_GROUPS[:count]
    backends = [g.backend for g in DEMO_GROUPS if not g.single_volume]
    groups = []
    for index in range(count):
        named = DEMO_GROUPS[index] if index < len(DEMO_GROUPS) else None
        tier = TIER_PRIORITIES[index * len(TIER_PRIORITIES) // count]
        if named is not None:
            groups.append(DemoGroup(named.name, named.backend, tier, named.single_volume))
        else:
            groups.append(DemoGroup(f"app-{index + 1:03d}", backends[index % len(backends)], tier))
    return tuple(groups)


def _create(api: ClusterApi, resource: Resource, body: JsonObject, namespace: str | None = None) -> JsonObject:
    """Create, or return the existing object (the demo can be installed twice)."""
    try:
        return api.create(resource, body, namespace)
    except ConflictError:
        return api.get(resource, body["metadata"]["name"], namespace)


def _statefulset(group: DemoGroup, replicas: int) -> JsonObject:
    app = group.app
    claim = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "kwok-volume",
    }
    image, mount = ("redis:7", "/data") if group.single_volume else ("postgres:16", "/var/lib/postgresql")
    return {
        "metadata": {"name": app, "labels": {"app": app}},
        "spec": {
            "replicas": replicas,
            "serviceName": app,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {
                    "containers": [
                        {
                            "name": app,
                            "image": image,
                            "volumeMounts": [{"name": v, "mountPath": f"{mount}/{v}"} for v in group.volumes],
                        }
                    ]
                },
            },
            "volumeClaimTemplates": [
                {"metadata": {"name": v, "labels": {"app": app}}, "spec": claim} for v in group.volumes
            ],
        },
    }


def _pvc(group: DemoGroup, name: str, real_dell: bool) -> JsonObject:
    labels = {"app": group.app}
    if group.backend is Backend.POWERSTORE and not real_dell:
        labels[DELL_GROUP_LABEL] = group.replication_name
    spec: JsonObject = {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "kwok-volume",
        "resources": {"requests": {"storage": "1Gi"}},
    }
    if group.backend is Backend.CSI_ADDONS:
        spec.update(storageClassName=RBD_STORAGE_CLASS, volumeName=_pv_name(group, name))
    elif group.backend is Backend.POWERSTORE and real_dell:
        spec.update(storageClassName=POWERSTORE_STORAGE_CLASS, volumeName=_pv_name(group, name))
    return {"metadata": {"name": name, "labels": labels}, "spec": spec}


def _pv_name(group: DemoGroup, pvc: str) -> str:
    return f"pv-{group.namespace}-{pvc}"


def _csi_volumes(api: ClusterApi, group: DemoGroup) -> None:
    """CSI PersistentVolumes of the simulated RBD driver (and their StorageClass), pre-bound to the group's PVCs.

    What a provisioner would have made (the controller manager binds each pair), so that the csi-addons controllers
    find the volume handles.
    """
    _create(
        api,
        STORAGE_CLASSES,
        {
            "metadata": {"name": RBD_STORAGE_CLASS},
            "provisioner": CSI_ADDONS_DRIVER,
            "reclaimPolicy": "Retain",
            "volumeBindingMode": "Immediate",
        },
    )
    for pvc in group.pvcs:
        _csi_volume(api, group, pvc)


def _csi_volume(
    api: ClusterApi, group: DemoGroup, pvc: str, driver: str = CSI_ADDONS_DRIVER, storage_class: str = RBD_STORAGE_CLASS
) -> None:
    _create(
        api,
        PERSISTENT_VOLUMES,
        {
            "metadata": {"name": _pv_name(group, pvc)},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": storage_class,
                "claimRef": {"namespace": group.namespace, "name": pvc},
                "csi": {"driver": driver, "volumeHandle": volume_handle(group.namespace, pvc)},
            },
        },
    )


def _powerstore_volumes(api: ClusterApi, group: DemoGroup, peer: str, provisioned: bool) -> None:
    """The replicated PowerStore StorageClass, and (``provisioned``: on the first source) the group's CSI volumes.

    What csi-powerstore's provisioner would have made, pre-bound to the PVCs. The peer's volumes are the upstream
    Dell replication controller's to make (and the controller manager binds them to the waiting PVCs).
    """
    _create(
        api,
        STORAGE_CLASSES,
        {
            "metadata": {"name": POWERSTORE_STORAGE_CLASS},
            "provisioner": POWERSTORE_DRIVER,
            "reclaimPolicy": "Retain",
            "volumeBindingMode": "Immediate",
            "parameters": {
                f"{DELL}isReplicationEnabled": "true",
                f"{DELL}remoteStorageClassName": POWERSTORE_STORAGE_CLASS,
                f"{DELL}remoteClusterID": peer,
                f"{DELL}remoteSystem": f"powerstore-{peer}",
                f"{DELL}rpo": "Five_Minutes",
                f"{DELL}ignoreNamespaces": "false",
                f"{DELL}volumeGroupPrefix": "csi",
            },
        },
    )
    if provisioned:
        for pvc in group.pvcs:
            _csi_volume(api, group, pvc, POWERSTORE_DRIVER, POWERSTORE_STORAGE_CLASS)


def install_group(
    apis: dict[str, ClusterApi], group: DemoGroup, primary: str, secondary: str, real_dell: bool = False
) -> None:
    """Create one group's namespace, PVCs, StatefulSet and replication objects on both clusters.

    ``real_dell``: the upstream Dell controllers run, so a PowerStore group's volumes are CSI volumes of
    csi-powerstore (the simulated Dell controller needs none).
    """
    pvc_uids: dict[str, dict[str, str]] = {}
    for cluster in (primary, secondary):
        api = apis[cluster]
        _create(api, NAMESPACES, {"metadata": {"name": group.namespace}})
        if group.backend is Backend.CSI_ADDONS:
            _csi_volumes(api, group)
        elif group.backend is Backend.POWERSTORE and real_dell:
            peer = secondary if cluster == primary else primary
            _powerstore_volumes(api, group, peer, provisioned=cluster == primary)
        pvc_uids[cluster] = {
            name: _create(api, PVCS, _pvc(group, name, real_dell), group.namespace)["metadata"]["uid"]
            for name in group.pvcs
        }
        _create(api, STATEFULSETS, _statefulset(group, 1 if cluster == primary else 0), group.namespace)
    if group.backend is Backend.POWERSTORE and real_dell:
        return  # the upstream replicator makes the RGs from the volumes (see dell_replication_groups)
    for cluster in (primary, secondary):
        role = "primary" if cluster == primary else "secondary"
        _install_replication(apis[cluster], group, cluster, role, primary, secondary, pvc_uids)


def _install_replication(
    api: ClusterApi,
    group: DemoGroup,
    cluster: str,
    role: str,
    primary: str,
    secondary: str,
    pvc_uids: dict[str, dict[str, str]],
) -> None:
    namespace = group.namespace
    if group.backend is Backend.CSI_ADDONS:
        secret_name, secret_namespace = REPLICATION_SECRET
        prefix = "replication.storage.openshift.io"
        _create(
            api,
            CSI_VGRC,
            {
                "metadata": {"name": "rbd-group"},
                "spec": {
                    "provisioner": CSI_ADDONS_DRIVER,
                    "parameters": {
                        "schedulingInterval": "1m",
                        f"{prefix}/group-replication-secret-name": secret_name,
                        f"{prefix}/group-replication-secret-namespace": secret_namespace,
                    },
                },
            },
        )
        _create(
            api,
            CSI_VRC,
            {
                "metadata": {"name": "rbd-volume"},
                "spec": {
                    "provisioner": CSI_ADDONS_DRIVER,
                    "parameters": {
                        "mirroringMode": "snapshot",
                        "schedulingInterval": "1m",
                        f"{prefix}/replication-secret-name": secret_name,
                        f"{prefix}/replication-secret-namespace": secret_namespace,
                    },
                },
            },
        )
        if group.single_volume:
            (pvc,) = group.pvcs
            spec: JsonObject = {
                "volumeReplicationClass": "rbd-volume",
                "dataSource": {"kind": "PersistentVolumeClaim", "name": pvc},
            }
            resource = CSI_VR
        else:
            spec = {
                "volumeGroupReplicationClassName": "rbd-group",
                "volumeReplicationClassName": "rbd-volume",
                "source": {"selector": {"matchLabels": {"app": group.app}}},
            }
            resource = CSI_VGR
        spec.update(replicationState=role, autoResync=False)
        _create(api, resource, {"metadata": {"name": group.replication_name}, "spec": spec}, namespace)
    elif group.backend is Backend.UNIFIED:
        _create(
            api,
            UNIFIED_VGRC,
            {
                "metadata": {"name": "unified-group"},
                "spec": {"provisioner": "rbd.csi.ceph.com", "parameters": {"schedulingInterval": "1m"}},
            },
        )
        _create(
            api,
            UNIFIED_VGR,
            {
                "metadata": {"name": group.replication_name},
                "spec": {
                    "volumeGroupReplicationClass": "unified-group",
                    "selector": {"matchLabels": {"app": group.app}},
                    "replicationState": role,
                    "autoResync": False,
                },
            },
            namespace,
        )
    elif group.backend is Backend.TRIDENT:
        _create(
            api,
            SNAPSHOT_CLASS,
            {"metadata": {"name": "trident-snapshots"}, "driver": "csi.trident.netapp.io", "deletionPolicy": "Delete"},
        )
        for pvc in group.pvcs:
            mapping: dict[str, Any] = {"localPVCName": pvc}
            if role == "secondary":
                uid = pvc_uids[primary][pvc].split("-")[0]
                mapping["remoteVolumeHandle"] = f"svm-{primary}:trident_pvc_{uid}"
            _create(
                api,
                TMR,
                {
                    "metadata": {"name": pvc},
                    "spec": {
                        "state": "promoted" if role == "primary" else "established",
                        "replicationPolicy": "MirrorAllSnapshots",
                        "replicationSchedule": "1m",
                        "volumeMappings": [mapping],
                    },
                },
                namespace,
            )
    else:
        peer = secondary if cluster == primary else primary
        _create(
            api,
            DELL_RG,
            {
                "metadata": {"name": group.replication_name, "annotations": {INITIAL_SOURCE_ANNOTATION: primary}},
                "spec": {
                    "driverName": "csi-powerstore.dellemc.com",
                    "action": "",
                    "remoteClusterId": peer,
                    "protectionGroupId": protection_group_id(cluster, group.namespace),
                    "remoteProtectionGroupId": protection_group_id(peer, group.namespace),
                    "requestParametersClass": "powerstore-replication",
                },
            },
        )


def install_demo(
    apis: dict[str, ClusterApi],
    primary: str = "dc1",
    secondary: str = "dc2",
    groups: tuple[DemoGroup, ...] = DEMO_GROUPS,
    real_dell: bool = False,
) -> None:
    """Install every demo group (``real_dell``: for the upstream Dell controllers, see :func:`install_group`)."""
    for group in groups:
        install_group(apis, group, primary, secondary, real_dell)


def dell_replication_groups(
    apis: dict[str, ClusterApi], primary: str, groups: tuple[DemoGroup, ...], timeout: float = 90.0
) -> dict[str, str]:
    """The RG the upstream Dell replicator made for each PowerStore group (group name -> RG name).

    The replicator names an RG ``rg-<uuid>`` when it protects the first volume of a volume group and labels each
    volume's PV and PVC with it; the controller creates the peer's RG under the same name. This waits until every
    PVC of the group on ``primary`` names the same RG and that RG exists on every cluster.
    """
    from sandbox.processes import wait_until

    found: dict[str, str] = {}
    for group in groups:
        if group.backend is not Backend.POWERSTORE:
            continue

        def one_rg_everywhere() -> bool:
            pvcs = apis[primary].list(PVCS, group.namespace)  # noqa: B023 - used at once
            names = {(p["metadata"].get("labels") or {}).get(DELL_GROUP_LABEL) for p in pvcs}
            if len(pvcs) != len(group.pvcs) or len(names) != 1 or None in names:  # noqa: B023
                return False
            name = str(names.pop())
            if not all(api.find(DELL_RG, name) for api in apis.values()):
                return False
            found[group.name] = name  # noqa: B023
            return True

        wait_until(one_rg_everywhere, f"the Dell replicator's RG of demo group {group.name}", timeout)
    return found


def demo_config(
    kubeconfig: Path,
    temporal_address: str,
    clusters: tuple[str, str] = ("dc1", "dc2"),
    groups: tuple[DemoGroup, ...] = DEMO_GROUPS,
    replication_names: Mapping[str, str] | None = None,
) -> str:
    """The ``orchestrate.yaml`` of the demo groups.

    ``replication_names`` (group -> RG or VGR name) overrides the demo's names where the storage controllers chose.
    """
    entries = []
    for group in groups:
        replication: dict[str, Any] = {"pvcs": list(group.pvcs)}
        if group.backend is Backend.TRIDENT:
            replication["snapshot_class"] = "trident-snapshots"
        else:
            replication["name"] = (replication_names or {}).get(group.name, group.replication_name)
        if group.single_volume:
            replication["single_volume"] = True
        entry: dict[str, Any] = {
            "name": group.name,
            "namespace": group.namespace,
            "backend": group.backend.value,
            "clusters": list(clusters),
            "replication": replication,
            "workloads": [{"kind": "StatefulSet", "name": group.app, "replicas": 1}],
            "rpo": "5m",
            "monitor_interval": "1s",
            "timeouts": {
                "quiesce": "2m",
                "demote": "2m",
                "final_sync": "5m",
                "promote": "2m",
                "start": "3m",
                "reprotect": "5m",
            },
        }
        if group.priority is not None:
            entry["priority"] = group.priority
        entries.append(entry)
    document = {
        "temporal": {"address": temporal_address, "namespace": "default", "task_queue": "failover-orchestrator"},
        "clusters": [{"name": c, "site": c, "kubeconfig": str(kubeconfig), "context": c} for c in clusters],
        "groups": entries,
    }
    return "# Written by `orchestrate sandbox up` for the lab's demo groups.\n" + yaml.safe_dump(
        document, sort_keys=False
    )


def wait_until_protected(config_file: Path, timeout: float = 180.0) -> None:
    """Wait until ``orchestrate status`` would call every demo group protected (:func:`observe_group`'s rule).

    Health counts too: right after the VolumeReplications are enabled the upstream csi-addons controller reports
    the Secondary Degraded until its first sync pass, and ``status`` would call the fresh lab "NOT protected".
    """
    from clusters.registry import ClusterRegistry
    from orchestrate.config import load_config
    from orchestrate.service import observe_group
    from sandbox.processes import wait_until

    config = load_config(config_file)
    registry = ClusterRegistry(config.clusters)
    try:
        for group in config.groups:
            wait_until(
                lambda: observe_group(registry, config, group).protected,  # noqa: B023 - used at once
                f"demo group {group.name} replicating",
                timeout,
            )
    finally:
        registry.close()
