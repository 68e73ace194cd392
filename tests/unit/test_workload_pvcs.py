"""Unit tier: ``clusters.workloads.workload_pvcs``, the PVCs a group's workloads use, on an in-memory API server.

StatefulSet claim templates per ordinal (also when scaled to zero or scaling down, and with a start ordinal),
claims in pod templates of StatefulSets and Deployments, claims of existing pods selected by the workload's
selector, and that every request stays in the group's namespace.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from clusters.api import JsonObject, Resource
from clusters.errors import ObjectMissingError
from clusters.workloads import WorkloadRef, workload_pvcs
from tests.unit.fake_cluster import FakeClusterApi

NAMESPACE = "pg-prod"
POSTGRES = WorkloadRef(kind="StatefulSet", name="postgres")
PGBOUNCER = WorkloadRef(kind="Deployment", name="pgbouncer")


class SelectingClusterApi(FakeClusterApi):
    """The fake API server, recording every list and evaluating equality label selectors (``k=v,...``).

    A selector with other terms (set-based, existence) matches no object here: the tests that send one check
    the selector string only.
    """

    def __init__(self, documents: list[JsonObject]) -> None:
        super().__init__("dc1", documents)
        self.lists: list[tuple[str, str | None, str | None]] = []

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JsonObject]:
        self.lists.append((resource.kind, namespace, label_selector))
        items = super().list(resource, namespace, field_selector=field_selector)
        if not label_selector:
            return items
        terms = label_selector.split(",")
        if not all(re.fullmatch(r"[\w./-]+=[\w.-]*", term) for term in terms):
            return []
        wanted = dict(term.split("=", 1) for term in terms)
        return [
            item for item in items if all(item["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]


def claim_volume(name: str, claim: str) -> JsonObject:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim}}


def statefulset(
    *, replicas: int | None = 1, current: int | None = None, start: int | None = None, **spec: Any
) -> JsonObject:
    body: JsonObject = {
        "selector": {"matchLabels": {"app": "postgres"}},
        "serviceName": "postgres",
        "template": {
            "metadata": {"labels": {"app": "postgres"}},
            "spec": {"containers": [{"name": "postgres", "image": "postgres:16"}]},
        },
        "volumeClaimTemplates": [
            {"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"]}}
            for name in ("data", "wal", "config")
        ],
        **spec,
    }
    if replicas is not None:
        body["replicas"] = replicas
    if start is not None:
        body["ordinals"] = {"start": start}
    document: JsonObject = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "postgres", "namespace": NAMESPACE, "generation": 1},
        "spec": body,
    }
    if current is not None:
        document["status"] = {"replicas": current}
    return document


def deployment(*volumes: JsonObject) -> JsonObject:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "pgbouncer", "namespace": NAMESPACE, "generation": 1},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "pgbouncer"}},
            "template": {
                "metadata": {"labels": {"app": "pgbouncer"}},
                "spec": {"containers": [{"name": "pgbouncer", "image": "pgbouncer"}], "volumes": list(volumes)},
            },
        },
    }


def pod(name: str, app: str, *volumes: JsonObject, namespace: str = NAMESPACE, phase: str = "Running") -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "spec": {"containers": [{"name": app}], "volumes": [{"name": "tmp", "emptyDir": {}}, *volumes]},
        "status": {"phase": phase},
    }


def test_statefulset_claim_templates_for_its_one_replica() -> None:
    api = SelectingClusterApi([statefulset(replicas=1, current=1)])
    assert workload_pvcs(api, NAMESPACE, [POSTGRES]) == ["config-postgres-0", "data-postgres-0", "wal-postgres-0"]


@pytest.mark.parametrize(("replicas", "current"), [(0, 0), (0, None), (None, None)])
def test_statefulset_scaled_to_zero_still_names_ordinal_zeros_claims(replicas: int | None, current: int | None) -> None:
    # Scaled down for the failover (or replicas unset, which defaults to 1): the claims stay and must move.
    api = SelectingClusterApi([statefulset(replicas=replicas, current=current)])
    assert workload_pvcs(api, NAMESPACE, [POSTGRES]) == ["config-postgres-0", "data-postgres-0", "wal-postgres-0"]


def test_statefulset_scaling_down_names_the_claims_of_pods_not_gone_yet() -> None:
    api = SelectingClusterApi([statefulset(replicas=1, current=3)])
    assert workload_pvcs(api, NAMESPACE, [POSTGRES]) == sorted(
        f"{template}-postgres-{ordinal}" for template in ("data", "wal", "config") for ordinal in range(3)
    )


def test_statefulset_start_ordinal() -> None:
    api = SelectingClusterApi([statefulset(replicas=2, start=5)])
    assert workload_pvcs(api, NAMESPACE, [POSTGRES]) == sorted(
        f"{template}-postgres-{ordinal}" for template in ("data", "wal", "config") for ordinal in (5, 6)
    )


def test_pod_template_claims_of_a_statefulset_and_a_deployment() -> None:
    postgres = statefulset()
    postgres["spec"]["template"]["spec"]["volumes"] = [claim_volume("archive", "wal-archive")]
    api = SelectingClusterApi(
        [postgres, deployment({"name": "config", "configMap": {"name": "x"}}, claim_volume("certs", "pgbouncer-certs"))]
    )
    assert workload_pvcs(api, NAMESPACE, [PGBOUNCER]) == ["pgbouncer-certs"]
    assert workload_pvcs(api, NAMESPACE, [POSTGRES, PGBOUNCER]) == [
        "config-postgres-0",
        "data-postgres-0",
        "pgbouncer-certs",
        "wal-archive",
        "wal-postgres-0",
    ]


def test_claims_of_existing_pods_selected_by_the_workload() -> None:
    api = SelectingClusterApi(
        [
            statefulset(),
            deployment(claim_volume("certs", "pgbouncer-certs")),
            # A pod patched by hand with an extra claim, and one that finished: both the workload's.
            pod("postgres-0", "postgres", claim_volume("data", "data-postgres-0"), claim_volume("x", "scratch-0")),
            pod("postgres-restore", "postgres", claim_volume("dump", "restore-dump"), phase="Succeeded"),
            # Not the workloads' pods: another app, and the same labels in another namespace.
            pod("reporting-0", "reporting", claim_volume("data", "reporting-data")),
            pod("postgres-0", "postgres", claim_volume("data", "elsewhere"), namespace="pg-test"),
        ]
    )
    assert workload_pvcs(api, NAMESPACE, [POSTGRES, PGBOUNCER]) == [
        "config-postgres-0",
        "data-postgres-0",
        "pgbouncer-certs",
        "restore-dump",
        "scratch-0",
        "wal-postgres-0",
    ]
    # One pod list per workload, in the namespace, by the workload's selector: never cluster-wide.
    assert api.lists == [("Pod", NAMESPACE, "app=postgres"), ("Pod", NAMESPACE, "app=pgbouncer")]


def test_selector_expressions_are_sent_and_an_empty_selector_lists_no_pods() -> None:
    document = statefulset()
    document["spec"]["selector"] = {
        "matchLabels": {"app": "postgres"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["wal", "db"]},
            {"key": "track", "operator": "NotIn", "values": ["canary"]},
            {"key": "managed", "operator": "Exists"},
            {"key": "debug", "operator": "DoesNotExist"},
        ],
    }
    api = SelectingClusterApi([document])
    assert workload_pvcs(api, NAMESPACE, [POSTGRES]) == ["config-postgres-0", "data-postgres-0", "wal-postgres-0"]
    assert api.lists == [("Pod", NAMESPACE, "app=postgres,tier in (db,wal),track notin (canary),managed,!debug")]

    document["spec"]["selector"] = {}
    api = SelectingClusterApi([document])
    assert workload_pvcs(api, NAMESPACE, [POSTGRES]) == ["config-postgres-0", "data-postgres-0", "wal-postgres-0"]
    assert api.lists == []


def test_no_workloads_no_pvcs_and_a_missing_workload_raises() -> None:
    api = SelectingClusterApi([statefulset()])
    assert workload_pvcs(api, NAMESPACE, []) == []
    with pytest.raises(ObjectMissingError):
        workload_pvcs(api, NAMESPACE, [PGBOUNCER])
