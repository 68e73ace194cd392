"""The two-site lab: N Kubernetes control planes and a Temporal dev server, with state kept on disk.

``Lab.create(...).up()`` starts everything; the state file (``<root>/state.json``) records ports and pids, so
``Lab.load(root)`` in a later process (``orchestrate sandbox down``, a fault test) reaches the same processes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusters.api import ClusterApi
from clusters.kubeclient import close_api_client
from orchestrate.config import user_config_path
from sandbox.binaries import LabBinaries, ensure_binaries
from sandbox.cluster import ClusterPorts, ClusterState, LabCluster, write_kubeconfig
from sandbox.controller_build import CsiAddonsBuild, DellReplicationBuild, ensure_csi_addons, ensure_dell_replication
from sandbox.controller_stack import ControllerStack
from sandbox.csi_addons import CsiAddonsStack
from sandbox.dell_replication import DellReplicationStack
from sandbox.manifests import apply_manifests, crd_documents, wait_for_crds
from sandbox.processes import free_port, port_is_free
from sandbox.simulator.config import DriverSockets
from sandbox.simulator_process import SimulatorProcess, SimulatorState, WorkerProcess, WorkerState
from sandbox.temporal_server import TemporalDevServer, TemporalState

DEFAULT_CLUSTERS = ("dc1", "dc2")
DEFAULT_TEMPORAL_PORT = 7233
DEFAULT_TEMPORAL_UI_PORT = 8233
DEFAULT_DEMO_GROUPS = 5
"""The five named demo groups: one per backend, and the single-volume csi-addons group ``redis-prod``."""
MAX_DEMO_GROUPS = 200

STORAGE_CLASS: dict[str, Any] = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "kwok-volume", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "kwok.x-k8s.io/volume",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}
"""The default StorageClass whose PVCs kwok's volume stages provision and bind."""


def default_root() -> Path:
    """``$ORCHESTRATE_LAB_DIR``, else the user's state folder."""
    configured = os.environ.get("ORCHESTRATE_LAB_DIR")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "failover-orchestrator" / "lab"


class LabError(RuntimeError):
    """The lab is not in the state an operation needs (e.g. ``down`` with no lab up)."""


@dataclass
class LabSummary:
    """What a user needs to reach a running lab."""

    root: Path
    kubeconfig: Path
    clusters: dict[str, str]
    temporal_address: str | None
    temporal_ui: str | None
    simulator_url: str | None = None
    config_file: Path | None = None


class Lab:
    """A set of lab clusters plus an optional Temporal dev server, rooted in one folder."""

    def __init__(
        self,
        root: Path,
        clusters: Sequence[ClusterState],
        temporal: TemporalState | None,
        binaries: LabBinaries,
        simulator: SimulatorState | None = None,
        demo: bool = False,
        worker: WorkerState | None = None,
        demo_groups: int = DEFAULT_DEMO_GROUPS,
        csi_addons: CsiAddonsBuild | None = None,
        dell: DellReplicationBuild | None = None,
        demo_only: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.demo_only = demo_only
        self.csi_addons = csi_addons
        self.dell = dell
        self.demo_groups = demo_groups
        self.binaries = binaries
        self.clusters = {state.name: LabCluster(state, root, binaries) for state in clusters}
        self.temporal = TemporalDevServer(temporal, root) if temporal else None
        csi_addons_drivers = (
            DriverSockets({name: self.driver_socket(name) for name in self.clusters}, csi_addons.stubs)
            if csi_addons
            else None
        )
        dell_drivers = (
            DriverSockets({name: self.dell_driver_socket(name) for name in self.clusters}, dell.stubs) if dell else None
        )
        self.simulator = (
            SimulatorProcess(simulator, root, self.kubeconfig, list(self.clusters), csi_addons_drivers, dell_drivers)
            if simulator
            else None
        )
        self.demo = demo
        self.worker = WorkerProcess(worker, root, self.config_file) if worker and demo else None

    # ----------------------------------------------------------------------------------------- construction

    @classmethod
    def create(
        cls,
        root: Path | None = None,
        cluster_names: Sequence[str] = DEFAULT_CLUSTERS,
        with_temporal: bool = True,
        temporal_port: int | None = None,
        temporal_ui_port: int | None = None,
        binaries: LabBinaries | None = None,
        with_simulator: bool = True,
        with_demo: bool = True,
        with_worker: bool = False,
        demo_groups: int = DEFAULT_DEMO_GROUPS,
        real_csi_addons: bool = False,
        real_dell: bool = False,
        demo_only: tuple[str, ...] = (),
    ) -> Lab:
        """Plan a new lab; ports are free ones (Temporal gets 7233/8233 when asked and free).

        Args:
            root: the lab folder.
            cluster_names: one control plane each.
            with_temporal: start a Temporal dev server.
            temporal_port: its frontend port.
            temporal_ui_port: its Web UI port.
            binaries: the lab binaries (found or built when omitted).
            with_simulator: start the storage simulator process.
            with_demo: install the demo groups and write ``orchestrate.yaml`` (needs the simulator).
            with_worker: run an ``orchestrate worker`` for the demo configuration (needs the demo).
            demo_groups: how many demo groups (the five named ones; more are spread over three priority tiers).
            real_csi_addons: run the upstream csi-addons manager and sidecar on every cluster (built when
                missing), the simulator answering their driver calls (needs the simulator).
            real_dell: run the upstream Dell csm-replication controller and replicator on every cluster (built
                when missing), the simulator answering the replicator's PowerStore calls (needs the simulator).
            demo_only: install only these named demo groups (instead of ``demo_groups``).
        """
        root = root or default_root()
        if (root / "state.json").exists():
            raise LabError(f"a lab is already recorded in {root}: run `orchestrate sandbox down` first")
        taken: set[int] = set()
        clusters = [ClusterState(name=name, site=name, ports=ClusterPorts.allocate(taken)) for name in cluster_names]
        temporal: TemporalState | None = None
        if with_temporal:
            port = temporal_port or free_port(taken)
            ui_port = temporal_ui_port or free_port(taken)
            for wanted in (port, ui_port):
                if not port_is_free(wanted):
                    raise LabError(f"port {wanted} is in use: pass other Temporal ports")
            taken.update((port, ui_port))
            temporal = TemporalState(
                port=port, ui_port=ui_port, http_port=free_port(taken), metrics_port=free_port(taken)
            )
        simulator = SimulatorState(port=free_port(taken)) if with_simulator else None
        demo = with_demo and with_simulator
        worker = WorkerState() if with_worker and demo else None
        csi_addons = ensure_csi_addons() if real_csi_addons and with_simulator else None
        dell = ensure_dell_replication() if real_dell and with_simulator else None
        return cls(
            root,
            clusters,
            temporal,
            binaries or ensure_binaries(),
            simulator,
            demo,
            worker,
            demo_groups,
            csi_addons,
            dell,
            demo_only,
        )

    @classmethod
    def load(cls, root: Path | None = None) -> Lab:
        """Reach the lab recorded in ``root`` by an earlier process."""
        root = root or default_root()
        state_file = root / "state.json"
        if not state_file.exists():
            raise LabError(f"no lab is recorded in {root}: run `orchestrate sandbox up`")
        data = json.loads(state_file.read_text())
        clusters = [ClusterState.from_dict(c) for c in data["clusters"]]
        temporal = TemporalState(**data["temporal"]) if data.get("temporal") else None
        simulator = SimulatorState(**data["simulator"]) if data.get("simulator") else None
        worker = WorkerState(**data["worker"]) if data.get("worker") else None
        return cls(
            root,
            clusters,
            temporal,
            ensure_binaries(build=False),
            simulator,
            bool(data.get("demo")),
            worker,
            int(data.get("demo_groups", DEFAULT_DEMO_GROUPS)),
            CsiAddonsBuild.from_dict(data["csi_addons"]) if data.get("csi_addons") else None,
            DellReplicationBuild.from_dict(data["dell"]) if data.get("dell") else None,
            tuple(data.get("demo_only", ())),
        )

    def save(self) -> None:
        """Record ports and pids for later processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = {
            "clusters": [c.state.to_dict() for c in self.clusters.values()],
            "temporal": self.temporal.state.to_dict() if self.temporal else None,
            "simulator": self.simulator.state.to_dict() if self.simulator else None,
            "demo": self.demo,
            "demo_groups": self.demo_groups,
            "demo_only": list(self.demo_only),
            "csi_addons": self.csi_addons.to_dict() if self.csi_addons else None,
            "dell": self.dell.to_dict() if self.dell else None,
            "worker": self.worker.state.to_dict() if self.worker else None,
        }
        tmp = self.root / "state.json.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.root / "state.json")

    # ----------------------------------------------------------------------------------------- lifecycle

    @property
    def kubeconfig(self) -> Path:
        """The kubeconfig with one context per cluster."""
        return self.root / "kubeconfig"

    def cluster(self, name: str) -> LabCluster:
        """The cluster called ``name``."""
        try:
            return self.clusters[name]
        except KeyError:
            raise LabError(f"unknown lab cluster {name!r}; the lab has {', '.join(self.clusters)}") from None

    def up(self) -> LabSummary:
        """Start every cluster (in parallel) and Temporal, install the test CRDs, write the kubeconfig."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.save()
        try:
            with ThreadPoolExecutor(max_workers=len(self.clusters) + 1) as pool:
                futures = [pool.submit(self._start_cluster, c) for c in self.clusters.values()]
                if self.temporal:
                    futures.append(pool.submit(self.temporal.start))
                for future in futures:
                    future.result()
        finally:
            self.save()
        self._write_kubeconfig()
        if self.simulator:
            self.simulator.start()
            self.save()
        for stack in self.controller_stacks():
            self._start_controllers(stack)
        if self.demo:
            self.install_demo()
        if self.worker:
            self.worker.start()
            self.save()
        return self.summary()

    @property
    def config_file(self) -> Path:
        """The ``orchestrate.yaml`` the lab writes for its demo groups."""
        return self.root / "orchestrate.yaml"

    def install_demo(self) -> None:
        """Create the demo groups, wait until each replicates, and write the configuration file."""
        from sandbox.demo import (
            dell_replication_groups,
            demo_config,
            demo_groups,
            install_demo,
            wait_until_protected,
        )

        primary, secondary = list(self.clusters)[:2]
        groups = demo_groups(self.demo_groups, self.demo_only)
        apis = self.cluster_apis()
        try:
            install_demo(apis, primary, secondary, groups, real_dell=self.dell is not None)
            names = dell_replication_groups(apis, primary, groups) if self.dell else {}
        finally:
            for api in apis.values():
                close_api_client(api.api_client)
        address = self.temporal.state.address if self.temporal else "127.0.0.1:7233"
        self.config_file.write_text(demo_config(self.kubeconfig, address, (primary, secondary), groups, names))
        wait_until_protected(self.config_file)
        self._link_user_config()

    def _link_user_config(self) -> None:
        """Link the demo configuration as the user's (only for the default lab, never over a real file)."""
        if os.environ.get("ORCHESTRATE_LAB_DIR"):
            return
        link = user_config_path()
        if link.exists() and not link.is_symlink():
            return
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(self.config_file)

    def _unlink_user_config(self) -> None:
        link = user_config_path()
        if link.is_symlink() and Path(os.readlink(link)) == self.config_file:
            link.unlink()

    def driver_socket(self, cluster: str) -> Path:
        """The simulator's csi-addons driver socket for ``cluster``."""
        return self.root / cluster / "csi-addons" / "driver.sock"

    def csi_addons_stacks(self) -> dict[str, CsiAddonsStack]:
        """The csi-addons manager and sidecar of each cluster (none unless the lab runs the real controllers)."""
        if self.csi_addons is None:
            return {}
        return {
            name: CsiAddonsStack(cluster, self.csi_addons, self.driver_socket(name))
            for name, cluster in self.clusters.items()
        }

    def dell_driver_socket(self, cluster: str) -> Path:
        """The simulator's PowerStore replication driver socket for ``cluster``."""
        return self.root / cluster / "dell-replication" / "driver.sock"

    def dell_stacks(self) -> dict[str, DellReplicationStack]:
        """The Dell replication controller and replicator of each cluster (none unless the lab runs them)."""
        if self.dell is None:
            return {}
        first, second = list(self.clusters.values())[:2]
        peers = {first.name: second, second.name: first}
        return {
            name: DellReplicationStack(cluster, peers[name], self.dell, self.dell_driver_socket(name))
            for name, cluster in self.clusters.items()
        }

    def controller_stacks(self) -> list[ControllerStack]:
        """Every upstream controller stack the lab runs, csi-addons first."""
        return [*self.csi_addons_stacks().values(), *self.dell_stacks().values()]

    def _start_controllers(self, stack: ControllerStack) -> None:
        api_client = stack.cluster.api_client()
        try:
            documents = stack.crd_documents()
            apply_manifests(api_client, documents)
            wait_for_crds(api_client, [doc["metadata"]["name"] for doc in documents])
        finally:
            close_api_client(api_client)
        stack.install()
        stack.start()
        self.save()

    def cluster_apis(self) -> dict[str, ClusterApi]:
        """A :class:`ClusterApi` per cluster (the caller may close their clients)."""
        return {name: ClusterApi(name, cluster.api_client()) for name, cluster in self.clusters.items()}

    def _start_cluster(self, cluster: LabCluster) -> None:
        cluster.start()
        self.save()
        api_client = cluster.api_client()
        try:
            apply_manifests(api_client, [STORAGE_CLASS, *crd_documents()])
            wait_for_crds(api_client, [doc["metadata"]["name"] for doc in crd_documents()])
        finally:
            close_api_client(api_client)
        cluster.wait_for_default_service_account()

    def down(self, purge: bool = True) -> None:
        """Stop every process; with ``purge`` forget the lab (state, etcd data, Temporal history)."""
        if self.worker:
            self.worker.stop()
        for stack in self.controller_stacks():
            stack.stop()
        if self.simulator:
            self.simulator.stop()
        if self.temporal:
            self.temporal.stop()
        for cluster in self.clusters.values():
            cluster.stop()
            if purge:
                cluster.purge()
        if purge:
            self._unlink_user_config()
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            self.save()

    def _write_kubeconfig(self) -> None:
        entries = [c.kubeconfig_entry() for c in self.clusters.values()]
        write_kubeconfig(self.kubeconfig, entries, current=next(iter(self.clusters)))

    def summary(self) -> LabSummary:
        """Addresses of everything the lab runs."""
        return LabSummary(
            root=self.root,
            kubeconfig=self.kubeconfig,
            clusters={name: c.server for name, c in self.clusters.items()},
            temporal_address=self.temporal.state.address if self.temporal else None,
            temporal_ui=self.temporal.state.ui_url if self.temporal else None,
            simulator_url=self.simulator.state.url if self.simulator else None,
            config_file=self.config_file if self.demo else None,
        )

    def status(self) -> dict[str, Any]:
        """Which processes run, per cluster and for Temporal."""
        result: dict[str, Any] = {
            "root": str(self.root),
            "kubeconfig": str(self.kubeconfig),
            "clusters": {
                name: {"server": c.server, "processes": c.running_components()} for name, c in self.clusters.items()
            },
        }
        for stack in self.controller_stacks():
            result["clusters"][stack.cluster.name]["processes"].update(stack.running())
        if self.temporal:
            result["temporal"] = {
                "address": self.temporal.state.address,
                "ui": self.temporal.state.ui_url,
                "running": self.temporal.running(),
            }
        if self.simulator:
            result["simulator"] = {"url": self.simulator.state.url, "running": self.simulator.running()}
        if self.demo:
            result["config"] = str(self.config_file)
        if self.worker:
            result["worker"] = {"running": self.worker.running(), "log": str(self.worker.log_file)}
        return result
