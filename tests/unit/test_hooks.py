"""Unit tier: ``FailoverActivities.run_hook`` against a real HTTP server on 127.0.0.1 that records requests.

Covers: the URL and method come from the group's configuration; headers are resolved from an environment variable,
a file and a literal; the ``Idempotency-Key`` header and the payload's ``idempotency_key`` equal the input's key;
a hook the configuration lacks, an unset variable and an unreadable file -> InvalidSpecError (naming the reference,
never a value, and sending nothing); a 500 answer -> BackendFailedError with the status (also when the server
echoes the request's token in its error body); connection refused -> ClusterUnreachableError (retryable). In every
error case the planted secret appears nowhere in the error (the ApplicationError the activity raises, its domain
cause, or their details).

``run_hook`` is called directly, outside an activity context: it still leaves through ``domain_errors``, so a
failure is an ``ApplicationError`` whose ``type`` names the domain error and whose ``__cause__`` is that error.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.failover import FailoverActivities
from activities.groups import static_lookup
from adapters.base import Backend
from clusters.errors import BackendFailedError, ClusterUnreachableError, InvalidSpecError, OrchestratorError
from clusters.registry import ClusterRegistry
from tests.unit.local_servers import closed_port
from workflows.groups import GroupConfig, HeaderSource, HookConfig, Hooks, ReplicationConfig
from workflows.models import HookInput

# --------------------------------------------------------------------------------------------- recording server


@dataclass
class Recorded:
    """One request the hook server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class HookServer:
    """A running hook endpoint: its URL, what it answers, and every request it received.

    ``echo_header`` names a request header whose value the server copies into its answer body (a server that
    repeats what it was sent in its error page).
    """

    url: str = ""
    status: int = 200
    body: str = '{"ok": true}'
    echo_header: str | None = None
    requests: list[Recorded] = field(default_factory=list)


def _handler(server: HookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            server.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body))
            text = server.body
            if server.echo_header is not None:
                text += f" (you sent {server.echo_header}: {self.headers.get(server.echo_header)})"
            payload = text.encode()
            self.send_response(server.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def do_PUT(self) -> None:
            self._answer()

        def do_PATCH(self) -> None:
            self._answer()

        def do_DELETE(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def hook_server(status: int = 200) -> Iterator[HookServer]:
    """A recording HTTP server on 127.0.0.1 answering ``status`` to every request (tests may change it)."""
    state = HookServer(status=status)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# --------------------------------------------------------------------------------------------- helpers


def make_group(hooks: Hooks, name: str = "pg-hooks") -> GroupConfig:
    return GroupConfig(
        name=name,
        namespace=name,
        backend=Backend.CSI_ADDONS,
        clusters=("dc1", "dc2"),
        replication=ReplicationConfig(name="postgres"),
        hooks=hooks,
    )


def activities_for(group: GroupConfig, http: httpx.Client) -> FailoverActivities:
    return FailoverActivities(registry=ClusterRegistry([]), groups=static_lookup([group]), http=http)


def hook_input(group: GroupConfig, hook_name: str = "dns", stage: str = "pre", key: str | None = None) -> HookInput:
    return HookInput(
        group=group.name,
        hook_name=hook_name,
        stage=stage,
        source="dc1",
        target="dc2",
        idempotency_key=key if key is not None else f"failover/{group.name}/run-1/{stage}-hook/{hook_name}",
    )


def everything_said(error: ApplicationError) -> str:
    """Every text the failure carries: the ApplicationError, its details, and the domain error behind it."""
    cause = error.__cause__
    parts = [str(error), repr(error), error.message, repr(error.details), str(cause), repr(cause)]
    if isinstance(cause, OrchestratorError):
        parts += [cause.describe(), str(cause.object_ref), str(cause.condition)]
    return "\n".join(parts)


def fails_with(activities: FailoverActivities, request: HookInput, error_type: type[OrchestratorError]) -> Any:
    """Run the hook expecting ``error_type``; the ApplicationError and its domain cause."""
    with pytest.raises(ApplicationError) as caught:
        activities.run_hook(request)
    error = caught.value
    assert error.type == error_type.__name__, error
    assert isinstance(error.__cause__, error_type)
    assert error.non_retryable is (not error_type.retryable)
    return error, error.__cause__


@pytest.fixture
def secret() -> str:
    return f"s3cr3t-token-{uuid.uuid4()}"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    # trust_env=False: a proxy from the environment must not stand between the test and 127.0.0.1.
    with httpx.Client(trust_env=False) as client:
        yield client


# --------------------------------------------------------------------------------------------- tests


def test_hook_call_uses_the_configured_url_method_and_resolved_headers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, http: httpx.Client, secret: str
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("file-secret-42\n")
    monkeypatch.setenv("HOOK_TOKEN", secret)
    with hook_server() as server:
        hook = HookConfig(
            name="dns",
            url=f"{server.url}/switch?zone=prod",
            method="PUT",
            headers={
                "Authorization": HeaderSource(env="HOOK_TOKEN"),
                "X-Api-Key": HeaderSource(file=str(key_file)),
                "X-Team": HeaderSource(value="storage"),
            },
        )
        group = make_group(Hooks(pre=(hook,)))
        request = hook_input(group, key="failover/pg-hooks/run-1/pre-hook/dns")
        result = activities_for(group, http).run_hook(request)

    assert result == "hook dns: 200"
    assert secret not in result
    assert len(server.requests) == 1
    sent = server.requests[0]
    assert (sent.method, sent.path) == ("PUT", "/switch?zone=prod")
    assert sent.headers["Authorization"] == secret
    assert sent.headers["X-Api-Key"] == "file-secret-42"  # the file's content, stripped
    assert sent.headers["X-Team"] == "storage"
    assert sent.headers["Idempotency-Key"] == request.idempotency_key
    assert sent.body == {
        "group": "pg-hooks",
        "stage": "pre",
        "source": "dc1",
        "target": "dc2",
        "hook": "dns",
        "idempotency_key": request.idempotency_key,
    }


def test_post_hook_is_found_by_stage_and_defaults_to_post(http: httpx.Client) -> None:
    with hook_server(status=204) as server:
        hook = HookConfig(name="notify", url=f"{server.url}/notify")
        group = make_group(Hooks(post=(hook,)))
        assert activities_for(group, http).run_hook(hook_input(group, "notify", stage="post")) == "hook notify: 204"
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/notify")]
    assert server.requests[0].body["stage"] == "post"


@pytest.mark.parametrize(("hook_name", "stage"), [("nope", "pre"), ("dns", "post")])
def test_hook_missing_from_the_configuration_is_invalid_spec(
    monkeypatch: pytest.MonkeyPatch, http: httpx.Client, secret: str, hook_name: str, stage: str
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", secret)
    with hook_server() as server:
        hook = HookConfig(name="dns", url=server.url, headers={"Authorization": HeaderSource(env="HOOK_TOKEN")})
        group = make_group(Hooks(pre=(hook,)))
        error, cause = fails_with(activities_for(group, http), hook_input(group, hook_name, stage), InvalidSpecError)
    assert f"has no {stage}-hook '{hook_name}'" in cause.message
    assert secret not in everything_said(error)
    assert server.requests == []


def test_unset_variable_is_invalid_spec_naming_the_variable_not_a_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, http: httpx.Client, secret: str
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text(secret)
    monkeypatch.setenv("OTHER_TOKEN", "other-" + secret)
    monkeypatch.delenv("HOOK_TOKEN_MISSING", raising=False)
    with hook_server() as server:
        hook = HookConfig(
            name="dns",
            url=server.url,
            headers={
                # resolved before the failing one: their values are in hand when it fails
                "X-Api-Key": HeaderSource(file=str(key_file)),
                "X-Other": HeaderSource(env="OTHER_TOKEN"),
                "Authorization": HeaderSource(env="HOOK_TOKEN_MISSING"),
            },
        )
        group = make_group(Hooks(pre=(hook,)))
        error, cause = fails_with(activities_for(group, http), hook_input(group), InvalidSpecError)
    assert "HOOK_TOKEN_MISSING" in cause.message
    assert "header Authorization" in cause.message
    said = everything_said(error)
    assert secret not in said
    assert server.requests == []


def test_unreadable_header_file_is_invalid_spec_naming_the_file(
    tmp_path: Path, http: httpx.Client, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", secret)
    missing = tmp_path / "no-such-token"
    with hook_server() as server:
        hook = HookConfig(
            name="dns",
            url=server.url,
            headers={"Authorization": HeaderSource(env="HOOK_TOKEN"), "X-Api-Key": HeaderSource(file=str(missing))},
        )
        group = make_group(Hooks(pre=(hook,)))
        error, cause = fails_with(activities_for(group, http), hook_input(group), InvalidSpecError)
    assert str(missing) in cause.message
    assert secret not in everything_said(error)
    assert server.requests == []


def test_error_status_is_backend_failed_with_the_status(
    monkeypatch: pytest.MonkeyPatch, http: httpx.Client, secret: str
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", secret)
    with hook_server(status=500) as server:
        server.body = '{"error": "dns provider down"}'
        hook = HookConfig(
            name="dns", url=f"{server.url}/switch", headers={"Authorization": HeaderSource(env="HOOK_TOKEN")}
        )
        group = make_group(Hooks(pre=(hook,)))
        error, cause = fails_with(activities_for(group, http), hook_input(group), BackendFailedError)
    assert "answered 500" in cause.message
    assert "dns provider down" in cause.message
    assert cause.object_ref == f"{server.url}/switch"
    assert secret not in everything_said(error)
    assert len(server.requests) == 1 and server.requests[0].headers["Authorization"] == secret


def test_error_body_echoing_the_token_does_not_leak_it(
    monkeypatch: pytest.MonkeyPatch, http: httpx.Client, secret: str
) -> None:
    """A server that repeats the request's Authorization in its error page must not put the token in the error.

    run_hook promises that header values "appear in no result, error or log"; the error quotes the answer body.
    """
    monkeypatch.setenv("HOOK_TOKEN", secret)
    with hook_server(status=401) as server:
        server.body = "invalid credentials"
        server.echo_header = "Authorization"
        hook = HookConfig(name="dns", url=server.url, headers={"Authorization": HeaderSource(env="HOOK_TOKEN")})
        group = make_group(Hooks(pre=(hook,)))
        error, cause = fails_with(activities_for(group, http), hook_input(group), BackendFailedError)
    assert "answered 401" in cause.message
    assert secret not in everything_said(error)


def test_connection_refused_is_retryable_unreachable_without_the_secret(
    monkeypatch: pytest.MonkeyPatch, http: httpx.Client, secret: str
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", secret)
    url = f"http://127.0.0.1:{closed_port()}/switch"
    hook = HookConfig(name="dns", url=url, headers={"Authorization": HeaderSource(env="HOOK_TOKEN")})
    group = make_group(Hooks(pre=(hook,)))
    error, cause = fails_with(activities_for(group, http), hook_input(group), ClusterUnreachableError)
    assert ClusterUnreachableError.retryable and not error.non_retryable
    assert "ConnectError" in cause.message and url in cause.message
    assert cause.__cause__ is None and cause.__suppress_context__  # the httpx error (and its request) is dropped
    assert secret not in everything_said(error)
