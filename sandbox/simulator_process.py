"""Lab processes beside the control planes: the storage simulator and an ``orchestrate worker``."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from sandbox.processes import ManagedProcess
from sandbox.simulator.config import DriverSockets


@dataclass
class SimulatorState:
    """Port and pid of the lab's simulator."""

    port: int
    pid: int = 0

    @property
    def url(self) -> str:
        """Its control API."""
        return f"http://127.0.0.1:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return asdict(self)


class SimulatorProcess(ManagedProcess):
    """``python -m sandbox.simulator`` on the lab's clusters, its control API on a loopback port."""

    name = "storage simulator"
    start_timeout = 30.0

    def __init__(
        self,
        state: SimulatorState,
        root: Path,
        kubeconfig: Path,
        clusters: list[str],
        csi_addons: DriverSockets | None = None,
        dell: DriverSockets | None = None,
    ) -> None:
        self.state = state
        self.kubeconfig = kubeconfig
        self.clusters = clusters
        self.drivers = {"--csi-addons": csi_addons, "--dell": dell}
        """The driver sockets it serves, by option prefix (those of the real controllers the lab runs)."""
        super().__init__(state, root / "simulator" / "simulator.log")

    def argv(self) -> list[str]:
        """The simulator's command line."""
        argv = [
            sys.executable,
            "-m",
            "sandbox.simulator",
            "--kubeconfig",
            str(self.kubeconfig),
            "--clusters",
            ",".join(self.clusters[:2]),
            "--port",
            str(self.state.port),
        ]
        for flag, drivers in self.drivers.items():
            if drivers is not None:
                for cluster in self.clusters[:2]:
                    argv += [f"{flag}-socket", f"{cluster}={drivers.sockets[cluster]}"]
                argv += [f"{flag}-stubs", str(drivers.stubs)]
        return argv

    def healthy(self) -> bool:
        """Whether its control API answers."""
        return httpx.get(f"{self.state.url}/healthz", timeout=2).status_code == 200


@dataclass
class WorkerState:
    """Pid of the lab's ``orchestrate worker``."""

    pid: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return asdict(self)


class WorkerProcess(ManagedProcess):
    """``orchestrate worker`` for the lab's configuration; ready once it prints "worker ready"."""

    name = "orchestrate worker"

    def __init__(self, state: WorkerState, root: Path, config_file: Path) -> None:
        self.state = state
        self.config_file = config_file
        super().__init__(state, root / "worker" / "worker.log")

    def argv(self) -> list[str]:
        """The worker's command line (the ``orchestrate`` beside this interpreter)."""
        return [str(Path(sys.executable).parent / "orchestrate"), "worker", "--config", str(self.config_file)]

    def healthy(self) -> bool:
        """Whether the newest run of the worker said it is ready."""
        if not self.log_file.exists():
            return False
        return "worker ready" in self.log_file.read_text(errors="replace").rsplit("\n=== ", 1)[-1]
