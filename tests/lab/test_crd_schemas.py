"""Lab tier: every enum field of every test CRD rejects an invalid value on the server.

The cases are derived from the schemas in deploy/crds: for each enum field the test builds an object that is
valid except for that field and sends it as a raw request (no client-side validation), through the status
subresource for status fields. The apiserver must answer 422 naming the field as an unsupported value; the same
object with a valid value is accepted, which proves the 422 came from the enum alone.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.cluster import LabCluster
from sandbox.manifests import crd_documents

INVALID = "not-a-valid-value"
OBJECT_HEADER = ("apiVersion", "kind", "metadata")
ITEM = "[]"


@dataclass(frozen=True)
class EnumCase:
    crd: dict[str, Any]
    path: tuple[str, ...]
    values: tuple[Any, ...]

    @property
    def kind(self) -> str:
        return str(self.crd["spec"]["names"]["kind"])

    @property
    def field(self) -> str:
        """The path as the apiserver renders it, e.g. ``status.conditions[0].status``."""
        rendered = ""
        for part in self.path:
            rendered += "[0]" if part == ITEM else (f".{part}" if rendered else part)
        return rendered

    @property
    def case_id(self) -> str:
        return f"{self.crd['spec']['group']}/{self.kind}:{self.field}"


def enum_paths(schema: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], tuple[Any, ...]]]:
    found: list[tuple[tuple[str, ...], tuple[Any, ...]]] = []
    if "enum" in schema:
        found.append((path, tuple(schema["enum"])))
    for name, sub in schema.get("properties", {}).items():
        found += enum_paths(sub, (*path, name))
    if "items" in schema:
        found += enum_paths(schema["items"], (*path, ITEM))
    return found


def served_schema(crd: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return version["name"], version["schema"]["openAPIV3Schema"]


def all_cases() -> list[EnumCase]:
    cases = []
    for crd in crd_documents():
        _, schema = served_schema(crd)
        for path, values in enum_paths(schema):
            if path and path[0] not in OBJECT_HEADER:
                cases.append(EnumCase(crd, path, values))
    return cases


def sample(schema: dict[str, Any], force: tuple[str, ...] = ()) -> Any:
    """A value valid for ``schema``: required fields only, plus every step of ``force``."""
    if "enum" in schema and not force:
        return next((v for v in schema["enum"] if v != ""), schema["enum"][0])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        wanted = list(schema.get("required", []))
        for branch in schema.get("oneOf", [])[:1]:
            wanted += branch.get("required", [])
        if force and force[0] not in wanted:
            wanted.append(force[0])
        return {
            name: sample(properties[name], force[1:] if force and force[0] == name else ())
            for name in wanted
            if name in properties
        }
    if kind == "array":
        count = max(schema.get("minItems", 0), 1 if force else 0)
        return [sample(schema["items"], force[1:]) for _ in range(count)]
    if kind == "string":
        if schema.get("format") == "date-time":
            return "2026-11-26T10:00:00Z"
        return "x" * max(schema.get("minLength", 1), 1)
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return False
    if schema.get("x-kubernetes-int-or-string"):
        return "1"
    return {}


def set_path(document: Any, path: tuple[str, ...], value: Any) -> None:
    target = document
    for part in path[:-1]:
        target = target[0] if part == ITEM else target[part]
    last = path[-1]
    if last == ITEM:
        target[0] = value
    else:
        target[last] = value


def status_path(crd: dict[str, Any], object_path: str) -> str:
    """Where status is written: the status subresource when the CRD has one (TridentActionMirrorUpdate does not)."""
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return f"{object_path}/status" if "status" in version.get("subresources", {}) else object_path


def collection_path(crd: dict[str, Any], namespace: str) -> str:
    version, _ = served_schema(crd)
    group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
    if crd["spec"]["scope"] == "Namespaced":
        return f"/apis/{group}/{version}/namespaces/{namespace}/{plural}"
    return f"/apis/{group}/{version}/{plural}"


CASES = all_cases()


def test_every_crd_has_enum_cases() -> None:
    kinds = {case.kind for case in CASES}
    assert {
        "VolumeGroupReplication",
        "VolumeReplication",
        "TridentMirrorRelationship",
        "DellCSIReplicationGroup",
        "TridentActionMirrorUpdate",
    } <= kinds


@pytest.mark.parametrize("case", CASES, ids=[case.case_id for case in CASES])
def test_enum_field_rejects_invalid_value(case: EnumCase, dc1: LabCluster, namespace: str) -> None:
    version, schema = served_schema(case.crd)
    name = f"enum-{uuid.uuid4().hex[:8]}"
    body_fields = {k: v for k, v in schema["properties"].items() if k not in (*OBJECT_HEADER, "status")}
    body_schema = {
        "type": "object",
        "properties": body_fields,
        "required": [f for f in schema.get("required", []) if f in body_fields],
    }
    valid: dict[str, Any] = {
        "apiVersion": f"{case.crd['spec']['group']}/{version}",
        "kind": case.kind,
        "metadata": {"name": name},
        **sample(body_schema, case.path if case.path[0] != "status" else ()),
    }
    collection = collection_path(case.crd, namespace)
    invalid = copy.deepcopy(valid)

    if case.path[0] != "status":
        set_path(invalid, case.path, INVALID)
        rejected = dc1.request("POST", collection, invalid)
        assert rejected.status_code == 422, rejected.text
        assert f"{case.field}: Unsupported value" in rejected.text, rejected.text
        accepted = dc1.request("POST", collection, valid)
        assert accepted.status_code == 201, accepted.text
    else:
        created = dc1.request("POST", collection, valid)
        assert created.status_code == 201, created.text
        current = created.json()
        current["status"] = sample(schema["properties"]["status"], case.path[1:])
        invalid_status = copy.deepcopy(current)
        set_path(invalid_status, case.path, INVALID)
        target = status_path(case.crd, f"{collection}/{name}")
        rejected = dc1.request("PUT", target, invalid_status)
        assert rejected.status_code == 422, rejected.text
        assert f"{case.field}: Unsupported value" in rejected.text, rejected.text
        accepted = dc1.request("PUT", target, current)
        assert accepted.status_code == 200, accepted.text
    dc1.request("DELETE", f"{collection}/{name}")
