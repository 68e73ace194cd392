"""Unit tier: the simulator's engine and controllers against in-memory API servers and a fake clock.

Deterministic checks that the lab tier can only sample: the exact status sequence of a planned demote (stale
status until the latency passed, first pass, final sync running, done), a demote with ``autoResync`` losing the
unshipped writes (ceph-csi issue 3209), ``stop-lag-updates`` freezing ``lastSyncTime`` while shipments go on, a
Dell action retried past its window ending in ``Error``, an unreachable cluster being skipped, and the request
economy (no status write without a change; recently empty kinds listed once per ``idle_poll_interval``).
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from kubernetes import client as kube

from clusters.api import PVCS, ClusterApi, JsonObject, Resource
from clusters.errors import ClusterUnreachableError, ConflictError, ObjectMissingError
from sandbox.simulator.config import SimulatorConfig
from sandbox.simulator.engine import Simulator
from sandbox.simulator.kube import CSI_VGR, DELL_RG, WITHOUT_STATUS_SUBRESOURCE, rfc3339
from sandbox.simulator.schemas import FaultKind, FaultSpec, WriteRequest
from sandbox.simulator.testing import conditions_summary, csi_vgr, dell_rg

NS = "pg-prod"
LABELS = {"app": "pg"}
_uids = itertools.count(1)


class FakeCluster(ClusterApi):
    """An in-memory API server: LIST, create, guarded replace (object or status), merge patch and delete."""

    def __init__(self, name: str) -> None:
        super().__init__(name, kube.ApiClient(kube.Configuration()))
        self.store: dict[tuple[str, str | None, str], JsonObject] = {}
        self.revision = 0
        self.down = False
        self.calls: Counter[str] = Counter()

    def _key(self, resource: Resource, namespace: str | None, name: str) -> tuple[str, str | None, str]:
        return (f"{resource.plural}.{resource.group}", namespace if resource.namespaced else None, name)

    def _reach(self, verb: str) -> None:
        if self.down:
            raise ClusterUnreachableError("connection refused", cluster=self.cluster)
        self.calls[verb] += 1

    def _save(self, key: tuple[str, str | None, str], obj: JsonObject) -> JsonObject:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self.store[key] = obj
        return copy.deepcopy(obj)

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JsonObject]:
        self._reach(f"list {resource.kind}")
        kind = f"{resource.plural}.{resource.group}"
        return [copy.deepcopy(o) for k, o in self.store.items() if k[0] == kind and namespace in (None, k[1])]

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JsonObject:
        obj = self.store.get(self._key(resource, namespace, name))
        if obj is None:
            raise ObjectMissingError("not found", cluster=self.cluster)
        return copy.deepcopy(obj)

    def create(self, resource: Resource, body: JsonObject, namespace: str | None = None) -> JsonObject:
        self._reach("create")
        obj = copy.deepcopy(body)
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("name", f"{metadata.get('generateName', 'obj-')}{next(_uids)}")
        metadata.update(uid=f"{next(_uids):08x}-0000", generation=1)
        if resource.namespaced:
            metadata["namespace"] = namespace
        obj.update(apiVersion=resource.api_version, kind=resource.kind)
        return self._save(self._key(resource, namespace, metadata["name"]), obj)

    def replace(self, resource: Resource, body: JsonObject, *, subresource: str | None = None) -> JsonObject:
        self._reach(f"replace {subresource or 'object'}")
        metadata = body["metadata"]
        key = self._key(resource, metadata.get("namespace"), metadata["name"])
        current = self.store.get(key)
        if current is None:
            raise ObjectMissingError("not found", cluster=self.cluster)
        if metadata.get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ConflictError("stale resourceVersion", cluster=self.cluster)
        updated = copy.deepcopy(current)
        if subresource == "status" or resource in WITHOUT_STATUS_SUBRESOURCE:
            updated["status"] = copy.deepcopy(body.get("status"))
        if subresource != "status" and body.get("spec") != current.get("spec"):
            updated["spec"] = copy.deepcopy(body["spec"])
            updated["metadata"]["generation"] += 1
        return self._save(key, updated)

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: JsonObject,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JsonObject:
        self._reach("patch")
        key = self._key(resource, namespace, name)
        updated = copy.deepcopy(self.store[key])
        _merge(updated, patch)
        if "spec" in patch:
            updated["metadata"]["generation"] += 1
        return self._save(key, updated)

    def delete(self, resource: Resource, name: str, namespace: str | None = None) -> None:
        self._reach("delete")
        self.store.pop(self._key(resource, namespace, name), None)


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class Lab:
    """Two fake clusters, a simulator on them and a clock the test moves."""

    def __init__(self, **timings: float) -> None:
        self.now = 1_800_000_000.0
        self.dc1, self.dc2 = FakeCluster("dc1"), FakeCluster("dc2")
        config = SimulatorConfig(**{"idle_poll_interval": 1.0, **timings})
        self.simulator = Simulator({"dc1": self.dc1, "dc2": self.dc2}, config, clock=lambda: self.now, watch=False)

    def run(self, seconds: float, step: float = 0.1) -> None:
        for _ in range(round(seconds / step)):
            self.now += step
            self.simulator.tick()

    def group(self, resource: Resource = CSI_VGR) -> None:
        for api in (self.dc1, self.dc2):
            for pvc in ("data", "wal"):
                api.create(PVCS, {"metadata": {"name": pvc, "labels": LABELS}, "spec": {}}, NS)
        self.dc1.create(resource, csi_vgr("pg", LABELS, "primary"), NS)
        self.dc2.create(resource, csi_vgr("pg", LABELS, "secondary"), NS)

    def vgr(self, api: FakeCluster) -> JsonObject:
        return api.get(CSI_VGR, "pg", NS)


@pytest.fixture()
def lab() -> Iterator[Lab]:
    lab = Lab()
    yield lab
    lab.simulator.stop()


def test_planned_demote_status_sequence(lab: Lab) -> None:
    lab.simulator.configure({"sync_interval": 3600})
    lab.group()
    lab.run(0.1)
    assert "status" not in lab.vgr(lab.dc1), "nothing is observed before promote_latency"
    lab.run(0.3)
    assert lab.vgr(lab.dc1)["status"]["state"] == "Primary"
    lab.simulator.acknowledge_writes(WriteRequest(namespace=NS, pvc="data", cluster="dc1", count=10))

    lab.dc1.patch(CSI_VGR, "pg", {"spec": {"replicationState": "secondary"}}, NS)
    sequence: list[tuple[int, dict[str, str]]] = []
    for _ in range(10):
        lab.run(0.1)
        obj = lab.vgr(lab.dc1)
        step = (obj["status"]["observedGeneration"], conditions_summary(obj))
        if not sequence or sequence[-1] != step:
            sequence.append(step)
    first_pass = {"Degraded": "True/VolumeDegraded", "Resyncing": "False/NotResyncing"}
    syncing = {"Degraded": "True/VolumeDegraded", "Resyncing": "True/ResyncTriggered"}
    healthy = {"Degraded": "False/Healthy", "Resyncing": "False/NotResyncing"}
    phases = [(g, {k: s[k] for k in ("Degraded", "Resyncing")}) for g, s in sequence]
    assert phases[0] == (1, {"Degraded": "False/Healthy", "Resyncing": "False/NotResyncing"}), "stale until due"
    assert phases[1:] == [(2, first_pass), (2, syncing), (2, healthy)]
    assert all(c["observedGeneration"] == 2 for c in lab.vgr(lab.dc1)["status"]["conditions"])
    volume = lab.simulator.ledger().volume(NS, "data")
    assert volume.sides["dc2"].held == 10 and volume.final_sync_pending is None


def test_demote_with_auto_resync_loses_the_unshipped_writes(lab: Lab) -> None:
    lab.simulator.configure({"sync_interval": 3600})
    lab.group()
    lab.run(0.5)
    lab.simulator.acknowledge_writes(WriteRequest(namespace=NS, pvc="data", cluster="dc1", count=10))
    lab.dc1.patch(CSI_VGR, "pg", {"spec": {"replicationState": "secondary", "autoResync": True}}, NS)
    lab.run(1.0)
    waiting = conditions_summary(lab.vgr(lab.dc1))
    assert waiting["Resyncing"] == "True/ResyncTriggered", "the resync waits for a primary peer"

    lab.dc2.patch(CSI_VGR, "pg", {"spec": {"replicationState": "primary"}}, NS)
    lab.run(1.0)
    assert conditions_summary(lab.vgr(lab.dc1))["Degraded"] == "False/Healthy"
    volume = lab.simulator.ledger().volume(NS, "data")
    assert (volume.lost_at_promotion, volume.discarded_at_resync) == (10, 10), "ceph-csi issue 3209"


def test_stop_lag_updates_freezes_last_sync_time(lab: Lab) -> None:
    lab.group()
    lab.run(1.5)
    frozen = lab.vgr(lab.dc1)["status"]["lastSyncTime"]
    lab.simulator.add_fault(FaultSpec(group=NS, kind=FaultKind.STOP_LAG_UPDATES))
    lab.run(3.0)
    assert lab.vgr(lab.dc1)["status"]["lastSyncTime"] == frozen
    shipped = lab.simulator.ledger().volume(NS, "data").last_shipment
    assert shipped is not None and shipped.timestamp() > lab.now - 1.5, "shipments go on"
    lab.simulator.remove_faults()
    lab.run(0.2)
    assert lab.vgr(lab.dc1)["status"]["lastSyncTime"] == rfc3339(shipped.timestamp())


def test_dell_action_retried_past_its_window_ends_in_error(lab: Lab) -> None:
    lab.simulator.configure({"dell_error_after": 1.0, "retry_interval": 0.2})
    for api, remote in ((lab.dc1, "dc2"), (lab.dc2, "dc1")):
        api.create(
            PVCS,
            {
                "metadata": {"name": "data", "labels": {"replication.storage.dell.com/replicationGroupName": "rg"}},
                "spec": {},
            },
            NS,
        )
        api.create(DELL_RG, dell_rg("rg", remote))
    lab.run(0.5)
    lab.simulator.add_fault(FaultSpec(group="rg", kind=FaultKind.FAIL_DEMOTE))
    lab.dc1.patch(DELL_RG, "rg", {"spec": {"action": "FAILOVER_REMOTE"}})
    lab.run(0.5)
    retrying = lab.dc1.get(DELL_RG, "rg")
    assert retrying["status"]["state"] == "FAILOVER_REMOTE_IN_PROGRESS"
    assert retrying["status"]["lastAction"]["firstFailure"] and retrying["spec"]["action"] == "FAILOVER_REMOTE"
    lab.run(1.5)
    failed = lab.dc1.get(DELL_RG, "rg")
    assert failed["status"]["state"] == "Error" and failed["spec"]["action"] == ""
    assert failed["status"]["conditions"][0]["condition"].startswith("Action FAILOVER_REMOTE failed with error")
    assert lab.simulator.ledger().volume(NS, "data").writable == ["dc1"]


def test_an_unreachable_cluster_is_skipped(lab: Lab) -> None:
    lab.group()
    lab.dc2.down = True
    lab.run(0.5)
    health = lab.simulator.health()
    assert not health.clusters["dc2"].reachable and health.clusters["dc1"].reachable
    assert lab.vgr(lab.dc1)["status"]["state"] == "Primary"
    assert "status" not in lab.vgr(lab.dc2)
    lab.dc2.down = False
    lab.run(0.5)
    assert lab.simulator.health().clusters["dc2"].reachable
    assert lab.vgr(lab.dc2)["status"]["state"] == "Secondary"


def test_request_economy(lab: Lab) -> None:
    lab.group()
    lab.run(2.0)
    lab.dc1.calls.clear()
    lab.dc2.calls.clear()
    lab.run(1.0)  # ten ticks in steady state
    assert lab.dc2.calls["replace status"] == 0, "a steady secondary is never rewritten"
    assert lab.dc1.calls["replace status"] <= 2, "the primary is rewritten only when lastSyncTime moves"
    lists = sum(n for verb, n in lab.dc1.calls.items() if verb.startswith("list"))
    assert lists <= 2 * 10 + 9, "PVCs and VGRs every tick, each empty kind once per idle interval"
