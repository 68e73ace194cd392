"""ClusterApi's error mapping against real HTTP(S) endpoints on 127.0.0.1: "unreachable" means nothing answered.

Covers ``ClusterApi.ping`` and ``ClusterApi.request`` for 401/403 (ForbiddenError), 5xx and 429 with HTML or JSON
bodies (ApiServerError, never ClusterUnreachableError), a 2xx whose body is not JSON (ApiServerError), other error
statuses with non-JSON bodies, a refused port and a server that never answers (ClusterUnreachableError, within the
timeout), and TLS with an untrusted self-signed certificate (UntrustedEndpointError) next to the same server with
its CA configured (answers).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import ApiException

from clusters.api import PODS
from clusters.errors import (
    ApiServerError,
    ClusterUnreachableError,
    ForbiddenError,
    ObjectMissingError,
    UntrustedEndpointError,
)
from tests.unit.local_servers import (
    PROXY_502,
    Server,
    closed_port,
    cluster_api,
    http_server,
    self_signed,
    server_tls,
    silent_server,
)

STATUS_403 = (
    b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"forbidden: User \\"system:anonymous\\" '
    b'cannot get path \\"/version\\"","reason":"Forbidden","code":403}'
)


@pytest.fixture
def server() -> Iterator[Server]:
    with http_server() as running:
        yield running


def test_ping_succeeds_on_a_json_answer(server: Server) -> None:
    with cluster_api(server.url) as api:
        api.ping()
    assert server.answer.paths == ["/version"]


@pytest.mark.parametrize("status", [401, 403])
def test_ping_refused_credentials_are_forbidden_not_unreachable(server: Server, status: int) -> None:
    server.answer.status, server.answer.body = status, STATUS_403
    with cluster_api(server.url) as api, pytest.raises(ForbiddenError) as raised:
        api.ping()
    assert not isinstance(raised.value, ClusterUnreachableError)
    assert not raised.value.retryable
    assert raised.value.cluster == "dc1"
    assert "cannot get path" in raised.value.message
    assert "RBAC" in raised.value.message and "credentials" in raised.value.message


def test_ping_401_without_a_body_is_forbidden(server: Server) -> None:
    server.answer.status, server.answer.body, server.answer.content_type = 401, b"", "text/plain"
    with cluster_api(server.url) as api, pytest.raises(ForbiddenError) as raised:
        api.ping()
    assert "HTTP 401" in raised.value.message


def test_ping_503_with_an_html_body_is_an_api_server_error_showing_the_status(server: Server) -> None:
    server.answer.status, server.answer.body, server.answer.content_type = 503, PROXY_502, "text/html"
    with cluster_api(server.url) as api, pytest.raises(ApiServerError) as raised:
        api.ping()
    error = raised.value
    assert not isinstance(error, ClusterUnreachableError)
    assert error.retryable
    assert "HTTP 503" in error.message
    assert "502 Bad Gateway" in error.message  # the body's start, for the operator
    assert error.condition == "503"


def test_an_error_body_is_quoted_up_to_about_200_characters(server: Server) -> None:
    server.answer.status, server.answer.body, server.answer.content_type = 502, b"<p>" + b"x" * 5000, "text/html"
    with cluster_api(server.url) as api, pytest.raises(ApiServerError) as raised:
        api.ping()
    assert "HTTP 502" in raised.value.message
    assert len(raised.value.message) < 300


@pytest.mark.parametrize("status", [500, 429])
def test_a_json_5xx_or_429_keeps_the_api_servers_message(server: Server, status: int) -> None:
    server.answer.status = status
    server.answer.body = b'{"kind":"Status","message":"etcdserver: request timed out","reason":"InternalError"}'
    with cluster_api(server.url) as api, pytest.raises(ApiServerError) as raised:
        api.ping()
    assert not isinstance(raised.value, ClusterUnreachableError)
    assert raised.value.message == "etcdserver: request timed out"
    assert raised.value.condition == "InternalError"


def test_ping_200_with_a_non_json_body_is_an_api_server_error(server: Server) -> None:
    server.answer.body, server.answer.content_type = b"<html>Welcome to nginx!</html>", "text/html"
    with cluster_api(server.url) as api, pytest.raises(ApiServerError) as raised:
        api.ping()
    assert not isinstance(raised.value, ClusterUnreachableError)
    assert raised.value.retryable
    assert "not a JSON object" in raised.value.message
    assert "Welcome to nginx" in raised.value.message


def test_a_404_html_page_is_object_missing_not_a_decode_error(server: Server) -> None:
    server.answer.status, server.answer.body, server.answer.content_type = 404, b"<h1>Not Found</h1>", "text/html"
    with cluster_api(server.url) as api, pytest.raises(ObjectMissingError) as raised:
        api.get(PODS, "db-0", "pg-prod")
    assert "HTTP 404" in raised.value.message
    assert raised.value.object_ref == "Pod pg-prod/db-0"
    with cluster_api(server.url) as api:
        assert api.find(PODS, "db-0", "pg-prod") is None


def test_ping_on_a_refused_port_is_unreachable() -> None:
    with cluster_api(f"http://127.0.0.1:{closed_port()}") as api, pytest.raises(ClusterUnreachableError) as raised:
        api.ping()
    assert raised.value.retryable
    assert "refused" in raised.value.message.lower()


def test_ping_on_a_server_that_never_answers_is_unreachable_within_the_timeout() -> None:
    timeout = 0.5
    with silent_server() as url, cluster_api(url) as api:
        started = time.monotonic()
        with pytest.raises(ClusterUnreachableError) as raised:
            api.ping(timeout=timeout)
        elapsed = time.monotonic() - started
    # Each of the client's attempts (one try and the one retry new_api_client configures) gets the timeout.
    assert timeout <= elapsed < 2 * timeout + 1.0
    assert "timed out" in raised.value.message.lower()


def test_ping_over_tls_with_an_untrusted_certificate_is_untrusted_not_unreachable(tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path)
    with http_server(tls=server_tls(cert_file, key_file)) as tls_server:
        with cluster_api(tls_server.url) as api, pytest.raises(UntrustedEndpointError) as raised:
            api.ping()
        assert not raised.value.retryable
        assert "certificate" in raised.value.message
        assert "CA" in raised.value.message
        # The same server, with its CA in the configuration, answers.
        with cluster_api(tls_server.url, ca_file=cert_file) as api:
            api.ping()
        assert tls_server.answer.paths == ["/version"]


def test_without_urllib3_retries_the_unwrapped_failures_map_the_same(tmp_path: Path) -> None:
    # retries=False: urllib3 raises NewConnectionError / ReadTimeoutError itself, and the kubernetes REST layer
    # catches the SSLError and raises ApiException(status=0, reason="SSLError\n...").
    with (
        cluster_api(f"http://127.0.0.1:{closed_port()}", retries=False) as api,
        pytest.raises(ClusterUnreachableError),
    ):
        api.ping()
    with silent_server() as url, cluster_api(url, retries=False) as api:
        started = time.monotonic()
        with pytest.raises(ClusterUnreachableError):
            api.ping(timeout=0.5)
        assert time.monotonic() - started < 1.5
    cert_file, key_file = self_signed(tmp_path)
    with http_server(tls=server_tls(cert_file, key_file)) as tls_server:
        with cluster_api(tls_server.url, retries=False) as api, pytest.raises(UntrustedEndpointError) as raised:
            api.ping()
        assert isinstance(raised.value.__cause__, ApiException)
        assert raised.value.__cause__.status == 0


def test_plain_http_spoken_to_over_https_is_untrusted(server: Server) -> None:
    with cluster_api(server.url.replace("http://", "https://")) as api, pytest.raises(UntrustedEndpointError):
        api.ping()
