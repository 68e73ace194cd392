"""The webhook server (``orchestrate serve``): Alertmanager notifications in, failovers started or joined.

Every request is checked in this order, and one that fails a check starts nothing: the bearer token (401), the
body's size (413), JSON (400), the payload version (400), the payload's fields (400). Alertmanager does not retry
a 4xx, so a request it cannot fix is never resent. A 5xx (503) means the notification could not be handed to
Temporal; Alertmanager retries it, and the retry joins whatever the first attempt started. ``/healthz`` says the
process runs, ``/readyz`` that Temporal answers, ``/metrics`` counts requests and decisions (Prometheus text).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from opentelemetry import propagate, trace
from pydantic import ValidationError

from orchestrate.alerts.intake import Action, Decision
from orchestrate.alerts.payload import SUPPORTED_VERSION, Notification

WEBHOOK_PATH = "/webhook/alertmanager"
NOTIFICATION_SPAN = "alertmanager notification"
DEFAULT_MAX_BODY = 1024 * 1024
"""Bytes: Alertmanager's own default for a group is far below (``max_alerts`` trims large groups anyway)."""

log = logging.getLogger("orchestrate.serve")
_tracer = trace.get_tracer("failover-orchestrator.webhook")

Take = Callable[[Notification], Awaitable[list[Decision]]]
"""Decide and do what a notification asks (the intake bound to its configuration and Temporal)."""
Ready = Callable[[], Awaitable[str | None]]
"""``None`` when Temporal answers, otherwise why not."""


@dataclass
class Metrics:
    """Counters ``/metrics`` shows."""

    requests: Counter[str] = field(default_factory=Counter)
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)

    def render(self) -> str:
        """Prometheus text exposition format."""
        lines = [
            "# HELP orchestrate_webhook_requests_total Webhook requests by result.",
            "# TYPE orchestrate_webhook_requests_total counter",
            *(f'orchestrate_webhook_requests_total{{result="{k}"}} {v}' for k, v in sorted(self.requests.items())),
            "# HELP orchestrate_alert_decisions_total Alerts by what the intake did and why (reason kind).",
            "# TYPE orchestrate_alert_decisions_total counter",
            *(
                f'orchestrate_alert_decisions_total{{action="{a}",kind="{k}"}} {v}'
                for (a, k), v in sorted(self.decisions.items())
            ),
        ]
        return "\n".join(lines) + "\n"


def create_app(*, token: str, take: Take, ready: Ready, max_body: int = DEFAULT_MAX_BODY) -> FastAPI:
    """The ASGI application.

    Args:
        token: the bearer token Alertmanager sends (``http_config.authorization.credentials_file``).
        take: the intake.
        ready: the readiness probe (Temporal reachable).
        max_body: largest accepted body in bytes.
    """
    if not token:
        raise ValueError("the webhook needs a bearer token")
    app = FastAPI(title="Failover Orchestrator webhook", docs_url=None, redoc_url=None, openapi_url=None)
    metrics = Metrics()
    expected = f"Bearer {token}".encode()

    def answer(result: str, status: int, body: dict[str, Any]) -> JSONResponse:
        metrics.requests[result] += 1
        return JSONResponse(body, status_code=status)

    @app.post(WEBHOOK_PATH)
    async def webhook(request: Request) -> Response:
        # The trace continues Alertmanager's (it sends traceparent when its tracing is on): the workflow the
        # notification starts, its activities and their Kubernetes calls are spans of the same trace. FastAPI may
        # have opened the request's server span already (recent versions do); then this one is its child.
        inside_request_span = trace.get_current_span().get_span_context().is_valid
        with _tracer.start_as_current_span(
            NOTIFICATION_SPAN,
            context=None if inside_request_span else propagate.extract(dict(request.headers)),
            kind=trace.SpanKind.INTERNAL if inside_request_span else trace.SpanKind.SERVER,
            attributes={"http.request.method": "POST", "url.path": WEBHOOK_PATH},
        ) as span:
            response = await handle(request)
            span.set_attribute("http.response.status_code", response.status_code)
            return response

    async def handle(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            metrics.requests["unauthorized"] += 1
            return JSONResponse(
                {"error": "missing or wrong bearer token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        body = await _read_limited(request, max_body)
        if body is None:
            return answer("too-large", 413, {"error": f"body larger than {max_body} bytes"})
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            return answer("bad-request", 400, {"error": f"malformed JSON: {error}"})
        if not isinstance(data, dict):
            return answer("bad-request", 400, {"error": "the payload must be a JSON object"})
        version = data.get("version")
        if version != SUPPORTED_VERSION:
            return answer(
                "bad-request",
                400,
                {"error": f"unsupported payload version {version!r}: this receiver reads version {SUPPORTED_VERSION}"},
            )
        try:
            notification = Notification.model_validate(data)
        except ValidationError as invalid:
            problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in invalid.errors()]
            return answer("bad-request", 400, {"error": "invalid payload", "problems": problems})
        try:
            decisions = await take(notification)
        except Exception as error:  # not handed to Temporal: Alertmanager retries a 5xx
            log.exception("notification %s not handed to Temporal", notification.group_key)
            return answer("unavailable", 503, {"error": f"could not reach Temporal, retry later: {error}"})
        for decision in decisions:
            metrics.decisions[(decision.action.value, decision.kind or decision.action.value)] += 1
            log.info(
                "alert %s (%s, %s): %s %s: %s",
                decision.alertname,
                decision.fingerprint,
                decision.status,
                decision.action.value,
                decision.workflow_id or decision.group or "",
                decision.reason,
            )
        return answer("accepted", 202, summary(notification, decisions))

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz")
    async def readyz() -> PlainTextResponse:
        problem = await ready()
        if problem is not None:
            return PlainTextResponse(f"not ready: {problem}\n", status_code=503)
        return PlainTextResponse("ready\n")

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def summary(notification: Notification, decisions: list[Decision]) -> dict[str, Any]:
    """The 202 answer: the workflows started and joined, and every alert ignored with the reason."""

    def ids(action: Action) -> list[str]:
        return sorted({d.workflow_id for d in decisions if d.action is action and d.workflow_id})

    return {
        "groupKey": notification.group_key,
        "started": ids(Action.STARTED),
        "joined": ids(Action.JOINED),
        "recorded": ids(Action.RECORDED),
        "ignored": [
            {"alertname": d.alertname, "fingerprint": d.fingerprint, "reason": d.reason}
            for d in decisions
            if d.action is Action.IGNORED
        ],
        "decisions": [d.model_dump(mode="json", exclude_none=True) for d in decisions],
    }


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` once it is known to exceed ``limit`` (from Content-Length, else while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
