"""An in-memory stand-in for ``clusters.api.ClusterApi`` for adapter unit tests, and recorded-document loading.

It behaves like the API server where adapters depend on it: JSON merge patches (RFC 7386, lists replaced whole),
``metadata.resourceVersion`` in a patch as a precondition (409 -> ConflictError), ``metadata.generation`` bumped
only by spec changes, the status subresource (writes to the main resource ignore ``status``), 404 ->
ObjectMissingError, and CRD validation rules registered per kind (-> InvalidSpecError). It counts writes the way
ClusterApi does, so tests prove idempotence by counting. Tests play the storage controllers with the uncounted
:meth:`FakeClusterApi.edit`.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from clusters.api import JsonObject, Resource
from clusters.errors import ConflictError, InvalidSpecError, ObjectMissingError

RECORDED = Path(__file__).parent / "recorded"

Rule = Callable[[JsonObject], str | None]
"""A CRD validation rule: the API server's message when the object is invalid, else ``None``."""


class _JsonLikeLoader(yaml.SafeLoader):
    """YAML as the API server would return it in JSON: timestamps stay strings."""


_JsonLikeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_recorded(relative: str) -> list[JsonObject]:
    """The documents of a recorded YAML file under ``tests/unit/recorded``."""
    with (RECORDED / relative).open() as stream:
        return [document for document in yaml.load_all(stream, Loader=_JsonLikeLoader) if document]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def inner_replication_in_step(group: JsonObject) -> JsonObject:
    """The inner VolumeReplication of a csi-addons VolumeGroupReplication, in step with it.

    What the csi-addons controller keeps behind a VGR (``spec.volumeReplicationName``) once it has acted: the
    group's request, and the group's status reported for the VR's own generation. The fakes answer it when a test
    gives no VR of its own, so that tests of the group need not script one (tests/unit/
    test_csi_addons_inner_replication.py covers a VR that lags).
    """
    status = copy.deepcopy(group.get("status") or {})
    if "observedGeneration" in status:
        status["observedGeneration"] = 1
    for condition in status.get("conditions", []):
        condition["observedGeneration"] = 1
    spec = group.get("spec") or {}
    return {
        "apiVersion": "replication.storage.openshift.io/v1alpha1",
        "kind": "VolumeReplication",
        "metadata": {
            "name": spec["volumeReplicationName"],
            "namespace": group["metadata"]["namespace"],
            "generation": 1,
        },
        "spec": {key: spec[key] for key in ("replicationState", "autoResync") if key in spec},
        "status": status,
    }


def tmr_rules(document: JsonObject) -> str | None:
    """The lab CRD's CEL rules on a TridentMirrorRelationship spec (deploy/crds/trident.netapp.io.yaml)."""
    spec = document.get("spec", {})
    state = spec.get("state", "")
    mappings = spec.get("volumeMappings", [])
    if len(mappings) != 1 or not mappings[0].get("localPVCName"):
        return "spec.volumeMappings: exactly one item with a localPVCName"
    if state in ("established", "reestablished") and not mappings[0].get("remoteVolumeHandle"):
        return "volumeMappings[0].remoteVolumeHandle is required when state is established or reestablished"
    if mappings[0].get("promotedSnapshotHandle") and state != "promoted":
        return "volumeMappings[0].promotedSnapshotHandle may only be set when state is promoted"
    return None


class FakeClusterApi:
    """An API server's behaviour for the objects of one cluster, held in memory.

    Args:
        cluster: the cluster's name (used in errors, like ClusterApi).
        documents: objects to start with.
        rules: validation rules per kind.
    """

    def __init__(
        self, cluster: str, documents: Iterable[JsonObject] = (), rules: dict[str, Rule] | None = None
    ) -> None:
        self.cluster = cluster
        self.rules = rules or {}
        self.objects: dict[tuple[str, str | None, str], JsonObject] = {}
        self.writes = 0
        self.log: list[tuple[str, str, JsonObject]] = []
        """Every write: (verb, object reference, body)."""
        self.before_write: Callable[[], None] | None = None
        """Called before each write is applied (tests use it to race a concurrent writer)."""
        self._versions = itertools.count(1000)
        self.put_all(documents)

    # ------------------------------------------------------------------------------------------- test helpers

    @staticmethod
    def _key(kind: str, name: str, namespace: str | None) -> tuple[str, str | None, str]:
        return kind, namespace, name

    def remembering(self) -> FakeClusterApi:
        """This fake: it answers from memory anyway."""
        return self

    def ping(self) -> None:
        """This fake: it always answers."""

    def with_timeout(self, timeout: tuple[float, float]) -> FakeClusterApi:
        """This fake: it never times out."""
        return self

    def put(self, document: JsonObject) -> None:
        """Store ``document`` as is (setup, or a controller replacing an object); not counted as a write."""
        metadata = document["metadata"]
        self.objects[self._key(document["kind"], metadata["name"], metadata.get("namespace"))] = copy.deepcopy(document)

    def put_all(self, documents: Iterable[JsonObject]) -> None:
        """:meth:`put` every document (e.g. the next recorded state of a group)."""
        for document in documents:
            self.put(document)

    def stored(self, kind: str, name: str, namespace: str | None = None) -> JsonObject:
        """A copy of the stored object."""
        return copy.deepcopy(self.objects[self._key(kind, name, namespace)])

    def edit(self, kind: str, name: str, change: Callable[[JsonObject], None], namespace: str | None = None) -> None:
        """Let a controller change an object in place; not counted. Bumps resourceVersion (and generation on spec)."""
        document = self.objects[self._key(kind, name, namespace)]
        spec_before = copy.deepcopy(document.get("spec"))
        change(document)
        self._bump(document, spec_changed=document.get("spec") != spec_before)

    def set_status(self, kind: str, name: str, status: JsonObject, namespace: str | None = None) -> None:
        """A controller's status write; not counted."""
        self.edit(kind, name, lambda document: document.update(status=copy.deepcopy(status)), namespace)

    def _bump(self, document: JsonObject, *, spec_changed: bool) -> None:
        metadata = document["metadata"]
        metadata["resourceVersion"] = str(next(self._versions))
        if spec_changed:
            metadata["generation"] = int(metadata.get("generation", 0)) + 1

    def _validate(self, resource: Resource, document: JsonObject) -> None:
        rule = self.rules.get(resource.kind)
        message = rule(document) if rule else None
        if message:
            raise InvalidSpecError(
                message,
                cluster=self.cluster,
                object_ref=resource.ref(document["metadata"]["name"], document["metadata"].get("namespace")),
                condition="Invalid",
            )

    def _missing(self, resource: Resource, name: str, namespace: str | None) -> ObjectMissingError:
        return ObjectMissingError(
            f'{resource.plural}.{resource.group} "{name}" not found',
            cluster=self.cluster,
            object_ref=resource.ref(name, namespace),
            condition="NotFound",
        )

    def _write(self, verb: str, ref: str, body: JsonObject) -> None:
        self.writes += 1
        self.log.append((verb, ref, copy.deepcopy(body)))
        if self.before_write is not None:
            self.before_write()

    # ------------------------------------------------------------------------------------------- ClusterApi verbs

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JsonObject:
        """Read one object; ObjectMissingError when absent."""
        document = self.objects.get(self._key(resource.kind, name, namespace if resource.namespaced else None))
        if document is None and resource.kind == "VolumeReplication":
            document = self._inner_of_group_naming(name, namespace)
        if document is None:
            raise self._missing(resource, name, namespace)
        return copy.deepcopy(document)

    def _inner_of_group_naming(self, name: str, namespace: str | None) -> JsonObject | None:
        for group in self.objects.values():
            spec = group.get("spec") or {}
            if (
                group.get("kind") == "VolumeGroupReplication"
                and spec.get("volumeReplicationName") == name
                and group["metadata"].get("namespace") == namespace
            ):
                return inner_replication_in_step(group)
        return None

    def find(self, resource: Resource, name: str, namespace: str | None = None) -> JsonObject | None:
        """Read one object, or ``None``."""
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
        """Objects of a kind (in a namespace); label selectors of ``key=value`` terms only, no field selectors."""
        assert field_selector is None, "the fake does not evaluate field selectors"
        wanted = dict(term.split("=", 1) for term in label_selector.split(",")) if label_selector else {}
        assert all("!" not in key for key in wanted), "the fake evaluates only key=value label selectors"
        return [
            copy.deepcopy(document)
            for (kind, object_namespace, _), document in sorted(self.objects.items())
            if kind == resource.kind
            and (namespace is None or object_namespace == namespace)
            and all((document["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
        ]

    def create(self, resource: Resource, body: JsonObject, namespace: str | None = None) -> JsonObject:
        """Create an object (status is dropped, as with a status subresource)."""
        name = body["metadata"]["name"]
        namespace = namespace if resource.namespaced else None
        self._write("POST", resource.ref(name, namespace), body)
        key = self._key(resource.kind, name, namespace)
        if key in self.objects:
            raise ConflictError(
                f'{resource.plural}.{resource.group} "{name}" already exists',
                cluster=self.cluster,
                object_ref=resource.ref(name, namespace),
                condition="AlreadyExists",
            )
        document = {"apiVersion": resource.api_version, "kind": resource.kind, **copy.deepcopy(body)}
        document.pop("status", None)
        metadata = document["metadata"]
        if namespace is not None:
            metadata["namespace"] = namespace
        metadata.update(
            uid=f"00000000-0000-4000-8000-{len(self.objects):012d}",
            generation=1,
            creationTimestamp="2025-03-14T09:30:00Z",
            resourceVersion=str(next(self._versions)),
        )
        self._validate(resource, document)
        self.objects[key] = document
        return copy.deepcopy(document)

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: JsonObject,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JsonObject:
        """Apply a JSON merge patch; a ``metadata.resourceVersion`` in it must match (else ConflictError)."""
        namespace = namespace if resource.namespaced else None
        ref = resource.ref(name, namespace)
        self._write("PATCH", ref, patch)
        key = self._key(resource.kind, name, namespace)
        current = self.objects.get(key)
        if current is None:
            raise self._missing(resource, name, namespace)
        expected = patch.get("metadata", {}).get("resourceVersion")
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            raise ConflictError(
                "the object has been modified; please apply your changes to the latest version and try again",
                cluster=self.cluster,
                object_ref=ref,
                condition="Conflict",
            )
        body = copy.deepcopy(patch)
        if subresource == "status":
            body = {"status": body.get("status", {})}
        else:
            body.pop("status", None)
        updated = merge_patch(current, body)
        self._validate(resource, updated)
        self._bump(updated, spec_changed=updated.get("spec") != current.get("spec"))
        self.objects[key] = updated
        return copy.deepcopy(updated)

    def delete(self, resource: Resource, name: str, namespace: str | None = None) -> None:
        """Delete an object; a missing one counts as deleted."""
        namespace = namespace if resource.namespaced else None
        self._write("DELETE", resource.ref(name, namespace), {})
        self.objects.pop(self._key(resource.kind, name, namespace), None)


class FakeClock:
    """A monotonic clock and sleep for ``wait_for_status``: each sleep advances time and runs the next step.

    Args:
        steps: what the storage controller does during each successive sleep (e.g. writes the next status).
    """

    def __init__(self, *steps: Callable[[], None]) -> None:
        self.now = 0.0
        self.steps = list(steps)
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """Advance the clock; run the next scripted step, if any."""
        self.now += seconds
        self.sleeps += 1
        if self.steps:
            self.steps.pop(0)()
