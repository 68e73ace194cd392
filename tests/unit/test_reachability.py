"""clusters.reachability against real endpoints on 127.0.0.1, with a fake sleep.

Covers ``assess``: every probe refused -> ``unreachable`` (all probes failed, spread over the window); refused and
then answering -> ``answers``; 403 -> ``forbidden`` after one probe; 503 -> ``unhealthy`` after one probe; an
untrusted certificate -> ``untrusted`` after one probe; argument checks. And ``probe_once`` for each verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from clusters.reachability import Reachability, Verdict, assess, probe_once
from tests.unit.local_servers import (
    PROXY_502,
    Answer,
    closed_port,
    cluster_api,
    http_server,
    self_signed,
    server_tls,
)


class FakeSleep:
    """Records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as exits:
        yield exits


def test_every_probe_refused_is_unreachable(stack: ExitStack) -> None:
    api = stack.enter_context(cluster_api(f"http://127.0.0.1:{closed_port()}"))
    sleep = FakeSleep()
    result = assess(api, probes=3, window=6.0, probe_timeout=0.5, sleep=sleep)
    assert result.verdict is Verdict.UNREACHABLE
    assert not result.answered
    assert (result.probes, result.failed_probes) == (3, 3)
    assert "3 of 3 probes" in result.detail and "refused" in result.detail.lower()
    # Probes start window/probes apart: two waits of about 2 s (minus the time a refused probe took).
    assert len(sleep.waits) == 2
    assert all(1.0 < wait <= 2.0 for wait in sleep.waits)


def test_refused_then_answering_is_answers(stack: ExitStack) -> None:
    port = closed_port()
    api = stack.enter_context(cluster_api(f"http://127.0.0.1:{port}"))
    sleep = FakeSleep()

    def start_the_server(seconds: float) -> None:
        sleep(seconds)
        stack.enter_context(http_server(port=port))  # the API server comes back during the wait

    result = assess(api, probes=3, sleep=start_the_server)
    assert result == Reachability(verdict=Verdict.ANSWERS, detail="cluster dc1 answers", probes=2, failed_probes=1)
    assert result.answered
    assert len(sleep.waits) == 1


def test_forbidden_answers_at_once(stack: ExitStack) -> None:
    server = stack.enter_context(http_server(Answer(status=403, body=b'{"message":"forbidden","reason":"Forbidden"}')))
    api = stack.enter_context(cluster_api(server.url))
    sleep = FakeSleep()
    result = assess(api, sleep=sleep)
    assert result.verdict is Verdict.FORBIDDEN
    assert result.answered
    assert (result.probes, result.failed_probes) == (1, 1)
    assert sleep.waits == []
    assert server.answer.paths == ["/version"]


def test_unhealthy_needs_no_further_probe(stack: ExitStack) -> None:
    server = stack.enter_context(http_server(Answer(status=503, body=PROXY_502, content_type="text/html")))
    api = stack.enter_context(cluster_api(server.url))
    sleep = FakeSleep()
    result = assess(api, sleep=sleep)
    assert result.verdict is Verdict.UNHEALTHY
    assert "HTTP 503" in result.detail
    assert (result.probes, result.failed_probes, sleep.waits) == (1, 1, [])


def test_untrusted_certificate_answers_at_once(stack: ExitStack, tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path)
    server = stack.enter_context(http_server(tls=server_tls(cert_file, key_file)))
    api = stack.enter_context(cluster_api(server.url))
    sleep = FakeSleep()
    result = assess(api, sleep=sleep)
    assert result.verdict is Verdict.UNTRUSTED
    assert (result.probes, result.failed_probes, sleep.waits) == (1, 1, [])


def test_probe_once_classifies_one_probe(stack: ExitStack) -> None:
    server = stack.enter_context(http_server())
    api = stack.enter_context(cluster_api(server.url))
    assert probe_once(api, 1.0).verdict is Verdict.ANSWERS
    server.answer.status = 401
    assert probe_once(api, 1.0).verdict is Verdict.FORBIDDEN
    server.answer.status, server.answer.body = 200, b"not json"
    assert probe_once(api, 1.0).verdict is Verdict.UNHEALTHY
    refused = stack.enter_context(cluster_api(f"http://127.0.0.1:{closed_port()}"))
    result = probe_once(refused, 1.0)
    assert (result.verdict, result.probes, result.failed_probes) == (Verdict.UNREACHABLE, 1, 1)


def test_verdicts_are_strings() -> None:
    assert [str(verdict) for verdict in Verdict] == ["answers", "unreachable", "unhealthy", "forbidden", "untrusted"]


@pytest.mark.parametrize(("probes", "window"), [(0, 6.0), (3, -1.0)])
def test_assess_rejects_impossible_arguments(stack: ExitStack, probes: int, window: float) -> None:
    api = stack.enter_context(cluster_api("http://127.0.0.1:1"))
    with pytest.raises(ValueError):
        assess(api, probes=probes, window=window)
