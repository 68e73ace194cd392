"""One cluster's Kubernetes API as plain JSON documents, with short timeouts and errors mapped to the hierarchy.

Everything the orchestrator reads or writes on a cluster goes through :class:`ClusterApi`: one place that sets the
request timeout (a dead cluster must cost seconds, not minutes), turns HTTP statuses and connection failures into
:mod:`clusters.errors`, and counts writes (tests prove idempotence by counting them).

"Unreachable" (:class:`ClusterUnreachableError`) means that nothing answered: connection refused or reset, DNS, no
route, a connect or read timeout. The orchestrator may treat such a site as lost, so an endpoint that answers
badly is never unreachable: 401/403 is :class:`ForbiddenError`, 5xx/429 and non-JSON answers are
:class:`ApiServerError`, a TLS failure is :class:`UntrustedEndpointError`.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import http.client
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from opentelemetry import trace

from clusters.errors import (
    ApiServerError,
    ClusterUnreachableError,
    ConflictError,
    ForbiddenError,
    InvalidSpecError,
    ObjectMissingError,
    OrchestratorError,
    UntrustedEndpointError,
)

JsonObject = dict[str, Any]

DEFAULT_TIMEOUT = (3.0, 15.0)
"""(connect, read) seconds for ordinary calls: an unreachable cluster fails within seconds."""


_tracer = trace.get_tracer("failover-orchestrator.clusters")


def _resource_of(path: str) -> str:
    """The kind of object a request path names (``/apis/g/v/namespaces/ns/pods/x`` -> ``pods``), for span names."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if parts[:1] == ["api"]:
        parts = parts[2:]
    elif parts[:1] == ["apis"]:
        parts = parts[3:]
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        parts = parts[2:]
    return parts[0] if parts else "/"


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
        self._counters = RequestCounters()

    @property
    def writes(self) -> int:
        """How many write requests (POST, PUT, PATCH, DELETE) this object (and its views) has sent."""
        return self._counters.writes

    @property
    def request_count(self) -> int:
        """How many requests of any kind this object (and its views) has sent."""
        return self._counters.requests

    def with_timeout(self, timeout: tuple[float, float]) -> ClusterApi:
        """A view of this API whose requests use ``timeout`` (counted with this object's requests)."""
        view = ClusterApi(self.cluster, self.api_client, timeout)
        view._counters = self._counters
        return view

    def remembering(self) -> ClusterApi:
        """A view of this API that answers a repeated GET of the same path from its first answer, until a write.

        For one step that reads the same objects several times (a preflight): every check sees the same state and
        the cluster is asked once.
        """
        return RememberingApi(self)

    def share_counters(self, other: ClusterApi) -> None:
        """Count this object's requests with ``other``'s (a view of the same cluster)."""
        self._counters = other._counters

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

        The status is checked before the body is decoded: an error status with a non-JSON body (a proxy's HTML
        page) is an error of that status whose message quotes the body's start; a 2xx whose body is not a JSON
        object is an :class:`ApiServerError`.

        Raises:
            ClusterUnreachableError: nothing answered: connection refused or reset, DNS, no route, or a connect or
                read timeout.
            UntrustedEndpointError: the TLS handshake failed (certificate not trusted, not TLS at all, ...).
            ForbiddenError: 401 or 403.
            ObjectMissingError: 404.
            ConflictError: 409.
            InvalidSpecError: 400 or 422.
            ApiServerError: 5xx, 429, other statuses, a non-JSON 2xx, or an answer that is not valid HTTP.
        """
        with _tracer.start_as_current_span(
            f"{method} {_resource_of(path)}",
            kind=trace.SpanKind.CLIENT,
            attributes={"http.request.method": method, "url.path": path, "k8s.cluster": self.cluster},
        ) as span:
            response = self._send(
                method, path, body, query=query, content_type=content_type, object_ref=object_ref, timeout=timeout
            )
            status = int(response.status)
            span.set_attribute("http.response.status_code", status)
            try:
                raw: bytes = response.read() or b""
            except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
                raise self._transport_error(exc, object_ref) from exc
        if 200 <= status < 300:
            document = _decode(raw)
            if document is None:
                raise ApiServerError(
                    f"HTTP {status} but the answer was not a JSON object: {_snippet(raw)}",
                    cluster=self.cluster,
                    object_ref=object_ref,
                    condition="NotJSON",
                )
            return document
        raise self._error(status, _decode(raw), object_ref, http_reason=str(response.reason or ""), raw=raw)

    def stream(
        self,
        path: str,
        *,
        query: Mapping[str, str],
        object_ref: str,
        timeout: tuple[float, float],
    ) -> JsonStream:
        """Send one GET whose answer is a stream of JSON objects, one per line (a watch).

        Raises:
            The errors of :meth:`request` for the answer's status; reading the stream raises them too when the
            connection breaks.
        """
        response = self._send(
            "GET", path, None, query=query, content_type="application/json", object_ref=object_ref, timeout=timeout
        )
        status = int(response.status)
        if not 200 <= status < 300:
            try:
                raw: bytes = response.read() or b""
            except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
                raise self._transport_error(exc, object_ref) from exc
            raise self._error(status, _decode(raw), object_ref, http_reason=str(response.reason or ""), raw=raw)
        return JsonStream(self, response.response, object_ref)

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        query: Mapping[str, str] | None,
        content_type: str,
        object_ref: str | None,
        timeout: tuple[float, float] | None,
    ) -> Any:
        """Send one request; the answer's body is left unread (a ``kubernetes.client.rest.RESTResponse``)."""
        configuration = self.api_client.configuration
        url = configuration.host + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json", "Content-Type": content_type}
        token = configuration.get_api_key_with_prefix("BearerToken") if configuration.api_key else None
        if token:
            headers["Authorization"] = token
        self._counters.count(method)
        try:
            return self.api_client.rest_client.request(  # type: ignore[no-untyped-call]
                method, url, headers=headers, body=body, _request_timeout=timeout or self.timeout
            )
        except client.ApiException as exc:
            raise self._api_exception_error(exc, object_ref) from exc
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise self._transport_error(exc, object_ref) from exc

    def _error(
        self,
        status: int,
        document: JsonObject | None,
        object_ref: str | None,
        *,
        http_reason: str = "",
        raw: bytes = b"",
    ) -> OrchestratorError:
        """The error for an answer with a non-2xx ``status``; ``document`` is ``None`` when the body is not JSON."""
        if document is not None and document.get("message"):
            message = str(document["message"])
        else:
            message = f"HTTP {status} {http_reason}".rstrip()
            if raw:
                message += f": {_snippet(raw)}"
        reason = str((document or {}).get("reason") or status)
        kwargs: dict[str, Any] = {"cluster": self.cluster, "object_ref": object_ref, "condition": reason}
        if status == 404:
            return ObjectMissingError(message, **kwargs)
        if status == 409:
            return ConflictError(message, **kwargs)
        if status in (400, 422):
            return InvalidSpecError(message, **kwargs)
        if status in (401, 403):
            return ForbiddenError(
                f"{message} (HTTP {status}: fix the orchestrator's RBAC rules or credentials)", **kwargs
            )
        return ApiServerError(message, **kwargs)

    def _api_exception_error(self, exc: client.ApiException, object_ref: str | None) -> OrchestratorError:
        """Map an ``ApiException`` from the REST layer.

        ``rest_client.request`` returns every HTTP answer, whatever its status; it raises ``ApiException`` only
        with status 0 (a TLS failure, whose reason starts with ``SSLError``, or a request it cannot build) and, when
        ``client_go_retries`` is on, with the status of a 429/5xx answer whose ``Retry-After`` retries ran out.
        """
        status = int(exc.status or 0)
        reason = str(exc.reason or "")
        if status:
            body = exc.body if isinstance(exc.body, bytes) else str(exc.body or "").encode()
            return self._error(status, _decode(body), object_ref, http_reason=reason, raw=body)
        if reason.startswith("SSLError") or any(_is_tls_failure(cause) for cause in _causes(exc)):
            return self._untrusted(reason.replace("\n", ": "), object_ref)
        context = exc.__cause__ or exc.__context__
        if context is not None and not isinstance(context, client.ApiException):
            return self._transport_error(context, object_ref)
        return InvalidSpecError(f"the request could not be sent: {reason}", cluster=self.cluster, object_ref=object_ref)

    def _transport_error(self, exc: BaseException, object_ref: str | None) -> OrchestratorError:
        """Map a failure below HTTP: only connection failures and timeouts are :class:`ClusterUnreachableError`."""
        host = self.api_client.configuration.host
        for cause in _causes(exc):
            if _is_tls_failure(cause):
                return self._untrusted(f"{type(cause).__name__}: {cause}", object_ref)
            if _is_no_answer(cause):
                return ClusterUnreachableError(
                    f"no answer from {host}: {type(cause).__name__}: {cause}",
                    cluster=self.cluster,
                    object_ref=object_ref,
                    condition="Unreachable",
                )
        # Something answered, but not with usable HTTP (bad status line, body cut off, too many redirects, ...).
        return ApiServerError(
            f"broken answer from {host}: {type(exc).__name__}: {exc}",
            cluster=self.cluster,
            object_ref=object_ref,
            condition="BrokenAnswer",
        )

    def _untrusted(self, detail: str, object_ref: str | None) -> UntrustedEndpointError:
        host = self.api_client.configuration.host
        return UntrustedEndpointError(
            f"TLS failure talking to {host}: something answers but its certificate is not trusted: "
            f"check the kubeconfig's CA / server ({detail})",
            cluster=self.cluster,
            object_ref=object_ref,
            condition="UntrustedEndpoint",
        )

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
        """One cheap request (``/version``) with a short timeout: succeeds when the API server answers 2xx JSON.

        Args:
            timeout: connect and read timeout, in seconds, of each attempt (the client's ``retries`` may repeat
                a failed attempt once more: :func:`clusters.kubeclient.new_api_client` sets one retry).

        Raises:
            ClusterUnreachableError: no answer at all (connection refused or reset, DNS, no route, timeout).
            ForbiddenError: the API server refused the credentials (401/403).
            ApiServerError: it answered but is unhealthy (5xx, 429, a non-JSON or broken answer).
            UntrustedEndpointError: something answers but the TLS handshake failed (certificate not trusted).
        """
        self.request("GET", "/version", object_ref="/version", timeout=(timeout, timeout))


class RememberingApi(ClusterApi):
    """See :meth:`ClusterApi.remembering`."""

    def __init__(self, api: ClusterApi) -> None:
        super().__init__(api.cluster, api.api_client, api.timeout)
        self.share_counters(api)
        self._base = api
        self._answers: dict[tuple[str, str], JsonObject] = {}

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
        """A GET answered from memory when asked before; anything else sent (a write forgets every answer)."""
        key = (path, urllib.parse.urlencode(query or {}))
        if method == "GET" and key in self._answers:
            return copy.deepcopy(self._answers[key])
        if method != "GET":
            self._answers.clear()
        answer = self._base.request(
            method, path, body, query=query, content_type=content_type, object_ref=object_ref, timeout=timeout
        )
        if method == "GET":
            self._answers[key] = copy.deepcopy(answer)
        return answer


class RequestCounters:
    """Requests sent, shared by an API and its views."""

    def __init__(self) -> None:
        self.requests = 0
        self.writes = 0
        self._lock = threading.Lock()

    def count(self, method: str) -> None:
        """Count one request of ``method``."""
        with self._lock:
            self.requests += 1
            if method != "GET":
                self.writes += 1


class JsonStream:
    """The answer of :meth:`ClusterApi.stream`: JSON objects, one per line, until the server ends it.

    :meth:`close` may be called from another thread: it cuts a blocked read short.
    """

    def __init__(self, api: ClusterApi, response: urllib3.BaseHTTPResponse, object_ref: str) -> None:
        self._api = api
        self._response = response
        self._object_ref = object_ref
        self._closed = False
        self._finished = False

    def __iter__(self) -> Iterator[JsonObject]:
        buffer = b""
        try:
            for chunk in self._response.stream(amt=None, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    document = _decode(line)
                    if document is None:
                        raise ApiServerError(
                            f"a stream sent a line that is not a JSON object: {_snippet(line)}",
                            cluster=self._api.cluster,
                            object_ref=self._object_ref,
                            condition="NotJSON",
                        )
                    yield document
            self._finished = True
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError) as exc:
            if self._closed:
                return
            raise self._api._transport_error(exc, self._object_ref) from exc

    def close(self) -> None:
        """End the stream (from any thread).

        A stream the server ended leaves its connection reusable; one cut short has its connection closed (a
        blocked read is interrupted first), so that no later request is sent on it.
        """
        if self._closed:
            return
        self._closed = True
        if not self._finished:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                self._response.shutdown()
            self._response.close()
        self._response.release_conn()


_NO_ANSWER_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
    }
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps, outermost first (urllib3 keeps the cause in ``reason``, ``args`` or ``__cause__``)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, urllib3.exceptions.MaxRetryError) and current.reason is not None:
            pending.append(current.reason)
        if isinstance(current, urllib3.exceptions.ProxyError) and current.original_error is not None:
            pending.append(current.original_error)
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        if current.__cause__ is not None:
            pending.append(current.__cause__)
        elif current.__context__ is not None and not current.__suppress_context__:
            pending.append(current.__context__)


def _is_tls_failure(exc: BaseException) -> bool:
    """A TLS handshake or certificate verification failure.

    Check it before :func:`_is_no_answer`: ``ssl.SSLError`` is an ``OSError`` too.
    """
    return isinstance(exc, urllib3.exceptions.SSLError | ssl.SSLError | ssl.CertificateError)


def _is_no_answer(exc: BaseException) -> bool:
    """A connection failure (refused, reset, DNS, no route) or a connect/read timeout: nothing answered."""
    if isinstance(
        exc,
        urllib3.exceptions.TimeoutError  # connect and read timeouts; NewConnectionError and NameResolutionError too
        | TimeoutError
        | ConnectionError  # refused, reset, aborted, broken pipe; http.client.RemoteDisconnected
        | socket.gaierror,
    ):
        return True
    return isinstance(exc, OSError) and exc.errno in _NO_ANSWER_ERRNOS


def _decode(raw: bytes) -> JsonObject | None:
    """The JSON object in ``raw`` (``{}`` when empty), or ``None`` when it is not a JSON object."""
    if not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError
        return None
    return document if isinstance(document, dict) else None


def _snippet(raw: bytes, limit: int = 200) -> str:
    """The start of a body, on one line, for an error message."""
    text = " ".join(raw[: limit * 4].decode("utf-8", errors="replace").split())
    return text if len(text) <= limit else text[:limit] + "..."
