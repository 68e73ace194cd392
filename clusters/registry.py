"""The cluster registry: which clusters exist, in which site, and one API client per cluster."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from clusters.api import ClusterApi
from clusters.errors import InvalidSpecError
from clusters.kubeclient import close_api_client, new_api_client


class ClusterConfig(BaseModel):
    """How to reach one cluster.

    Attributes:
        name: the cluster's name in the orchestrator (e.g. ``dc1``).
        site: the failure domain it lives in.
        kubeconfig: path of a kubeconfig file.
        context: the context in that file (defaults to ``name``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    site: str
    kubeconfig: Path
    context: str | None = None

    @property
    def context_name(self) -> str:
        """The kubeconfig context to use."""
        return self.context or self.name


class ClusterRegistry:
    """Lazily created, shared :class:`ClusterApi` objects, one per configured cluster (thread-safe)."""

    def __init__(self, clusters: Iterable[ClusterConfig]) -> None:
        self._configs = {c.name: c for c in clusters}
        self._apis: dict[str, ClusterApi] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """Configured cluster names, in configuration order."""
        return list(self._configs)

    def config(self, name: str) -> ClusterConfig:
        """The configuration of ``name``; an unknown name lists the known ones."""
        try:
            return self._configs[name]
        except KeyError:
            known = ", ".join(self._configs) or "none"
            raise InvalidSpecError(f"unknown cluster {name!r}; known clusters: {known}") from None

    def api(self, name: str) -> ClusterApi:
        """The shared API object of ``name``."""
        with self._lock:
            if name not in self._apis:
                config = self.config(name)
                self._apis[name] = ClusterApi(name, new_api_client(config.kubeconfig, config.context_name))
            return self._apis[name]

    def close(self) -> None:
        """Close every client."""
        with self._lock:
            for api in self._apis.values():
                close_api_client(api.api_client)
            self._apis.clear()
