"""A typed client of the simulator's control API (tests and ``orchestrate sandbox`` use it).

Every method returns the frozen pydantic models of :mod:`sandbox.simulator.schemas`; an error answer raises
:class:`SimulatorApiError` with the server's message.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx
from pydantic import TypeAdapter

from sandbox.simulator.config import SimulatorConfig
from sandbox.simulator.schemas import (
    FaultKind,
    FaultSpec,
    FaultsRemoved,
    FaultState,
    Health,
    Ledger,
    SiteState,
    VolumeLedger,
    WriteRequest,
    WriteResult,
)

_FAULTS = TypeAdapter(list[FaultState])
_SITES = TypeAdapter(dict[str, bool])


class SimulatorApiError(RuntimeError):
    """The control API answered an error (or did not answer).

    Attributes:
        status: the HTTP status, 0 when the server could not be reached.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"simulator control API: {message} (HTTP {status})" if status else message)
        self.status = status


class SimulatorClient:
    """The control API at ``base_url`` (e.g. ``http://127.0.0.1:8765``).

    Args:
        base_url: the server's base URL.
        timeout: seconds per request.
        transport: an httpx transport (tests).
    """

    def __init__(self, base_url: str, timeout: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> SimulatorClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body, params=params)
        except httpx.HTTPError as exc:
            raise SimulatorApiError(0, f"simulator control API at {self._http.base_url} unreachable: {exc}") from exc
        if response.is_error:
            try:
                message = str(response.json().get("error", response.text))
            except ValueError:
                message = response.text
            raise SimulatorApiError(response.status_code, message)
        return response.json()

    # ------------------------------------------------------------------------------------------------ endpoints

    def health(self) -> Health:
        """``GET /healthz``: ticks so far and each cluster's reachability and site state."""
        return Health.model_validate(self._call("GET", "/healthz"))

    def ledger(self, namespace: str | None = None) -> Ledger:
        """``GET /ledger``: every volume (of ``namespace``)."""
        params = {"namespace": namespace} if namespace else None
        return Ledger.model_validate(self._call("GET", "/ledger", params=params))

    def volume(self, namespace: str, pvc: str) -> VolumeLedger:
        """The ledger of one volume.

        Raises:
            KeyError: the simulator does not know it (yet).
        """
        return self.ledger(namespace).volume(namespace, pvc)

    def faults(self) -> list[FaultState]:
        """``GET /faults``."""
        return _FAULTS.validate_python(self._call("GET", "/faults"))

    def add_fault(
        self,
        group: str,
        kind: FaultKind | str,
        *,
        cluster: str | None = None,
        times: int | None = None,
        permanent: bool = False,
    ) -> FaultState:
        """``POST /faults``: inject a fault (see :class:`~sandbox.simulator.schemas.FaultSpec`)."""
        spec = FaultSpec(group=group, kind=FaultKind(kind), cluster=cluster, times=times, permanent=permanent)
        return FaultState.model_validate(self._call("POST", "/faults", spec.model_dump(mode="json")))

    def remove_faults(
        self, group: str | None = None, *, cluster: str | None = None, kind: FaultKind | str | None = None
    ) -> int:
        """``DELETE /faults``: remove the faults matching every given filter (all when none); how many went."""
        filters = {
            name: value
            for name, value in (("group", group), ("cluster", cluster), ("kind", FaultKind(kind) if kind else None))
            if value is not None
        }
        return FaultsRemoved.model_validate(self._call("DELETE", "/faults", filters or None)).removed

    def config(self) -> SimulatorConfig:
        """``GET /config``."""
        return SimulatorConfig.model_validate(self._call("GET", "/config"))

    def configure(self, **changes: float) -> SimulatorConfig:
        """``POST /config``: change some timings (e.g. ``sync_interval=2.0``); the new config."""
        return SimulatorConfig.model_validate(self._call("POST", "/config", changes))

    def write(self, namespace: str, pvc: str, cluster: str, count: int = 1) -> WriteResult:
        """``POST /writes``: acknowledge ``count`` writes on ``cluster`` as the application would (no pod needed).

        Only writes on the writable side of a site that is up are acknowledged (see ``WriteResult.acknowledged``).
        """
        request = WriteRequest(namespace=namespace, pvc=pvc, cluster=cluster, count=count)
        return WriteResult.model_validate(self._call("POST", "/writes", request.model_dump()))

    def sites(self) -> dict[str, bool]:
        """``GET /sites``: whether each site is up."""
        return _SITES.validate_python(self._call("GET", "/sites"))

    def site_down(self, cluster: str) -> SiteState:
        """``POST /sites/<cluster>/down``: no writes, shipments or controllers on that site until it is up."""
        return SiteState.model_validate(self._call("POST", f"/sites/{cluster}/down"))

    def site_up(self, cluster: str) -> SiteState:
        """``POST /sites/<cluster>/up``."""
        return SiteState.model_validate(self._call("POST", f"/sites/{cluster}/up"))
