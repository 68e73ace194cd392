"""Lab tier: clusters.watch against a real kube-apiserver.

Covers the watcher's list-then-watch (additions, changes and deletions arrive within a fraction of a second and
cost one list and one watch request per scope), a watch that the API server ends (``timeoutSeconds``) resumed from
the last resourceVersion without losing a change, a scope of one object by name, reads through the watched API
answered from the watched copies (no request), an apiserver that stops and comes back (the error is reported,
then the objects are listed again), and ``observations`` acting on a change at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from clusters.api import ClusterApi, Resource
from clusters.errors import ClusterUnreachableError
from clusters.registry import ClusterConfig, ClusterRegistry
from clusters.watch import Watcher, WatchScope, observations
from sandbox.cluster import LabCluster
from sandbox.lab import Lab

CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")


@pytest.fixture()
def api(lab: Lab) -> Iterator[ClusterApi]:
    registry = ClusterRegistry([ClusterConfig(name="dc1", site="dc1", kubeconfig=lab.kubeconfig)])
    yield registry.api("dc1")
    registry.close()


def configmap(api: ClusterApi, namespace: str, name: str, value: str) -> None:
    api.create(CONFIGMAPS, {"metadata": {"name": name}, "data": {"value": value}}, namespace)


def values(watcher: Watcher, scope: WatchScope) -> dict[str, str]:
    """The test's ConfigMaps (not the CA bundle the controller manager puts in every namespace)."""
    return {
        d["metadata"]["name"]: d.get("data", {}).get("value", "")
        for d in watcher.objects(scope)
        if d["metadata"]["name"] != "kube-root-ca.crt"
    }


def wait_for_values(watcher: Watcher, scope: WatchScope, expected: dict[str, str], timeout: float = 5.0) -> float:
    """Seconds until the watcher holds ``expected``."""
    started = time.monotonic()
    seen = -1
    while values(watcher, scope) != expected:
        assert time.monotonic() - started < timeout, f"{values(watcher, scope)} != {expected}"
        seen = watcher.wait_for_change(seen, 0.5)
    return time.monotonic() - started


def test_changes_arrive_quickly_for_one_list_and_one_watch(api: ClusterApi, namespace: str) -> None:
    configmap(api, namespace, "a", "1")
    scope = WatchScope(CONFIGMAPS, namespace)
    before = api.request_count
    with Watcher(api, [scope]) as watcher:
        assert values(watcher, scope) == {"a": "1"}
        configmap(api, namespace, "b", "2")
        api.patch(CONFIGMAPS, "a", {"data": {"value": "3"}}, namespace)
        api.delete(CONFIGMAPS, "b", namespace)
        delay = wait_for_values(watcher, scope, {"a": "3"})
    assert delay < 2.0
    # One list, one watch, and the three writes above.
    assert api.request_count - before == 5


def test_a_watch_the_server_ends_is_resumed_without_losing_a_change(
    api: ClusterApi, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("clusters.watch.WATCH_SECONDS", 1)
    scope = WatchScope(CONFIGMAPS, namespace)
    with Watcher(api, [scope]) as watcher:
        for round_ in range(3):
            time.sleep(1.2)  # the server ends the watch after 1 s; the reader reopens it from its last version
            configmap(api, namespace, f"m{round_}", str(round_))
        wait_for_values(watcher, scope, {"m0": "0", "m1": "1", "m2": "2"})
        assert watcher.error is None


def test_a_scope_of_one_object_and_reads_from_the_watched_copies(api: ClusterApi, namespace: str) -> None:
    configmap(api, namespace, "wanted", "1")
    configmap(api, namespace, "other", "1")
    scope = WatchScope(CONFIGMAPS, namespace, name="wanted")
    with Watcher(api, [scope]) as watcher:
        assert values(watcher, scope) == {"wanted": "1"}
        reads = watcher.api()
        before = api.request_count
        assert reads.get(CONFIGMAPS, "wanted", namespace)["data"] == {"value": "1"}
        assert api.request_count == before  # answered from the watched copy
        assert reads.get(CONFIGMAPS, "other", namespace)["data"] == {"value": "1"}
        assert api.request_count - before == 1  # an object the scope does not follow is read from the cluster
        api.patch(CONFIGMAPS, "other", {"data": {"value": "2"}}, namespace)
        api.patch(CONFIGMAPS, "wanted", {"data": {"value": "2"}}, namespace)
        wait_for_values(watcher, scope, {"wanted": "2"})


def test_observations_act_on_a_change_at_once(api: ClusterApi, namespace: str) -> None:
    configmap(api, namespace, "flag", "off")
    scope = WatchScope(CONFIGMAPS, namespace, name="flag")
    found = observations(
        api,
        [scope],
        lambda reads: reads.get(CONFIGMAPS, "flag", namespace)["data"]["value"],
        deadline=time.monotonic() + 10,
    )
    assert next(found) == "off"
    changed_at = time.monotonic()
    api.patch(CONFIGMAPS, "flag", {"data": {"value": "on"}}, namespace)
    assert next(found) == "on"
    assert time.monotonic() - changed_at < 1.0
    found.close()


def test_an_apiserver_that_stops_is_reported_then_listed_again(
    dc1: LabCluster, api: ClusterApi, namespace: str
) -> None:
    configmap(api, namespace, "before", "1")
    scope = WatchScope(CONFIGMAPS, namespace)
    with Watcher(api, [scope]) as watcher:
        dc1.stop_apiserver()
        try:
            deadline = time.monotonic() + 30
            while not isinstance(watcher.error, ClusterUnreachableError):
                assert time.monotonic() < deadline, "the watcher did not notice the stopped apiserver"
                watcher.wait_for_change(watcher.changes, 0.5)
        finally:
            dc1.start_apiserver()
        configmap(api, namespace, "after", "2")
        wait_for_values(watcher, scope, {"before": "1", "after": "2"}, timeout=30)
        assert watcher.error is None
