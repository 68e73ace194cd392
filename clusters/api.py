"""One cluster's Kubernetes API as plain JSON documents, with short timeouts and errors mapped to the hierarchy.

Everything the orchestrator reads or writes on a cluster goes through :class:`ClusterApi`: one place that sets the
request timeout (a dead cluster must cost seconds, not minutes), turns HTTP statuses and connection failures into
:mod:`clusters.errors`, and counts writes (tests prove idempotence by counting them).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client

from clusters.errors import (
    ApiServerError,
    ClusterUnreachableError,
    ConflictError,
    ForbiddenError,
    InvalidSpecError,
    ObjectMissingError,
    OrchestratorError,
)

JsonObject = dict[str, Any]

DEFAULT_TIMEOUT = (3.0, 15.0)
"""(connect, read) seconds for ordinary calls: an unreachable cluster fails within seconds."""


@dataclass(frozen=True)
class Resource:
    """A Kubernetes resource type: where its objects live in the API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``group/version``, or ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The URL path of the collection, one object or one of its subresources."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced:
            if namespace is None:
                if name is not None:
                    raise ValueError(f"{self.kind} is namespaced: a namespace is needed to address {name}")
            else:
                base += f"/namespaces/{urllib.parse.quote(namespace)}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{urllib.parse.quote(name)}"
            if subresource:
                base += f"/{subresource}"
        return base

    def ref(self, name: str, namespace: str | None = None) -> str:
        """A human-readable reference, e.g. ``VolumeGroupReplication pg-prod/postgres``."""
        return f"{self.kind} {namespace}/{name}" if self.namespaced and namespace else f"{self.kind} {name}"


PODS = Resource("", "v1", "pods", "Pod")
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PVS = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
VOLUME_ATTACHMENTS = Resource("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", namespaced=False)


class ClusterApi:
    """JSON access to one cluster's API server.

    Args:
        cluster: the cluster's name, used in every error message.
        api_client: a ``kubernetes.client.ApiClient`` for that cluster (this object does not own it).
        timeout: (connect, read) seconds per request.
    """

    def __init__(
        self, cluster: str, api_client: client.ApiClient, timeout: tuple[float, float] = DEFAULT_TIMEOUT
    ) -> None:
        self.cluster = cluster
        self.api_client = api_client
        self.timeout = timeout
        self._writes = 0
        self._requests = 0
        self._lock = threading.Lock()

    @property
    def writes(self) -> int:
        """How many write requests (POST, PUT, PATCH, DELETE) this object has sent."""
        return self._writes

    @property
    def request_count(self) -> int:
        """How many requests of any kind this object has sent."""
        return self._requests

    # ------------------------------------------------------------------------------------------------- transport

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        object_ref: str | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> JsonObject:
        """Send one request and return the decoded JSON body.

        Raises:
            OrchestratorError: a subclass naming this cluster and ``object_ref``.
        """
        configuration = self.api_client.configuration
        url = configuration.host + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json", "Content-Type": content_type}
        token = configuration.get_api_key_with_prefix("BearerToken") if configuration.api_key else None
        if token:
            headers["Authorization"] = token
        with self._lock:
            self._requests += 1
            if method != "GET":
                self._writes += 1
        try:
            response = self.api_client.rest_client.request(  # type: ignore[no-untyped-call]
                method, url, headers=headers, body=body, _request_timeout=timeout or self.timeout
            )
            raw = response.read()
        except client.ApiException as exc:
            # The REST layer raises status 0 for TLS and connection-level failures.
            raise ClusterUnreachableError(
                f"no answer: {exc.reason}", cluster=self.cluster, object_ref=object_ref
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnreachableError(f"no answer: {exc}", cluster=self.cluster, object_ref=object_ref) from exc
        document: JsonObject = json.loads(raw) if raw else {}
        if 200 <= response.status < 300:
            return document
        raise self._error(response.status, document, object_ref)

    def _error(self, status: int, document: JsonObject, object_ref: str | None) -> OrchestratorError:
        message = str(document.get("message") or f"HTTP {status}")
        reason = str(document.get("reason") or status)
        kwargs: dict[str, Any] = {"cluster": self.cluster, "object_ref": object_ref, "condition": reason}
        if status == 404:
            return ObjectMissingError(message, **kwargs)
        if status == 409:
            return ConflictError(message, **kwargs)
        if status in (400, 422):
            return InvalidSpecError(message, **kwargs)
        if status in (401, 403):
            return ForbiddenError(message, **kwargs)
        return ApiServerError(message, **kwargs)

    # ------------------------------------------------------------------------------------------------- verbs

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JsonObject:
        """Read one object; :class:`ObjectMissingError` when it does not exist."""
        return self.request("GET", resource.path(namespace, name), object_ref=resource.ref(name, namespace))

    def find(self, resource: Resource, name: str, namespace: str | None = None) -> JsonObject | None:
        """Read one object, or ``None`` when it does not exist."""
        try:
            return self.get(resource, name, namespace)
        except ObjectMissingError:
            return None

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JsonObject]:
        """List objects (all pages), optionally filtered by label and field selectors."""
        items: list[JsonObject] = []
        query: dict[str, str] = {"limit": "500"}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        while True:
            page = self.request(
                "GET",
                resource.path(namespace),
                query=query,
                object_ref=f"{resource.kind} list in {namespace or 'all namespaces'}",
            )
            items += page.get("items", [])
            token = page.get("metadata", {}).get("continue")
            if not token:
                return items
            query["continue"] = token

    def create(self, resource: Resource, body: JsonObject, namespace: str | None = None) -> JsonObject:
        """Create an object."""
        name = body.get("metadata", {}).get("name", "?")
        body = {"apiVersion": resource.api_version, "kind": resource.kind, **body}
        return self.request("POST", resource.path(namespace), body, object_ref=resource.ref(name, namespace))

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: JsonObject,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JsonObject:
        """Apply a JSON merge patch (RFC 7386) to an object or its subresource (``status``, ``scale``)."""
        return self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            patch,
            content_type="application/merge-patch+json",
            object_ref=resource.ref(name, namespace),
        )

    def replace(self, resource: Resource, body: JsonObject, *, subresource: str | None = None) -> JsonObject:
        """Replace an object (guarded by the ``metadata.resourceVersion`` it carries: a stale one is a conflict)."""
        metadata = body["metadata"]
        name, namespace = metadata["name"], metadata.get("namespace")
        return self.request(
            "PUT", resource.path(namespace, name, subresource), body, object_ref=resource.ref(name, namespace)
        )

    def delete(self, resource: Resource, name: str, namespace: str | None = None) -> None:
        """Delete an object; a missing one counts as deleted."""
        try:
            self.request("DELETE", resource.path(namespace, name), object_ref=resource.ref(name, namespace))
        except ObjectMissingError:
            return

    def ping(self, timeout: float = 2.0) -> None:
        """One cheap request (``/version``) with a short timeout; :class:`ClusterUnreachableError` when it fails."""
        try:
            self.request("GET", "/version", object_ref="/version", timeout=(timeout, timeout))
        except OrchestratorError as exc:
            if isinstance(exc, ClusterUnreachableError):
                raise
            raise ClusterUnreachableError(f"unhealthy: {exc.message}", cluster=self.cluster) from exc
