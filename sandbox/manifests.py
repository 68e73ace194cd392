"""Apply the project's manifests (test CRDs, the StorageClass, demo objects) to a lab cluster."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CRD_DIR = Path(__file__).resolve().parents[1] / "deploy" / "crds"


@cache
def _load_crds() -> tuple[dict[str, Any], ...]:
    documents: list[dict[str, Any]] = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return tuple(documents)


def crd_documents() -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in ``deploy/crds``."""
    return [doc for doc in _load_crds() if doc.get("kind") == "CustomResourceDefinition"]


def apply_manifests(api_client: Any, documents: Iterable[dict[str, Any]]) -> None:
    """Create each object, or replace it when it exists (keeping its resourceVersion)."""
    from kubernetes import client
    from kubernetes.dynamic import DynamicClient

    dynamic = DynamicClient(api_client)  # type: ignore[no-untyped-call]
    for document in documents:
        resource = dynamic.resources.get(api_version=document["apiVersion"], kind=document["kind"])
        namespace = document["metadata"].get("namespace")
        try:
            resource.create(body=document, namespace=namespace)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            current = resource.get(name=document["metadata"]["name"], namespace=namespace)
            body = {
                **document,
                "metadata": {**document["metadata"], "resourceVersion": current.metadata.resourceVersion},
            }
            resource.replace(body=body, namespace=namespace)


def wait_for_crds(api_client: Any, names: Sequence[str], timeout: float = 60.0) -> None:
    """Wait until every named CRD reports Established=True."""
    from kubernetes import client

    api = client.ApiextensionsV1Api(api_client)
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            crd = api.read_custom_resource_definition(name)
            conditions = crd.status.conditions or [] if crd.status else []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                pending.discard(name)
        if pending:
            time.sleep(0.2)
    if pending:
        raise TimeoutError(f"CRDs not established after {timeout:.0f}s: {', '.join(sorted(pending))}")
