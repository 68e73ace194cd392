"""Unit tier: the csi-addons adapter against recorded controller status, a fake ClusterApi and a fake clock.

The recorded documents (tests/unit/recorded/csi-addons) are full objects as the API server returns them, checked
here against the project's CRDs, so the adapter is tested on the shapes the real controllers write.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.base import Backend, ReplicationAdapter, ReplicationStatus, ReplicationTarget, Role, VolumeState
from adapters.csi_addons import CSI_ADDONS_FIELDS, CsiAddonsAdapter, reported_role
from adapters.waiting import wait_for_status
from clusters.api import ClusterApi, JsonObject, RequestCounters, Resource
from clusters.errors import BackendFailedError, InvalidSpecError, ObjectMissingError
from tests.unit.fake_cluster import inner_replication_in_step

RECORDED = Path(__file__).parent / "recorded"
CRDS = Path(__file__).parents[2] / "deploy" / "crds"
VGR_REF = "VolumeGroupReplication pg-prod/postgres"
PVCS = ("data-postgres-0", "wal-postgres-0", "config-postgres-0")


def recorded(name: str) -> JsonObject:
    document: JsonObject = yaml.safe_load((RECORDED / name).read_text())
    return document


# --------------------------------------------------------------------------------------------- fake ClusterApi


class FakeClusterApi(ClusterApi):
    """A ClusterApi whose transport is an in-memory object store (the real verbs, paths and error mapping run).

    GET answers from a script per object (each GET takes the next document, the last one repeats), so a test can
    play a controller's successive status updates. PATCH applies an RFC 7386 merge patch and, like the API server,
    bumps ``metadata.generation`` when the spec changes.

    A VolumeGroupReplication's inner VolumeReplication (``spec.volumeReplicationName``) that no script gives is
    answered in step with the group last read (same request, its own generation observed), unless
    ``inner_in_step`` is false: the tests of the group itself need not script its VR.
    """

    def __init__(self, cluster: str = "dc1") -> None:
        # No ApiClient: request() below replaces the transport.
        self.cluster = cluster
        self.timeout = (1.0, 1.0)
        self._counters = RequestCounters()
        self.scripts: dict[str, list[JsonObject]] = {}
        self.requests: list[tuple[str, str, Any, str]] = []
        self.gets = 0
        self.inner_in_step = True
        self._last_group: JsonObject | None = None

    def put(self, resource: Resource, *documents: JsonObject) -> None:
        metadata = documents[0]["metadata"]
        self.scripts[resource.path(metadata.get("namespace"), metadata["name"])] = [copy.deepcopy(d) for d in documents]

    def stored(self, resource: Resource, name: str, namespace: str) -> JsonObject:
        return self.scripts[resource.path(namespace, name)][0]

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
        self.requests.append((method, path, copy.deepcopy(body), content_type))
        self._counters.count(method)
        script = self.scripts.get(path)
        if script is None and method == "GET" and (inner := self._inner_of_last_group_read(path)) is not None:
            return inner
        if script is None:
            name = path.rsplit("/", 1)[-1]
            raise self._error(404, {"message": f'"{name}" not found', "reason": "NotFound"}, object_ref)
        if method == "GET":
            self.gets += 1
            document = script.pop(0) if len(script) > 1 else script[0]
            if document.get("kind") == "VolumeGroupReplication":
                self._last_group = document
            return copy.deepcopy(document)
        if method == "PATCH":
            assert content_type == "application/merge-patch+json"
            current = script[0]
            before = copy.deepcopy(current.get("spec"))
            merge_patch(current, body)
            if current.get("spec") != before:
                current["metadata"]["generation"] += 1
            current["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
            del script[1:]
            return copy.deepcopy(current)
        raise AssertionError(f"unexpected {method} {path}")

    def _inner_of_last_group_read(self, path: str) -> JsonObject | None:
        group = self._last_group
        if not self.inner_in_step or group is None or "/volumereplications/" not in path:
            return None
        if (group.get("spec") or {}).get("volumeReplicationName") != path.rsplit("/", 1)[-1]:
            return None
        return inner_replication_in_step(group)


def merge_patch(target: JsonObject, patch: JsonObject) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def csi_adapter(
    api: FakeClusterApi, *, name: str = "postgres", namespace: str = "pg-prod", **target: Any
) -> CsiAddonsAdapter:
    return CsiAddonsAdapter(
        api, ReplicationTarget(backend=Backend.CSI_ADDONS, namespace=namespace, name=name, **target)
    )


def observe(name: str, **target: Any) -> ReplicationStatus:
    api = FakeClusterApi()
    document = recorded(name)
    resource = CSI_ADDONS_FIELDS.volume if document["kind"] == "VolumeReplication" else CSI_ADDONS_FIELDS.group
    api.put(resource, document)
    metadata = document["metadata"]
    return csi_adapter(api, name=metadata["name"], namespace=metadata["namespace"], **target).observe()


# --------------------------------------------------------------------------------------------- recorded shapes


@functools.cache
def crd_schemas() -> dict[tuple[str, str], JsonObject]:
    """openAPIV3Schema per (apiVersion, kind) from deploy/crds."""
    schemas: dict[tuple[str, str], JsonObject] = {}
    for path in CRDS.glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def schema_errors(value: Any, schema: JsonObject, where: str = "") -> list[str]:
    """Check a document against the subset of OpenAPI v3 the project's CRDs use (unknown fields are errors)."""
    errors: list[str] = []
    kind = schema.get("type")
    types: dict[str, Callable[[Any], bool]] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    if kind and not types[kind](value):
        return [f"{where or '.'}: expected {kind}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if kind == "string":
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                errors.append(f"{where}: {value!r} is not RFC 3339")
    if kind == "integer" and value < schema.get("minimum", value):
        errors.append(f"{where}: below {schema['minimum']}")
    if kind == "array":
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{where}: more than {schema['maxItems']} items")
        for index, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{where}[{index}]")
    if kind == "object":
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        errors += [f"{where}.{key}: required" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if properties is not None and key in properties:
                errors += schema_errors(item, properties[key], f"{where}.{key}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, f"{where}.{key}")
            elif properties is not None:
                errors.append(f"{where}.{key}: unknown field")
    return errors


ALL_RECORDED = sorted(str(p.relative_to(RECORDED)) for p in RECORDED.glob("*/*.yaml"))


@pytest.mark.parametrize("name", [n for n in ALL_RECORDED if n.startswith(("csi-addons/", "unified/"))])
def test_recorded_documents_match_the_crds(name: str) -> None:
    document = recorded(name)
    schema = crd_schemas()[(document["apiVersion"], document["kind"])]
    assert schema_errors(document, schema) == []
    for condition in document.get("status", {}).get("conditions", []):
        assert condition["observedGeneration"] <= document["metadata"]["generation"]


# --------------------------------------------------------------------------------------------- observe()


def test_primary_healthy() -> None:
    status = observe("csi-addons/primary-healthy.yaml")
    assert (status.role, status.current, status.completed, status.healthy) == (Role.PRIMARY, True, True, True)
    assert status.replicating and not status.syncing
    assert status.failure is None and not status.failure_permanent
    assert status.last_sync_time == datetime(2025, 5, 20, 10, 41, tzinfo=UTC)
    assert status.generations == {VGR_REF: 3}
    assert status.volumes == tuple(VolumeState(name=n, role=Role.PRIMARY, state="Primary") for n in PVCS)
    assert status.message == (
        f"{VGR_REF}: Primary, promoted, healthy, replicating, last sync 2025-05-20T10:41:00+00:00"
    )
    assert CsiAddonsAdapter.promoted(status)
    assert not CsiAddonsAdapter.final_sync_complete(status)


def test_missing_validated_condition_is_still_promotable() -> None:
    status = observe("csi-addons/primary-without-validated.yaml")
    assert status.completed and CsiAddonsAdapter.promoted(status)


def test_validated_left_over_from_an_older_generation_neither_blocks_nor_fails() -> None:
    # Upstream writes Validated only when a promotion fails: a stale one is history, not "not yet".
    status = observe("csi-addons/primary-stale-validated.yaml")
    assert status.current and CsiAddonsAdapter.promoted(status)
    assert status.failure is None and not status.failure_permanent


def test_secondary_first_pass_is_demoted_but_not_synced() -> None:
    status = observe("csi-addons/secondary-first-pass.yaml")
    assert (status.role, status.current, status.completed) == (Role.SECONDARY, True, True)
    assert not status.healthy and not status.syncing
    # Replicating=True is left over from generation 3 (the primary days): disregarded, not "replicating".
    assert not status.replicating
    # The controller clears lastSyncTime only after the sync pass; a Secondary never reports one.
    assert status.last_sync_time is None
    assert status.message == (
        f"{VGR_REF}: Secondary, demoted, waiting for the sync pass "
        "(Degraded=True/VolumeDegraded, Resyncing=False/NotResyncing)"
    )
    assert not CsiAddonsAdapter.final_sync_complete(status)
    assert not CsiAddonsAdapter.still_syncing(status)
    assert not CsiAddonsAdapter.promoted(status)


def test_final_sync_running() -> None:
    status = observe("csi-addons/secondary-final-sync-running.yaml")
    assert status.syncing and not status.healthy and status.completed
    assert status.message == (
        f"{VGR_REF}: Secondary, final sync running (Resyncing=True/ResyncTriggered, Degraded=True/VolumeDegraded)"
    )
    assert CsiAddonsAdapter.still_syncing(status)
    assert not CsiAddonsAdapter.final_sync_complete(status)


def test_final_sync_complete() -> None:
    status = observe("csi-addons/secondary-final-sync-complete.yaml")
    assert (status.role, status.current, status.completed, status.healthy) == (Role.SECONDARY, True, True, True)
    assert not status.syncing and status.failure is None
    assert status.message == (
        f"{VGR_REF}: Secondary, final sync complete (Degraded=False/Healthy, Resyncing=False/NotResyncing)"
    )
    assert CsiAddonsAdapter.final_sync_complete(status)
    assert CsiAddonsAdapter.resync_complete(status)
    assert not CsiAddonsAdapter.still_syncing(status)


def test_stale_status_generation_is_not_current() -> None:
    status = observe("csi-addons/stale-status-generation.yaml")
    assert not status.current and status.role is Role.UNKNOWN
    assert "status is for generation 3, object is at generation 4" in status.message
    assert "last reported state: Primary" in status.message
    for predicate in (CsiAddonsAdapter.promoted, CsiAddonsAdapter.final_sync_complete, CsiAddonsAdapter.still_syncing):
        assert not predicate(status)


def test_one_stale_condition_holds_the_status_back() -> None:
    # Everything reads "final sync complete" except that Degraded=False was written for generation 3.
    status = observe("csi-addons/stale-condition-generation.yaml")
    assert not status.current and status.role is Role.UNKNOWN
    assert not status.healthy
    assert "Degraded=False/Healthy is for generation 3 (object at generation 4)" in status.message
    assert not CsiAddonsAdapter.final_sync_complete(status)


def test_validated_false_is_a_failure_the_controller_retries_until_an_operator_fixes_it() -> None:
    # Upstream retries after PrerequisiteNotMet (reference/backends.md section 6): not permanent.
    status = observe("csi-addons/validated-false.yaml")
    assert status.current and status.role is Role.SECONDARY
    assert not status.completed and not status.failure_permanent
    assert status.failure is not None
    assert status.failure.startswith(f"{VGR_REF}: Validated=False/PrerequisiteNotMet: failed to meet prerequisite")
    assert "mirroring is not enabled on pool replicapool" in status.failure
    assert "Completed=False/FailedToPromote" in status.failure
    assert "promotion failing on an unmet prerequisite: an operator must fix it" in status.message
    assert not CsiAddonsAdapter.promoted(status)


def test_a_completed_promotion_supersedes_an_earlier_validated_false() -> None:
    # Upstream's success path never resets Validated: Completed=True written later is the answer.
    document = recorded("csi-addons/validated-false.yaml")
    document["status"]["state"] = "Primary"
    for condition in document["status"]["conditions"]:
        if condition["type"] == "Completed":
            condition.update(status="True", reason="Promoted", message="volume group is promoted")
        if condition["type"] == "Degraded":
            condition.update(status="False", reason="Healthy", message="")
    api = FakeClusterApi()
    api.put(CSI_ADDONS_FIELDS.group, document)
    status = csi_adapter(api).observe()
    assert status.current and CsiAddonsAdapter.promoted(status), status.message
    assert status.failure is None and not status.failure_permanent


def test_failed_to_demote_is_the_controller_retrying() -> None:
    status = observe("csi-addons/failed-to-demote.yaml")
    assert status.current and status.role is Role.PRIMARY and not status.completed
    assert not status.failure_permanent
    assert status.failure is not None
    assert status.failure.startswith(f"{VGR_REF}: Completed=False/FailedToDemote: failed to demote volume group")
    # The driver's reason lives on Degraded=True/Error in newer csi-addons.
    assert "is still being used" in status.failure
    assert "Primary, demotion failing, the csi-addons controller retrying" in status.message
    assert "spec asks secondary" in status.message
    assert not CsiAddonsAdapter.final_sync_complete(status)
    assert not CsiAddonsAdapter.promoted(status)


def test_failed_to_promote_is_the_controller_retrying() -> None:
    status = observe("csi-addons/failed-to-promote.yaml")
    assert status.role is Role.SECONDARY and not status.completed and not status.failure_permanent
    assert status.failure is not None and "Completed=False/FailedToPromote" in status.failure
    assert "timed out waiting for the mirror peer" in status.failure
    assert "Secondary, promotion failing" in status.message


def test_empty_status_was_never_observed() -> None:
    status = observe("csi-addons/empty-status.yaml", pvc_names=PVCS)
    assert not status.current and status.role is Role.UNKNOWN
    assert not (status.completed or status.healthy or status.syncing or status.replicating)
    assert status.failure is None
    assert "generation 1 never observed by the csi-addons controller (status is empty)" in status.message
    assert "kubernetes-csi-addons issue 1076" in status.message
    # Nothing reported yet: the configured PVCs are shown without being judged missing.
    assert [v.name for v in status.volumes] == list(PVCS)
    assert "not replicated" not in status.message


def test_single_volume_replication() -> None:
    status = observe("csi-addons/volumereplication-primary.yaml", single_volume=True)
    assert CsiAddonsAdapter.promoted(status)
    assert status.volumes == (VolumeState(name="redis-data-0", role=Role.PRIMARY, state="Primary"),)
    assert status.generations == {"VolumeReplication cache/redis-data": 2}


def test_a_configured_pvc_missing_from_the_group_is_reported() -> None:
    status = observe("csi-addons/primary-healthy.yaml", pvc_names=(*PVCS, "archive-postgres-0"))
    missing = status.volumes[-1]
    assert (missing.name, missing.healthy, missing.state) == ("archive-postgres-0", False, "not replicated")
    assert "not in the group, so not replicated: archive-postgres-0" in status.message


@pytest.mark.parametrize(
    ("state", "role"),
    [
        ("Primary", Role.PRIMARY),
        ("primary", Role.PRIMARY),
        ("SECONDARY", Role.SECONDARY),
        ("resync", Role.SECONDARY),
        ("Unknown", Role.UNKNOWN),
        ("", Role.UNKNOWN),
        (None, Role.UNKNOWN),
    ],
)
def test_reported_role_ignores_case(state: str | None, role: Role) -> None:
    assert reported_role(state) is role


# --------------------------------------------------------------------------------------------- writes


def test_demote_twice_writes_once() -> None:
    api = FakeClusterApi()
    api.put(CSI_ADDONS_FIELDS.group, recorded("csi-addons/primary-healthy.yaml"))
    adapter = csi_adapter(api)

    first = adapter.demote()
    assert first.changed and first.cluster == "dc1"
    assert first.generations == {VGR_REF: 4}
    assert api.writes == 1
    method, path, body, content_type = api.requests[-1]
    assert (method, path) == (
        "PATCH",
        "/apis/replication.storage.openshift.io/v1alpha1/namespaces/pg-prod/volumegroupreplications/postgres",
    )
    # Never a forced resync on a planned demotion (ceph-csi issue 3209).
    assert body == {"spec": {"replicationState": "secondary", "autoResync": False}}
    assert content_type == "application/merge-patch+json"

    second = adapter.demote()
    assert not second.changed and second.generations == {VGR_REF: 4}
    assert api.writes == 1


def test_demote_turns_auto_resync_off() -> None:
    document = recorded("csi-addons/secondary-final-sync-complete.yaml")
    document["spec"]["autoResync"] = True
    api = FakeClusterApi()
    api.put(CSI_ADDONS_FIELDS.group, document)
    assert csi_adapter(api).demote().changed
    assert api.stored(CSI_ADDONS_FIELDS.group, "postgres", "pg-prod")["spec"]["autoResync"] is False


@pytest.mark.parametrize("force", [False, True])
def test_promote_when_spec_is_already_primary_writes_nothing(force: bool) -> None:
    api = FakeClusterApi()
    api.put(CSI_ADDONS_FIELDS.group, recorded("csi-addons/primary-healthy.yaml"))
    result = csi_adapter(api).promote(force=force)
    assert not result.changed and result.generations == {VGR_REF: 3}
    assert api.writes == 0


def test_promote_writes_primary_once() -> None:
    api = FakeClusterApi()
    api.put(CSI_ADDONS_FIELDS.group, recorded("csi-addons/secondary-final-sync-complete.yaml"))
    adapter = csi_adapter(api)
    assert adapter.promote(force=False).generations == {VGR_REF: 5}
    # csi-addons has no force field: force=True asks for exactly the same spec.
    assert not adapter.promote(force=True).changed
    assert api.writes == 1
    assert api.requests[-2][2] == {"spec": {"replicationState": "primary"}}


def test_reprotect_sets_auto_resync_as_asked() -> None:
    api = FakeClusterApi()
    api.put(CSI_ADDONS_FIELDS.group, recorded("csi-addons/primary-healthy.yaml"))
    adapter = csi_adapter(api)
    peer = csi_adapter(FakeClusterApi("dc2"))
    assert adapter.reprotect(resync=True, peer=peer).changed
    assert api.requests[-1][2] == {"spec": {"replicationState": "secondary", "autoResync": True}}
    assert not adapter.reprotect(resync=True, peer=peer).changed
    assert adapter.reprotect(resync=False, peer=peer).changed
    assert api.writes == 2


def test_single_volume_writes_the_volume_replication() -> None:
    api = FakeClusterApi()
    api.put(CSI_ADDONS_FIELDS.volume, recorded("csi-addons/volumereplication-primary.yaml"))
    adapter = csi_adapter(api, name="redis-data", namespace="cache", single_volume=True)
    assert adapter.demote().generations == {"VolumeReplication cache/redis-data": 3}
    assert api.requests[-1][1].endswith("/namespaces/cache/volumereplications/redis-data")


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("call", ["observe", "demote", "promote", "reprotect"])
def test_missing_object_names_cluster_object_and_fix(call: str) -> None:
    adapter = csi_adapter(FakeClusterApi("dc2"))
    actions: dict[str, Callable[[], object]] = {
        "observe": adapter.observe,
        "demote": adapter.demote,
        "promote": lambda: adapter.promote(force=False),
        "reprotect": lambda: adapter.reprotect(resync=False, peer=adapter),
    }
    with pytest.raises(ObjectMissingError) as caught:
        actions[call]()
    error = caught.value
    assert error.message.startswith(
        f"{VGR_REF} not found on dc2: create it or fix the group's replication name (API server: "
    )
    assert (error.cluster, error.object_ref, error.condition) == ("dc2", VGR_REF, "NotFound")


def test_missing_kind_suggests_installing_the_crds() -> None:
    api = FakeClusterApi("dc2")

    def no_such_kind(*args: Any, object_ref: str | None = None, **kwargs: Any) -> JsonObject:
        body = {"message": "the server could not find the requested resource", "reason": "NotFound"}
        raise api._error(404, body, object_ref)

    api.request = no_such_kind  # type: ignore[method-assign]
    with pytest.raises(ObjectMissingError, match=r"install the replication\.storage\.openshift\.io CRDs"):
        csi_adapter(api).observe()


def test_target_must_be_for_this_backend_and_name_an_object() -> None:
    api = FakeClusterApi()
    with pytest.raises(InvalidSpecError, match="a unified group cannot be driven by the csi-addons adapter"):
        CsiAddonsAdapter(api, ReplicationTarget(backend=Backend.UNIFIED, namespace="pg-prod", name="postgres"))
    with pytest.raises(InvalidSpecError, match="names no VolumeGroupReplication"):
        CsiAddonsAdapter(api, ReplicationTarget(backend=Backend.CSI_ADDONS, namespace="pg-prod"))


# --------------------------------------------------------------------------------------------- wait_for_status


def scripted(*names: str, api: FakeClusterApi | None = None) -> tuple[CsiAddonsAdapter, FakeClusterApi]:
    api = api or FakeClusterApi()
    api.put(CSI_ADDONS_FIELDS.group, *(recorded(n) for n in names))
    return csi_adapter(api), api


def wait(
    adapter: ReplicationAdapter,
    predicate: Callable[[ReplicationStatus], bool],
    clock: FakeClock,
    *,
    what: str,
    timeout: float = 60,
) -> ReplicationStatus:
    return wait_for_status(adapter, predicate, what=what, timeout=timeout, interval=5, clock=clock, sleep=clock.sleep)


def test_wait_follows_the_demotion_to_final_sync_complete() -> None:
    adapter, _ = scripted(
        "csi-addons/stale-status-generation.yaml",
        "csi-addons/secondary-first-pass.yaml",
        "csi-addons/failed-to-demote.yaml",  # retrying failures do not stop the wait
        "csi-addons/secondary-final-sync-running.yaml",
        "csi-addons/secondary-final-sync-complete.yaml",
    )
    clock = FakeClock()
    seen: list[str] = []
    status = wait_for_status(
        adapter,
        adapter.final_sync_complete,
        what="final sync complete",
        timeout=60,
        interval=5,
        progress=lambda s: seen.append(s.message),
        clock=clock,
        sleep=clock.sleep,
    )
    assert CsiAddonsAdapter.final_sync_complete(status)
    assert clock.sleeps == [5, 5, 5, 5]
    assert len(seen) == 5 and "final sync running" in seen[3]


def test_wait_timeout_names_the_last_status() -> None:
    adapter, _ = scripted("csi-addons/secondary-first-pass.yaml", "csi-addons/secondary-final-sync-running.yaml")
    clock = FakeClock()
    with pytest.raises(BackendFailedError) as caught:
        wait(adapter, adapter.final_sync_complete, clock, what="final sync complete")
    text = str(caught.value)
    assert caught.value.cluster == "dc1"
    assert "final sync complete: not reached within 60s" in text
    assert f"last status: {VGR_REF}: Secondary, final sync running (Resyncing=True/ResyncTriggered" in text
    assert clock.now - 1000.0 == 60


def test_wait_keeps_waiting_on_an_unmet_prerequisite_until_timeout() -> None:
    adapter, _ = scripted("csi-addons/validated-false.yaml")
    clock = FakeClock()
    with pytest.raises(BackendFailedError) as caught:
        wait(adapter, adapter.promoted, clock, what="promoted")
    assert len(clock.sleeps) == 12
    assert caught.value.cluster == "dc1"
    assert "Validated=False/PrerequisiteNotMet" in str(caught.value)
    assert VGR_REF in str(caught.value)


def test_wait_for_a_status_that_is_never_observed_says_so() -> None:
    adapter, _ = scripted("csi-addons/empty-status.yaml")
    clock = FakeClock()
    with pytest.raises(BackendFailedError, match="generation 1 never observed by the csi-addons controller"):
        wait(adapter, adapter.promoted, clock, what="promoted", timeout=30)


def test_wait_keeps_waiting_through_a_retrying_failure_until_timeout() -> None:
    adapter, _ = scripted("csi-addons/failed-to-demote.yaml")
    clock = FakeClock()
    with pytest.raises(BackendFailedError) as caught:
        wait(adapter, adapter.final_sync_complete, clock, what="final sync complete")
    assert len(clock.sleeps) == 12
    assert "last failure: VolumeGroupReplication pg-prod/postgres: Completed=False/FailedToDemote" in str(caught.value)


# --------------------------------------------------------------------------------------------- missing_volumes


def test_every_configured_pvc_listed_means_nothing_missing() -> None:
    status = observe("csi-addons/primary-healthy.yaml", pvc_names=PVCS)
    assert status.missing_volumes == ()
    assert status.volume_problems(PVCS) == []


def test_a_configured_pvc_missing_from_the_group_is_in_missing_volumes() -> None:
    status = observe("csi-addons/primary-healthy.yaml", pvc_names=(*PVCS, "archive-postgres-0"))
    assert status.missing_volumes == ("archive-postgres-0",)
    assert status.volume_problems(PVCS) == [
        f"PVC archive-postgres-0 is not replicated by {VGR_REF} (not listed in "
        "status.persistentVolumeClaimsRefList: check the PVC's labels against the group's selector)"
    ]


@pytest.mark.parametrize("refs", [[], None])
def test_a_reconciled_group_that_lists_no_pvc_misses_every_configured_one(refs: list[JsonObject] | None) -> None:
    # The selector matches nothing: the controller reconciled the spec and replicates no volume at all.
    document = recorded("csi-addons/primary-healthy.yaml")
    if refs is None:
        del document["status"]["persistentVolumeClaimsRefList"]
    else:
        document["status"]["persistentVolumeClaimsRefList"] = refs
    api = FakeClusterApi()
    api.put(CSI_ADDONS_FIELDS.group, document)
    status = csi_adapter(api, pvc_names=PVCS).observe()
    assert status.missing_volumes == PVCS
    assert [(v.name, v.state, v.healthy) for v in status.volumes] == [(n, "not replicated", False) for n in PVCS]
    assert f"not in the group, so not replicated: {', '.join(PVCS)}" in status.message
    assert len(status.volume_problems(PVCS)) == 3


def test_a_never_observed_group_judges_no_pvc_missing() -> None:
    status = observe("csi-addons/empty-status.yaml", pvc_names=PVCS)
    assert status.missing_volumes == ()


def test_degraded_volumes_are_unhealthy_with_the_degraded_condition() -> None:
    status = observe("csi-addons/secondary-first-pass.yaml", pvc_names=PVCS)
    assert status.missing_volumes == ()
    degraded = "Degraded=True/VolumeDegraded: VolumeGroup is degraded"
    assert status.volumes == tuple(
        VolumeState(name=n, role=Role.SECONDARY, state="Secondary", message=degraded, healthy=False) for n in PVCS
    )
    assert status.volume_problems(PVCS) == [f"PVC {n}: Secondary ({degraded})" for n in PVCS]


def test_single_volume_replication_misses_another_configured_pvc() -> None:
    status = observe(
        "csi-addons/volumereplication-primary.yaml", single_volume=True, pvc_names=("redis-data-0", "redis-aof-0")
    )
    assert status.missing_volumes == ("redis-aof-0",)
    assert status.volume_problems(["redis-data-0"]) == [
        "PVC redis-aof-0 is not replicated by VolumeReplication cache/redis-data "
        "(spec.dataSource.name is redis-data-0, not this PVC)"
    ]
