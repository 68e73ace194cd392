"""Unit tier: a csi-addons VolumeGroupReplication counts as current only once its inner VolumeReplication is.

The documents were recorded from the real csi-addons v0.14.0 controllers in the lab (tests/e2e/real_csi_addons
makes the same moment happen): the secondary's VGR was asked for ``autoResync: true`` while the driver's demote took
six seconds; the VGR controller had passed the request to its VR and re-stamped the VR's old status with the VGR's
generation, so the VGR alone looked reconciled (observedGeneration 4 of 4, Completed=True) while its VR still
reported generation 1 of 2.
"""

from __future__ import annotations

import copy

from adapters.base import Backend, ReplicationStatus, Role
from adapters.csi_addons import CSI_ADDONS_FIELDS, inner_replication_lag, read_status
from clusters.api import JsonObject
from tests.unit.test_adapters_csi_addons import FakeClusterApi, csi_adapter, recorded

RECORDING = "csi-addons/real-v0.14.0-vgr-restamped-before-vr-acted.json"


def _documents() -> tuple[JsonObject, JsonObject]:
    both = recorded(RECORDING)
    return both["volumegroupreplication"], both["volumereplication"]


def _observe(group: JsonObject, replication: JsonObject | None) -> ReplicationStatus:
    api = FakeClusterApi()
    api.inner_in_step = False
    api.put(CSI_ADDONS_FIELDS.group, group)
    if replication is not None:
        api.put(CSI_ADDONS_FIELDS.volume, replication)
    return csi_adapter(api).observe()


def test_the_recorded_group_status_alone_looks_reconciled() -> None:
    group, replication = _documents()
    assert group["status"]["observedGeneration"] == group["metadata"]["generation"] == 4
    assert replication["status"]["observedGeneration"] == 1 and replication["metadata"]["generation"] == 2
    alone = read_status(
        group, cluster="dc2", backend=Backend.CSI_ADDONS, resource=CSI_ADDONS_FIELDS.group, fields=CSI_ADDONS_FIELDS
    )
    assert alone.current and alone.role is Role.SECONDARY  # what the adapter used to conclude


def test_the_adapter_waits_for_the_inner_volume_replication() -> None:
    group, replication = _documents()
    status = _observe(group, replication)
    assert not status.current and status.role is Role.UNKNOWN and not status.completed
    assert "status is for generation 1, object is at generation 2" in status.message
    assert "a copy of its VolumeReplication's" in status.message


def test_once_the_volume_replication_reports_its_generation_and_the_group_holds_it_the_group_is_current() -> None:
    group, replication = _documents()
    caught_up = copy.deepcopy(replication)
    caught_up["status"]["observedGeneration"] = 2
    for condition in caught_up["status"].get("conditions", []):
        condition["observedGeneration"] = 2
    assert inner_replication_lag(group, caught_up, caught_up["metadata"]["name"]) is None
    status = _observe(group, caught_up)
    assert status.current and status.role is Role.SECONDARY


def test_a_group_still_holding_the_old_copy_of_an_acted_volume_replication_is_not_current() -> None:
    group, replication = _documents()
    acted = copy.deepcopy(replication)
    acted["status"]["observedGeneration"] = 2
    for condition in acted["status"].get("conditions", []):
        condition["observedGeneration"] = 2
        if condition["type"] == "Resyncing":
            condition.update(status="True", reason="ResyncTriggered")
    lag = inner_replication_lag(group, acted, "vr-1")
    assert lag == "the group has not copied the latest status of its VolumeReplication vr-1 yet"
    assert not _observe(group, acted).current


def test_a_request_not_yet_passed_on_or_a_missing_volume_replication_is_not_current() -> None:
    group, replication = _documents()
    behind = copy.deepcopy(replication)
    behind["spec"]["autoResync"] = False
    assert "still asks replicationState=secondary, autoResync=False" in str(inner_replication_lag(group, behind, "vr"))
    assert not _observe(group, behind).current
    status = _observe(group, None)
    assert not status.current and "does not exist yet" in status.message
