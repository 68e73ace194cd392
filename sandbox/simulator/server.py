"""The control API: a small JSON-over-HTTP server on loopback, and the service that runs it with a simulator.

Endpoints (bodies and answers are the models of :mod:`sandbox.simulator.schemas`):

=========================  ===========================================================================
``GET /healthz``           :class:`Health`
``GET /ledger``            :class:`Ledger` (``?namespace=NS`` keeps one namespace)
``GET /faults``            list of :class:`FaultState`
``POST /faults``           body :class:`FaultSpec` -> :class:`FaultState`
``DELETE /faults``         optional body ``{"group"?, "cluster"?, "kind"?}`` -> ``{"removed": N}``
``GET /config``            :class:`SimulatorConfig`
``POST /config``           body: some :class:`SimulatorConfig` fields -> the new config
``GET /sites``             ``{"dc1": true, ...}``
``POST /sites/<c>/down``   :class:`SiteState` (``/up`` brings it back)
``POST /writes``           body :class:`WriteRequest` -> :class:`WriteResult` (writes without a pod)
=========================  ===========================================================================

Errors answer ``{"error": "..."}`` with 400 (invalid body), 404 (unknown path or cluster) or 405.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import urllib.parse
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from clusters.api import ClusterApi
from sandbox.simulator.client import SimulatorClient
from sandbox.simulator.config import DriverSockets, SimulatorConfig
from sandbox.simulator.engine import Simulator
from sandbox.simulator.schemas import FaultKind, FaultSpec, WriteRequest

if TYPE_CHECKING:
    from sandbox.simulator.grpc_driver import GrpcDriver

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer of the control API."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


class _Handler(BaseHTTPRequestHandler):
    """Routes one request to the simulator (``server.simulator``)."""

    server: _Server

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("control API: " + format, *args)

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        try:
            body = self._body()
            answer = self._route(method, url.path.rstrip("/") or "/", urllib.parse.parse_qs(url.query), body)
            self._send(HTTPStatus.OK, _jsonable(answer))
        except ApiError as exc:
            self._send(exc.status, {"error": str(exc)})
        except ValidationError as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except KeyError as exc:
            self._send(HTTPStatus.NOT_FOUND, {"error": str(exc.args[0]) if exc.args else "not found"})
        except Exception as exc:
            log.exception("control API %s %s failed", method, self.path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)})

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        try:
            return json.loads(self.rfile.read(length))
        except json.JSONDecodeError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {exc}") from exc

    def _send(self, status: HTTPStatus, document: Any) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _route(self, method: str, path: str, query: Mapping[str, list[str]], body: Any) -> Any:
        simulator = self.server.simulator
        routes: dict[tuple[str, str], Any] = {
            ("GET", "/healthz"): lambda: simulator.health(),
            ("GET", "/ledger"): lambda: simulator.ledger(next(iter(query.get("namespace", [])), None)),
            ("GET", "/faults"): lambda: simulator.list_faults(),
            ("POST", "/faults"): lambda: simulator.add_fault(FaultSpec.model_validate(body or {})),
            ("DELETE", "/faults"): lambda: {"removed": self._remove_faults(body)},
            ("GET", "/config"): lambda: simulator.config,
            ("POST", "/config"): lambda: simulator.configure(self._mapping(body)),
            ("GET", "/sites"): lambda: simulator.sites(),
            ("POST", "/writes"): lambda: simulator.acknowledge_writes(WriteRequest.model_validate(body or {})),
        }
        handler = routes.get((method, path))
        if handler is not None:
            return handler()
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "sites" and parts[2] in ("up", "down"):
            if method != "POST":
                raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} {path}: use POST")
            return simulator.set_site(parts[1], up=parts[2] == "up")
        if any(known_path == path for _, known_path in routes):
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}")
        raise ApiError(HTTPStatus.NOT_FOUND, f"no endpoint {method} {path}")

    @staticmethod
    def _mapping(body: Any) -> Mapping[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    def _remove_faults(self, body: Any) -> int:
        filters = self._mapping(body) if body is not None else {}
        unknown = set(filters) - {"group", "cluster", "kind"}
        if unknown:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"unknown filter(s): {', '.join(sorted(unknown))}")
        try:
            kind = FaultKind(filters["kind"]) if filters.get("kind") else None
        except ValueError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        return self.server.simulator.remove_faults(filters.get("group"), filters.get("cluster"), kind)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        super().__init__(address, _Handler)
        self.simulator = simulator


class ControlServer:
    """The control API of a simulator, served from a background thread.

    Args:
        simulator: the simulator to control.
        host: the address to listen on (loopback by default: the API is unauthenticated).
        port: the port; 0 picks a free one (see :attr:`url`).
    """

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), simulator)
        # A short poll interval: stop() waits for the serving loop to notice the shutdown.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name="simulator-api", daemon=True)

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8765``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve requests in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


class SimulatorService:
    """A simulator and its control server, started and stopped together (used by the CLI and the lab fixture).

    Args:
        clusters: the two clusters' APIs by name.
        config: timings.
        host: the control API's address.
        port: the control API's port (0: a free one).
        csi_addons: the csi-addons driver sockets, when the upstream csi-addons controllers run (the simulator
            then serves their driver calls instead of writing VR/VGR status).
        dell: the PowerStore replication driver sockets, when the upstream Dell csm-replication controllers run
            (the simulator then serves the replicator's calls instead of writing RG status).
    """

    def __init__(
        self,
        clusters: Mapping[str, ClusterApi],
        config: SimulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        csi_addons: DriverSockets | None = None,
        dell: DriverSockets | None = None,
    ) -> None:
        self.simulator = Simulator(clusters, config, real_csi_addons=csi_addons is not None, real_dell=dell is not None)
        self.server = ControlServer(self.simulator, host, port)
        self._csi_addons = csi_addons
        self._dell = dell
        self._drivers: list[GrpcDriver] = []

    @property
    def url(self) -> str:
        """The control API's base URL."""
        return self.server.url

    def client(self, timeout: float = 5.0) -> SimulatorClient:
        """A client of the control API (the caller closes it)."""
        return SimulatorClient(self.url, timeout=timeout)

    def start(self) -> SimulatorService:
        """Start the driver sockets, the reconcile loop and the control API."""
        # grpc is imported only where the drivers run.
        if self._csi_addons is not None:
            from sandbox.simulator.csi_addons_driver import CsiAddonsDriver

            sockets, stubs = self._csi_addons
            self._drivers += [CsiAddonsDriver(self.simulator, c, stubs).serve(p) for c, p in sockets.items()]
        if self._dell is not None:
            from sandbox.simulator.dell_driver import DellReplicationDriver

            sockets, stubs = self._dell
            self._drivers += [DellReplicationDriver(self.simulator, c, stubs).serve(p) for c, p in sockets.items()]
        self.server.start()
        self.simulator.start()
        return self

    def stop(self) -> None:
        """Stop all of it."""
        for driver in self._drivers:
            driver.stop()
        self.simulator.stop()
        self.server.stop()

    def __enter__(self) -> SimulatorService:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
