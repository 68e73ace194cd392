r"""``python -m sandbox.simulator``: run the storage simulator against the lab clusters until SIGTERM/SIGINT.

Example::

    python -m sandbox.simulator --kubeconfig ~/.local/state/failover-orchestrator/lab/kubeconfig \\
        --clusters dc1,dc2 --port 8765 --sync-interval 2

Every timing of :class:`~sandbox.simulator.config.SimulatorConfig` is a flag (``--final-sync-latency 0.5``).
Once serving, the process prints one line ``simulator control API on http://127.0.0.1:<port>`` to stdout.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from clusters.api import ClusterApi
from clusters.kubeclient import close_api_client, new_api_client
from sandbox.simulator.config import DriverSockets, SimulatorConfig
from sandbox.simulator.server import SimulatorService

CLI_TIMEOUT = (2.0, 5.0)
"""(connect, read) seconds per API request: a dead cluster must not stall the other cluster's tick for long."""


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; timing flags default to ``None`` (keep the config's default)."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="kubeconfig with one context per cluster")
    parser.add_argument("--clusters", default="dc1,dc2", help="the two cluster contexts, comma-separated")
    parser.add_argument("--host", default="127.0.0.1", help="control API address (default: loopback)")
    parser.add_argument("--port", type=int, default=0, help="control API port (default: a free one)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    for kind, driver, stubs in (
        ("csi-addons", "csi-addons driver", "csi-addons stubs"),
        ("dell", "PowerStore replication driver", "dell-csi-extensions stubs"),
    ):
        parser.add_argument(
            f"--{kind}-socket",
            action="append",
            default=[],
            metavar="CLUSTER=PATH",
            help=f"serve the {driver} of CLUSTER on the unix socket PATH (the upstream controllers then own its "
            "objects' status); once per cluster",
        )
        parser.add_argument(f"--{kind}-stubs", type=Path, help=f"folder of the generated {stubs}")
    timings = parser.add_argument_group("timings (seconds)")
    for name, field in SimulatorConfig.model_fields.items():
        parse = int if field.annotation is int else float
        timings.add_argument(_flag(name), dest=name, type=parse, default=None, help=f"default {field.default}")
    return parser.parse_args(argv)


def _driver_sockets(entries: list[str], stubs: Path | None, names: list[str], flag: str) -> DriverSockets | None:
    """The ``CLUSTER=PATH`` socket options of one driver kind (none given: that driver is not served).

    Raises:
        ValueError: not exactly one socket per cluster, or no stubs folder.
    """
    sockets = dict(entry.partition("=")[::2] for entry in entries)
    if not sockets:
        return None
    if set(sockets) != set(names) or not all(sockets.values()) or stubs is None:
        raise ValueError(f"{flag}-socket needs CLUSTER=PATH for each cluster, and {flag}-stubs")
    return DriverSockets({c: Path(p) for c, p in sockets.items()}, stubs)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until a signal; the exit code (2 for bad arguments)."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = [name.strip() for name in args.clusters.split(",") if name.strip()]
    if len(names) != 2 or names[0] == names[1]:
        print(f"--clusters needs two distinct names, got {args.clusters!r}", file=sys.stderr)
        return 2
    overrides = {name: getattr(args, name) for name in SimulatorConfig.model_fields if getattr(args, name) is not None}
    try:
        config = SimulatorConfig(**overrides)
    except ValueError as exc:
        print(f"invalid timing: {exc}", file=sys.stderr)
        return 2
    try:
        csi_addons = _driver_sockets(args.csi_addons_socket, args.csi_addons_stubs, names, "--csi-addons")
        dell = _driver_sockets(args.dell_socket, args.dell_stubs, names, "--dell")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    apis = {name: ClusterApi(name, new_api_client(args.kubeconfig, name), timeout=CLI_TIMEOUT) for name in names}
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service = SimulatorService(apis, config, args.host, args.port, csi_addons, dell).start()
    print(f"simulator control API on {service.url}", flush=True)
    try:
        stopping.wait()
    finally:
        service.stop()
        for api in apis.values():
            close_api_client(api.api_client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
