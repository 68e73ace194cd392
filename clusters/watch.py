"""Objects kept current by Kubernetes watches, so that a wait acts on a change within milliseconds.

A :class:`Watcher` lists each of its :class:`WatchScope` once, then follows each with a watch resumed from the
last ``resourceVersion`` it saw (``allowWatchBookmarks`` keeps that version fresh while nothing changes; a watch
the API server ends is reopened from it; ``410 Gone`` means the version is too old and the scope is listed
again). One reader thread per scope applies the events to a local copy and wakes the waiters.

:meth:`Watcher.api` gives a :class:`~clusters.api.ClusterApi` whose reads of the watched objects are answered from
that copy (no request) and whose other calls go to the cluster: an adapter's ``observe()`` then costs nothing
while a wait watches its objects. Requests are scoped: a scope names a namespace and, for one object, its name
(``fieldSelector=metadata.name=...``).

A reader that loses the cluster keeps retrying every :data:`RETRY_PAUSE` seconds and records the error
(:attr:`Watcher.error`); the waiter decides what an error means (a wait reads the cluster itself again every so
often, and that read raises the usual errors).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from clusters.api import ClusterApi, JsonObject, JsonStream, Resource
from clusters.errors import ApiServerError, ObjectMissingError, OrchestratorError, RetryableError

log = logging.getLogger(__name__)

T = TypeVar("T")

WATCH_SECONDS = 60
"""``timeoutSeconds`` of one watch request: the API server ends it then and the reader reopens it."""
READ_MARGIN = 15.0
"""Added to :data:`WATCH_SECONDS` for the client's read timeout (bookmarks and the server's end come first)."""
REFRESH = 5.0
"""Seconds without a watched change after which :func:`observations` reads the cluster itself: a safety net for
what the watches cannot show, such as a cluster that stopped answering."""
SLICE = 0.2
"""Longest block on the watches before :func:`observations` calls ``sleep(0)`` (an activity's cancellation)."""
ABSENT_RETRY = 10.0
"""Seconds between lists of a resource whose CRD is not installed."""
RETRY_PAUSE = 0.5
"""Seconds between attempts to reopen a watch that failed (the cluster did not answer, the list failed)."""


@dataclass(frozen=True)
class WatchScope:
    """What one watch follows: one resource in one namespace (or cluster-wide), optionally one object by name.

    Attributes:
        resource: the resource.
        namespace: the namespace, ``None`` for a cluster-scoped resource (or every namespace).
        name: one object's name (``fieldSelector=metadata.name=<name>``).
        label_selector: a label selector.
    """

    resource: Resource
    namespace: str | None = None
    name: str | None = None
    label_selector: str | None = None

    def query(self) -> dict[str, str]:
        """The selectors of this scope as query parameters."""
        query: dict[str, str] = {}
        if self.name is not None:
            query["fieldSelector"] = f"metadata.name={self.name}"
        if self.label_selector:
            query["labelSelector"] = self.label_selector
        return query

    def covers(self, resource: Resource, namespace: str | None, name: str | None = None) -> bool:
        """Whether a read of ``resource`` in ``namespace`` (of one object ``name``, or a list) is answered here.

        A list is answered only by a scope without selectors; a get of one object also by a scope of that name.
        """
        if resource != self.resource or (self.resource.namespaced and namespace != self.namespace):
            return False
        if self.label_selector:
            return False
        return self.name is None or self.name == name

    def describe(self) -> str:
        """A short reference for messages."""
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.resource.kind} {self.name}{where}" if self.name else f"{self.resource.kind}s{where}"


def _key(document: JsonObject) -> tuple[str, str]:
    metadata = document.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _resource_version(document: JsonObject) -> str:
    return str((document.get("metadata") or {}).get("resourceVersion") or "")


class _ExpiredError(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class _Follower:
    """One scope: its objects, the version they are at, and the reader thread that keeps them current."""

    def __init__(self, owner: Watcher, scope: WatchScope) -> None:
        self.owner = owner
        self.scope = scope
        self.objects: dict[tuple[str, str], JsonObject] = {}
        self.version = ""
        self.thread: threading.Thread | None = None
        self.stream: JsonStream | None = None
        self.absent = False

    def relist(self) -> None:
        """List the scope (one request) and replace the objects."""
        scope, api = self.scope, self.owner.base
        query = {"limit": "500", **scope.query()}
        items: list[JsonObject] = []
        while True:
            try:
                page = api.request(
                    "GET", scope.resource.path(scope.namespace), query=query, object_ref=f"{scope.describe()} (list)"
                )
            except ObjectMissingError:
                # The resource's CRD is not installed: nothing to follow, and reads of it find nothing.
                self.absent = True
                self.owner.replace(self, {}, "")
                return
            for item in page.get("items", []):
                item.setdefault("apiVersion", scope.resource.api_version)
                item.setdefault("kind", scope.resource.kind)
                items.append(item)
            metadata = page.get("metadata") or {}
            if not metadata.get("continue"):
                break
            query["continue"] = str(metadata["continue"])
        self.owner.replace(self, {_key(item): item for item in items}, str(metadata.get("resourceVersion") or ""))

    def follow(self) -> None:
        """The reader thread: watch from the last version, apply events, reopen, relist when expired."""
        listed = True
        while not self.owner.closed:
            try:
                if not listed or self.absent:
                    if self.absent:
                        self.owner.pause(ABSENT_RETRY)  # a CRD installed later is picked up
                        self.absent = False
                    self.relist()
                    listed = True
                    if self.absent:
                        continue
                self._watch_once()
            except _ExpiredError:
                listed = False
            except OrchestratorError as exc:
                if self.owner.closed:
                    return
                self.owner.set_error(exc)
                listed = False  # events may have been missed while the cluster did not answer
                self.owner.pause(RETRY_PAUSE)
            except Exception as exc:  # a reader must never die silently: the waiter would wait for nothing
                if self.owner.closed:
                    return
                log.warning("%s: watching %s failed: %r", self.owner.base.cluster, self.scope.describe(), exc)
                self.owner.set_error(ApiServerError(f"watch failed: {exc!r}", cluster=self.owner.base.cluster))
                listed = False
                self.owner.pause(RETRY_PAUSE)

    def _watch_once(self) -> None:
        scope = self.scope
        query = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
            "resourceVersion": self.version,
            **scope.query(),
        }
        stream = self.owner.base.stream(
            scope.resource.path(scope.namespace),
            query=query,
            object_ref=f"{scope.describe()} (watch)",
            timeout=(self.owner.base.timeout[0], WATCH_SECONDS + READ_MARGIN),
        )
        self.stream = stream
        if self.owner.closed:  # closed while the watch was being opened: close() did not see this stream
            stream.close()
            return
        self.owner.set_error(None)
        try:
            for event in stream:
                if self.owner.closed:
                    return
                self._apply(event)
        except ApiServerError as exc:
            if exc.condition in ("Expired", "Gone", "410"):
                raise _ExpiredError() from exc
            raise
        finally:
            self.stream = None
            stream.close()

    def _apply(self, event: JsonObject) -> None:
        kind = event.get("type")
        document = event.get("object") or {}
        if kind == "ERROR":
            if document.get("code") == 410 or document.get("reason") in ("Expired", "Gone"):
                raise _ExpiredError()
            raise ApiServerError(
                f"the watch of {self.scope.describe()} ended with an error: {document.get('message', document)}",
                cluster=self.owner.base.cluster,
                condition=str(document.get("reason") or "WatchError"),
            )
        version = _resource_version(document)
        if kind == "BOOKMARK":
            self.owner.advance(self, version)
            return
        document.setdefault("apiVersion", self.scope.resource.api_version)
        document.setdefault("kind", self.scope.resource.kind)
        self.owner.change(self, _key(document), None if kind == "DELETED" else document, version)


class Watcher:
    """The objects of some scopes on one cluster, listed once and then kept current by watches.

    Use it as a context manager: entering lists every scope (raising the usual :mod:`clusters.errors` when a list
    fails) and starts the readers; leaving stops them.

    Args:
        api: the cluster's API.
        scopes: what to follow.
        on_change: called (in a reader thread) after each change, e.g. to wake a loop.
    """

    def __init__(
        self, api: ClusterApi, scopes: Sequence[WatchScope], on_change: Callable[[], None] | None = None
    ) -> None:
        self.base = api
        self._on_change = on_change
        self._followers = [_Follower(self, scope) for scope in dict.fromkeys(scopes)]
        self._condition = threading.Condition()
        self._changes = 0
        self._error: OrchestratorError | None = None
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        """Whether the watcher was stopped."""
        return self._closed.is_set()

    @property
    def changes(self) -> int:
        """How many changes the watches have delivered so far (compare with :meth:`wait_for_change`)."""
        with self._condition:
            return self._changes

    @property
    def error(self) -> OrchestratorError | None:
        """The last error a reader met, ``None`` once its watch works again."""
        with self._condition:
            return self._error

    def __enter__(self) -> Watcher:
        self.open()
        self.start()
        return self

    def open(self) -> None:
        """List every scope (one request each), raising the usual errors when a list fails."""
        try:
            for follower in self._followers:
                follower.relist()
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        """Start following the scopes from their lists (nothing when started already).

        A caller whose first look at the listed objects may be its last (a wait already satisfied) opens the
        watcher first and starts it only when it has to wait: no watch request is sent otherwise.
        """
        for follower in self._followers:
            if follower.thread is None:
                follower.thread = threading.Thread(
                    target=follower.follow,
                    name=f"watch-{self.base.cluster}-{follower.scope.resource.plural}",
                    daemon=True,
                )
                follower.thread.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the readers (a reader blocked on its stream is cut off)."""
        self._closed.set()
        with self._condition:
            self._condition.notify_all()
        for follower in self._followers:
            stream = follower.stream
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()

    def wait_for_change(self, seen: int, timeout: float) -> int:
        """Block until more than ``seen`` changes were delivered, or ``timeout`` seconds passed; the count now."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._changes <= seen and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return self._changes

    def pause(self, seconds: float) -> None:
        """Sleep in a reader, waking when the watcher is closed."""
        self._closed.wait(seconds)

    def objects(self, scope: WatchScope) -> list[JsonObject]:
        """The current objects of one of the scopes."""
        with self._condition:
            found = [follower for follower in self._followers if follower.scope == scope]
            return [_copy(document) for follower in found for document in follower.objects.values()]

    def api(self) -> ClusterApi:
        """The cluster's API with reads of the watched objects answered from here."""
        return WatchedApi(self)

    def lookup(self, resource: Resource, namespace: str | None, name: str | None) -> list[JsonObject] | None:
        """The watched objects a read asks for (copies), or ``None`` when no scope covers the read."""
        with self._condition:
            for follower in self._followers:
                if follower.scope.covers(resource, namespace, name):
                    return [
                        _copy(document)
                        for (_, object_name), document in follower.objects.items()
                        if name is None or object_name == name
                    ]
        return None

    # Reader callbacks.

    def replace(self, follower: _Follower, objects: dict[tuple[str, str], JsonObject], version: str) -> None:
        """A list's result: every object of the scope."""
        with self._condition:
            follower.objects, follower.version = objects, version
            self._changes += 1
            self._condition.notify_all()
        self.set_error(None)
        self._changed()

    def change(self, follower: _Follower, key: tuple[str, str], document: JsonObject | None, version: str) -> None:
        """One event: ``document`` added or modified, or (``None``) deleted."""
        with self._condition:
            if document is None:
                follower.objects.pop(key, None)
            else:
                follower.objects[key] = document
            if version:
                follower.version = version
            self._changes += 1
            self._condition.notify_all()
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def advance(self, follower: _Follower, version: str) -> None:
        """A bookmark: nothing changed up to ``version``."""
        if version:
            with self._condition:
                follower.version = version

    def set_error(self, error: OrchestratorError | None) -> None:
        """Record a reader's error (``None``: its watch works again); a new error wakes the waiters."""
        with self._condition:
            changed = (error is None) != (self._error is None)
            self._error = error
            if changed:
                self._changes += 1
                self._condition.notify_all()


def _copy(document: JsonObject) -> JsonObject:
    """A deep copy of a JSON document (readers must not share mutable state with the watch)."""
    copied: Any = _deep(document)
    return dict(copied)


def _deep(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep(item) for item in value]
    return value


class WatchedApi(ClusterApi):
    """A cluster's API whose reads of a :class:`Watcher`'s objects are answered from the watcher (no request).

    Every other call goes to the cluster through the watcher's API (whose request counters it shares).
    """

    def __init__(self, watcher: Watcher) -> None:
        base = watcher.base
        super().__init__(base.cluster, base.api_client, base.timeout)
        self.share_counters(base)
        self._watcher = watcher

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> JsonObject:
        """Sent by the watcher's API."""
        return self._watcher.base.request(method, path, body, **kwargs)

    def stream(self, path: str, **kwargs: Any) -> JsonStream:
        """Sent by the watcher's API."""
        return self._watcher.base.stream(path, **kwargs)

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JsonObject:
        """From the watcher when it follows the object, else from the cluster."""
        found = self._watcher.lookup(resource, namespace, name)
        if found is None:
            return super().get(resource, name, namespace)
        if not found:
            raise ObjectMissingError(
                "not found", cluster=self.cluster, object_ref=resource.ref(name, namespace), condition="NotFound"
            )
        return found[0]

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JsonObject]:
        """From the watcher when it follows the whole collection, else from the cluster.

        A label selector of ``key=value`` terms is matched here; any other selector goes to the cluster.
        """
        wanted = _equality_terms(label_selector) if label_selector else {}
        if wanted is not None and field_selector is None:
            found = self._watcher.lookup(resource, namespace, None)
            if found is not None:
                return [document for document in found if _has_labels(document, wanted)]
        return super().list(resource, namespace, label_selector, field_selector)


def _equality_terms(selector: str) -> dict[str, str] | None:
    """``{key: value}`` of a selector made of ``key=value`` terms only; ``None`` for any other selector."""
    terms: dict[str, str] = {}
    for term in selector.split(","):
        key, sign, value = term.partition("=")
        value = value.removeprefix("=")
        if not sign or not key.strip() or any(c in key + value for c in "!()<> ") or "=" in value:
            return None
        terms[key] = value
    return terms


def _has_labels(document: JsonObject, wanted: dict[str, str]) -> bool:
    labels = (document.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in wanted.items())


def observations(
    api: ClusterApi,
    scopes: Sequence[WatchScope],
    observe: Callable[[ClusterApi], T],
    *,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
    poll: Iterator[float] | None = None,
    refresh: float = REFRESH,
) -> Generator[T | RetryableError, None, None]:
    """Observe now, then again on every change of the watched scopes, until the caller stops iterating.

    ``observe`` gets the API to read through: the watched copies (no request) while the watches work, the
    cluster itself when ``refresh`` seconds passed without a change or a watch is broken. A retryable error of an
    observation is yielded, not raised, so that the caller decides until when to keep trying.

    Without scopes, or when the scopes cannot be listed now (the cluster does not answer), it polls instead:
    observations ``poll`` seconds apart (default: 0.05 s growing to 2 s).

    Args:
        api: the cluster's API.
        scopes: what the observation reads.
        observe: one observation.
        deadline: a ``time.monotonic()`` time; pauses end by then (the caller decides what happens after it).
        sleep: a pause; called with 0 between short blocks on the watches, so that an activity's sleep can raise
            when the activity is cancelled.
        poll: the pauses when polling.
        refresh: seconds without a change before a direct read.
    """
    watcher = Watcher(api, scopes) if scopes else None
    if watcher is not None:
        try:
            watcher.open()
        except RetryableError as exc:
            yield exc
            watcher = None
    if watcher is None:
        pauses = poll or poll_intervals(0.05, 2.0)
        while True:
            yield _attempt(observe, api)
            sleep(min(next(pauses), max(0.0, deadline - time.monotonic())))
    try:
        reads = watcher.api()
        read_at = time.monotonic()
        while True:
            seen = watcher.changes  # before the observation: a change during it ends the next pause
            direct = time.monotonic() - read_at >= refresh or watcher.error is not None
            if direct:
                read_at = time.monotonic()
            yield _attempt(observe, api if direct else reads)
            watcher.start()
            until = min(time.monotonic() + refresh, deadline)
            while watcher.changes <= seen and time.monotonic() < until:
                watcher.wait_for_change(seen, SLICE)
                sleep(0)
            if watcher.changes > seen:
                read_at = time.monotonic()  # the watches answer: no direct read needed yet
    finally:
        watcher.close()


def _attempt(observe: Callable[[ClusterApi], T], api: ClusterApi) -> T | RetryableError:
    try:
        return observe(api)
    except RetryableError as exc:
        return exc


def poll_intervals(first: float, maximum: float, growth: float = 1.5) -> Iterator[float]:
    """Sleep times between polls: ``first``, growing by ``growth`` up to ``maximum``.

    Most steps finish within a second, so the first checks are quick; a wait that lasts minutes settles at
    ``maximum`` and costs the API server little.
    """
    interval = first
    while True:
        yield interval
        interval = min(maximum, interval * growth)
