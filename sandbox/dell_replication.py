"""The upstream Dell csm-replication controllers on a lab cluster: dell-replication-controller and dell-csi-replicator.

What a real cluster has, and how the lab stands in for it (upstream facts, with file and line:
sandbox/dell-replication-research.md sections 2-4 and 6):

- The replicator is a sidecar of the PowerStore driver: it calls ``replication.v1.Replication`` on the driver's
  socket, which the simulator serves (:mod:`sandbox.simulator.dell_driver`). It probes the socket once at start and
  exits on any error but a timeout, so it starts after the simulator and runs under a restart loop.
- The replication controller connects to each peer cluster through a Secret (key ``data``: a kubeconfig) in its
  namespace ``dell-replication-controller``, named by its config file (``clusterId`` and ``targets``), and to its
  own cluster only through ``$HOME/.kube/config``: each cluster's controller gets a HOME of its own. Its
  ``clusterId`` is the cluster's name, which is also what the peer's StorageClass names as ``remoteClusterID``.
- Leader election stays off (out of a cluster it cannot start) and the metrics listeners are disabled: two
  clusters' controllers on one host would otherwise both bind :8000 and :8081.
- The replicator's monitor polls every RG every 5 s instead of upstream's 60 s, so that a lab resync shows in the
  RG status within seconds; the orchestrator must not rely on either (the poll time is not a data time).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from sandbox.cluster import LabCluster
from sandbox.controller_build import DellReplicationBuild
from sandbox.controller_stack import ControllerStack, crd_documents, restarted
from sandbox.processes import LabProcessError

NAMESPACE = "dell-replication-controller"
CONTROLLER, REPLICATOR = "dell-replication-controller", "dell-csi-replicator"
MONITORING_INTERVAL = "5s"
_READY = "Starting workers"
"""What controller-runtime logs once a controller's workers run."""


def target_secret(peer: str) -> str:
    """The Secret holding the kubeconfig of the peer cluster ``peer``."""
    return f"target-{peer}"


class DellReplicationStack(ControllerStack):
    """The Dell replication controller and replicator of one lab cluster, their pids kept in the cluster's state.

    Args:
        cluster: the lab cluster (running).
        peer: the other lab cluster (the controller's only target).
        build: the built binaries and CRDs.
        driver_socket: the simulator's PowerStore replication driver socket for this cluster.
    """

    processes = (CONTROLLER, REPLICATOR)

    def __init__(self, cluster: LabCluster, peer: LabCluster, build: DellReplicationBuild, driver_socket: Path) -> None:
        super().__init__(cluster)
        self.peer = peer
        self.build = build
        self.driver_socket = driver_socket
        self.folder = cluster.root / "dell-replication"

    @property
    def config_dir(self) -> Path:
        """``X_CSI_REPLICATION_CONFIG_DIR``: the folder of both binaries' ``config.yaml``."""
        return self.folder / "config"

    @property
    def home(self) -> Path:
        """The controller's HOME (its own cluster's kubeconfig is ``.kube/config`` there)."""
        return self.folder / "home"

    # ----------------------------------------------------------------------------------------- install

    def crd_documents(self) -> list[dict[str, Any]]:
        """The CRDs of the built csm-replication version (config/crd/bases: replication and migration groups)."""
        return crd_documents(self.build.crds)

    def install(self) -> None:
        """Create the namespace and the peer's Secret, and write the config file and the controller's HOME."""
        peer_kubeconfig = self.peer.admin_kubeconfig.read_text()
        objects = [
            ("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}}),
            (
                f"/api/v1/namespaces/{NAMESPACE}/secrets",
                {"metadata": {"name": target_secret(self.peer.name)}, "stringData": {"data": peer_kubeconfig}},
            ),
        ]
        for collection, body in objects:
            created = self.cluster.request("POST", collection, body)
            if created.status_code not in (201, 409):
                raise LabProcessError(f"{self.cluster.name}: creating {collection} failed: {created.text}")
        self.config_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "clusterId": self.cluster.name,
            "targets": [
                {"clusterId": self.peer.name, "secretRef": target_secret(self.peer.name), "address": self.peer.server}
            ],
            "CSI_LOG_LEVEL": "info",
        }
        (self.config_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        kube = self.home / ".kube"
        kube.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.cluster.admin_kubeconfig, kube / "config")

    # ----------------------------------------------------------------------------------------- processes

    def argv(self, process: str) -> list[str]:
        """The controller's or the replicator's command line, under a restart loop."""
        if process == CONTROLLER:
            return restarted([str(self.build.controller), "--metrics-addr=0", "--enable-leader-election=false"])
        return restarted(
            [
                str(self.build.replicator),
                f"--csi-address={self.driver_socket}",
                "--metrics-addr=0",
                "--leader-election=false",
                f"--monitoring-interval={MONITORING_INTERVAL}",
            ]
        )

    def env(self, process: str) -> dict[str, str] | None:
        """Both read the config folder; the kubeconfig is the cluster's admin one (HOME for the controller)."""
        return {
            **os.environ,
            "HOME": str(self.home),
            "KUBECONFIG": str(self.cluster.admin_kubeconfig),
            "X_CSI_REPLICATION_CONFIG_DIR": str(self.config_dir),
            "X_CSI_REPLICATION_CONFIG_FILE_NAME": "config",
        }

    def healthy(self, process: str) -> bool:
        """The newest run of the process has started its controllers' workers."""
        log = self.log_file(process)
        if not log.exists():
            return False
        return _READY in log.read_text(errors="replace").rsplit("\n=== exited", 1)[-1]
