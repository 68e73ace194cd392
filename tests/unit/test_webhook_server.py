"""Unit tier: the webhook's HTTP contract (the intake replaced by a recorder, requests through httpx's ASGI transport).

A wrong or missing token is 401, an oversized body 413, malformed JSON, a wrong version or invalid fields 400: none
of them reaches the intake. A good notification is 202 with what was started, joined and ignored; an intake that
could not reach Temporal makes a 503 (Alertmanager retries it). Health, readiness and metrics answer.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from orchestrate.alerts.intake import Action, Decision
from orchestrate.alerts.payload import Notification
from orchestrate.alerts.server import WEBHOOK_PATH, Ready, create_app

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAYLOAD: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}:{alertname="SiteDown"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "failover",
    "groupLabels": {"alertname": "SiteDown"},
    "commonLabels": {"alertname": "SiteDown"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "notification_reason": "first notification",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "SiteDown", "site": "dc1"},
            "annotations": {"summary": "dc1 is dark"},
            "startsAt": "2026-12-06T03:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": "a1b2c3",
        }
    ],
}


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[Notification] = []
        self.fail = fail

    async def take(self, notification: Notification) -> list[Decision]:
        if self.fail:
            raise ConnectionError("Temporal at 127.0.0.1:7233 does not answer")
        self.seen.append(notification)
        return [
            Decision(
                alertname="SiteDown",
                fingerprint="a1b2c3",
                status="firing",
                action=Action.STARTED,
                reason="unplanned failover of pg-prod started (waits for approval)",
                rule="site-down",
                group="pg-prod",
                workflow_id="failover/pg-prod",
            )
        ]


async def always_ready() -> str | None:
    return None


def app_for(recorder: Recorder, *, max_body: int = 200_000, ready: Ready = always_ready) -> FastAPI:
    return create_app(token=TOKEN, take=recorder.take, ready=ready, max_body=max_body)


async def request(app: FastAPI, method: str, path: str, **options: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webhook") as client:
        return await client.request(method, path, **options)


async def test_a_notification_is_accepted_and_answered_with_what_it_started() -> None:
    recorder = Recorder()
    response = await request(app_for(recorder), "POST", WEBHOOK_PATH, json=PAYLOAD, headers=AUTH)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["started"] == ["failover/pg-prod"] and body["joined"] == [] and body["ignored"] == []
    (seen,) = recorder.seen
    assert seen.alerts[0].fingerprint == "a1b2c3" and seen.notification_reason == "first notification"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
async def test_a_missing_or_wrong_token_is_401_and_reaches_nothing(headers: dict[str, str]) -> None:
    recorder = Recorder()
    response = await request(app_for(recorder), "POST", WEBHOOK_PATH, json=PAYLOAD, headers=headers)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert recorder.seen == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"[" * 100_000, "malformed JSON"),
        (json.dumps({**PAYLOAD, "version": "3"}).encode(), "unsupported payload version '3'"),
        (json.dumps({k: v for k, v in PAYLOAD.items() if k != "version"}).encode(), "unsupported payload version"),
        (json.dumps({**PAYLOAD, "alerts": [{"status": "burning", "labels": {}}]}).encode(), "alerts.0.status"),
        (json.dumps({**PAYLOAD, "alerts": [{"status": "firing", "labels": {"a": 1}}]}).encode(), "alerts.0.labels"),
        (json.dumps({k: v for k, v in PAYLOAD.items() if k != "groupKey"}).encode(), "groupKey"),
    ],
)
async def test_bad_payloads_are_400_with_the_reason_and_reach_nothing(body: bytes, expected: str) -> None:
    recorder = Recorder()
    response = await request(app_for(recorder), "POST", WEBHOOK_PATH, content=body, headers=AUTH)
    assert response.status_code == 400
    assert expected in json.dumps(response.json())
    assert recorder.seen == []


async def test_an_oversized_body_is_413_and_reaches_nothing() -> None:
    recorder = Recorder()
    big = {**PAYLOAD, "commonAnnotations": {"description": "x" * 300_000}}
    response = await request(app_for(recorder), "POST", WEBHOOK_PATH, json=big, headers=AUTH)
    assert response.status_code == 413
    assert recorder.seen == []


async def test_a_notification_not_handed_to_temporal_is_503_so_that_alertmanager_retries() -> None:
    response = await request(app_for(Recorder(fail=True)), "POST", WEBHOOK_PATH, json=PAYLOAD, headers=AUTH)
    assert response.status_code == 503 and "retry later" in response.json()["error"]


async def test_health_readiness_and_metrics() -> None:
    async def not_ready() -> str | None:
        return "Temporal at 127.0.0.1:7233 does not answer"

    app = app_for(Recorder())
    await request(app, "POST", WEBHOOK_PATH, json=PAYLOAD, headers=AUTH)
    await request(app, "POST", WEBHOOK_PATH, json=PAYLOAD)
    assert (await request(app, "GET", "/healthz")).status_code == 200
    assert (await request(app, "GET", "/readyz")).status_code == 200
    metrics = (await request(app, "GET", "/metrics")).text
    assert 'orchestrate_webhook_requests_total{result="accepted"} 1' in metrics
    assert 'orchestrate_webhook_requests_total{result="unauthorized"} 1' in metrics
    assert 'orchestrate_alert_decisions_total{action="started",kind="started"} 1' in metrics
    response = await request(app_for(Recorder(), ready=not_ready), "GET", "/readyz")
    assert response.status_code == 503 and "does not answer" in response.text


def test_the_app_refuses_to_exist_without_a_token() -> None:
    with pytest.raises(ValueError, match="bearer token"):
        create_app(token="", take=Recorder().take, ready=always_ready)
