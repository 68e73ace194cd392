"""What the upstream storage controllers the lab runs on a cluster share: processes under a restart loop, and CRDs.

A stack (csi-addons, Dell csm-replication) is a few processes per lab cluster, started in order, each under a
restart loop as kubelet restarts a pod's containers (an upstream controller may exit by design, for example when
it loses its leader lease during an apiserver outage), their pids kept in the cluster's state.
"""

from __future__ import annotations

import functools
import shlex
from pathlib import Path
from typing import Any

from sandbox.cluster import LabCluster
from sandbox.processes import is_running, start_process, stop_process, wait_until

RESTART_LOOP = 'while :; do {command}; echo "=== exited with $?, restarting in 1s"; sleep 1; done'


def restarted(argv: list[str]) -> list[str]:
    """``argv`` under the restart loop."""
    return ["sh", "-c", RESTART_LOOP.format(command=shlex.join(argv))]


def crd_documents(folder: Path) -> list[dict[str, Any]]:
    """The CRDs in the YAML files of ``folder`` (an upstream module's ``config/crd/bases``).

    Documents without a name are left out: controller-gen leaves an empty placeholder CRD (Dell's ``_.yaml``).
    """
    import yaml

    documents: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            named = bool(document and (document.get("metadata") or {}).get("name"))
            if named and document.get("kind") == "CustomResourceDefinition":
                documents.append(document)
    return documents


class ControllerStack:
    """The processes of one upstream controller stack on one lab cluster.

    Subclasses name the processes in start order and give each one's command line, environment and health.

    Args:
        cluster: the lab cluster (running).
    """

    processes: tuple[str, ...] = ()

    def __init__(self, cluster: LabCluster) -> None:
        self.cluster = cluster

    def crd_documents(self) -> list[dict[str, Any]]:
        """The stack's CRDs (applied over the lab's test CRDs of the same names)."""
        raise NotImplementedError

    def install(self) -> None:
        """Create what the processes need on the cluster and on disk (idempotent)."""
        raise NotImplementedError

    def argv(self, process: str) -> list[str]:
        """The command line of ``process`` (under :func:`restarted` or an equivalent loop)."""
        raise NotImplementedError

    def env(self, process: str) -> dict[str, str] | None:
        """The environment of ``process`` (``None``: inherit)."""
        return None

    def healthy(self, process: str) -> bool:
        """Whether ``process`` is ready."""
        raise NotImplementedError

    def log_file(self, process: str) -> Path:
        """Where ``process`` logs."""
        return self.cluster.log_file(process)

    def start(self, timeout: float = 90.0) -> None:
        """Start each process in order unless it runs, waiting until each is ready before the next."""
        for process in self.processes:
            pid = self.cluster.state.pids.get(process, 0)
            if not is_running(pid):
                pid = start_process(self.argv(process), self.log_file(process), env=self.env(process))
                self.cluster.state.pids[process] = pid
            wait_until(
                functools.partial(self.healthy, process),
                f"{self.cluster.name} {process}",
                timeout,
                pid=pid,
                log_file=self.log_file(process),
            )

    def stop(self) -> None:
        """Stop the processes in reverse order."""
        for process in reversed(self.processes):
            pid = self.cluster.state.pids.pop(process, 0)
            if pid:
                stop_process(pid)

    def running(self) -> dict[str, bool]:
        """Which processes have a live process."""
        return {p: is_running(self.cluster.state.pids.get(p, 0)) for p in self.processes}
