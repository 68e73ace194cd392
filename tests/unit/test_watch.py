"""Unit tier: clusters.watch with a scripted API (lists and watch streams), for what a real API server rarely does.

Covers a watch that expires (410 Gone, as an ERROR event) being answered by a fresh list, a resource whose CRD is
not installed (nothing to follow, reads find nothing), the watched API matching ``key=value`` label selectors
itself and sending any other selector to the cluster, and ``observations`` polling when the scopes cannot be
listed (the cluster does not answer) and yielding the retryable error instead of raising it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from kubernetes import client as kube

from clusters.api import ClusterApi, JsonObject, JsonStream, Resource
from clusters.errors import ClusterUnreachableError
from clusters.watch import Watcher, WatchScope, observations

PODS = Resource("", "v1", "pods", "Pod")
NOT_INSTALLED = Resource("example.com", "v1", "widgets", "Widget")


def pod(name: str, version: str, labels: Mapping[str, str] | None = None) -> JsonObject:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version, "labels": dict(labels or {})}}


class ScriptedStream:
    """A watch answer: the events put on its queue, until ``None`` (the server ends it) or close()."""

    def __init__(self, events: queue.Queue[JsonObject | None]) -> None:
        self.events = events
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[JsonObject]:
        while not self.closed.is_set():
            try:
                event = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if event is None:
                return
            yield event

    def close(self) -> None:
        self.closed.set()


class ScriptedApi(ClusterApi):
    """Lists answer the next scripted page; each watch takes the next scripted event queue."""

    def __init__(self) -> None:
        super().__init__("dc1", kube.ApiClient(kube.Configuration()))
        self.lists: list[JsonObject | Exception] = []
        self.watches: list[queue.Queue[JsonObject | None]] = []
        self.watch_versions: list[str] = []
        self.listed = 0
        self.sent: list[tuple[str, str, Mapping[str, str] | None]] = []

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> JsonObject:
        self.sent.append((method, path, kwargs.get("query")))
        self.listed += 1
        answer = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def stream(self, path: str, **kwargs: Any) -> JsonStream:
        self.watch_versions.append(kwargs["query"]["resourceVersion"])
        events: queue.Queue[JsonObject | None] = self.watches.pop(0) if self.watches else queue.Queue()
        return ScriptedStream(events)  # type: ignore[return-value]


def page(version: str, *items: JsonObject) -> JsonObject:
    return {"metadata": {"resourceVersion": version}, "items": list(items)}


def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_an_expired_watch_is_answered_by_a_fresh_list() -> None:
    api = ScriptedApi()
    api.lists = [page("10", pod("a", "10")), page("20", pod("a", "15"), pod("b", "20"))]
    expired: queue.Queue[JsonObject | None] = queue.Queue()
    expired.put({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}})
    resumed: queue.Queue[JsonObject | None] = queue.Queue()
    api.watches = [expired, resumed]
    scope = WatchScope(PODS, "ns")
    with Watcher(api, [scope]) as watcher:
        until(lambda: {d["metadata"]["name"] for d in watcher.objects(scope)} == {"a", "b"})
        resumed.put({"type": "DELETED", "object": pod("a", "21")})
        resumed.put({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "30"}}})
        until(lambda: [d["metadata"]["name"] for d in watcher.objects(scope)] == ["b"])
        resumed.put(None)  # the server ends the watch: the reader resumes from the bookmark's version
        until(lambda: len(api.watch_versions) == 3)
    assert api.listed == 2
    assert api.watch_versions == ["10", "20", "30"]


def test_a_resource_whose_crd_is_not_installed_has_nothing_to_follow() -> None:
    api = ScriptedApi()
    api.lists = [api._error(404, {"message": "the server could not find the requested resource"}, None)]
    scope = WatchScope(NOT_INSTALLED, "ns")
    with Watcher(api, [scope]) as watcher:
        assert watcher.objects(scope) == []
        assert watcher.api().list(NOT_INSTALLED, "ns") == []
        assert watcher.api().find(NOT_INSTALLED, "w", "ns") is None
        assert watcher.error is None


def test_equality_selectors_are_matched_locally_and_others_sent() -> None:
    api = ScriptedApi()
    api.lists = [page("5", pod("db-0", "1", {"app": "db", "tier": "a"}), pod("web-0", "2", {"app": "web"}))]
    scope = WatchScope(PODS, "ns")
    with Watcher(api, [scope]) as watcher:
        reads = watcher.api()
        sent = len(api.sent)
        assert [p["metadata"]["name"] for p in reads.list(PODS, "ns", label_selector="app=db")] == ["db-0"]
        assert [p["metadata"]["name"] for p in reads.list(PODS, "ns", label_selector="app=db,tier=b")] == []
        assert len(api.sent) == sent
        reads.list(PODS, "ns", label_selector="app in (db,web)")
        assert len(api.sent) == sent + 1
        reads.list(PODS, "other")  # a namespace the watcher does not follow
        assert len(api.sent) == sent + 2


def test_observations_poll_when_the_scopes_cannot_be_listed() -> None:
    api = ScriptedApi()
    down = ClusterUnreachableError("connection refused", cluster="dc1")
    api.lists = [down]
    answers: Iterator[str | Exception] = iter([down, "seen"])

    def observe(reads: ClusterApi) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    pauses: list[float] = []
    found = observations(
        api,
        [WatchScope(PODS, "ns")],
        observe,
        deadline=time.monotonic() + 10,
        sleep=pauses.append,
        poll=iter([0.5, 0.5, 0.5]),
    )
    assert next(found) is down  # listing failed: reported, not raised
    assert next(found) is down  # the first poll
    assert next(found) == "seen"
    assert pauses == [0.5]
    found.close()
