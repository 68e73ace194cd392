"""The storage simulator as a lab process (``python -m sandbox.simulator``), reachable on a loopback port."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from sandbox.processes import is_running, start_process, stop_process, wait_until


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


class SimulatorProcess:
    """Start, probe and stop the simulator process of a lab."""

    def __init__(self, state: SimulatorState, root: Path, kubeconfig: Path, clusters: list[str]) -> None:
        self.state = state
        self.kubeconfig = kubeconfig
        self.clusters = clusters
        self.log_file = root / "simulator" / "simulator.log"

    def argv(self) -> list[str]:
        """The simulator's command line."""
        return [
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

    def healthy(self) -> bool:
        """Whether its control API answers."""
        return httpx.get(f"{self.state.url}/healthz", timeout=2).status_code == 200

    def start(self, timeout: float = 30.0) -> None:
        """Start it (if not running) and wait until it serves."""
        if not is_running(self.state.pid):
            self.state.pid = start_process(self.argv(), self.log_file)
        wait_until(self.healthy, "storage simulator", timeout, pid=self.state.pid, log_file=self.log_file)

    def stop(self) -> None:
        """Stop it."""
        if self.state.pid:
            stop_process(self.state.pid)
            self.state.pid = 0

    def running(self) -> bool:
        """Whether its process is alive."""
        return is_running(self.state.pid)
