"""Unit tier: the unified adapter (``replication.unified.io/v1alpha2``), the csi-addons semantics under other names.

The shared normalisation is covered in test_adapters_csi_addons; this file checks what differs: the API path, the
lowercase ``status.state`` the unified operator writes, the ``*bool`` autoResync and the ``pvcName`` of a
single-volume VolumeReplication.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import Backend, ReplicationTarget, Role, VolumeState
from adapters.unified import UNIFIED_FIELDS, UnifiedAdapter
from adapters.waiting import wait_for_status
from clusters.errors import BackendFailedError, ObjectMissingError
from tests.unit.test_adapters_csi_addons import PVCS, VGR_REF, FakeClock, FakeClusterApi, recorded

VGR_PATH = "/apis/replication.unified.io/v1alpha2/namespaces/pg-prod/volumegroupreplications/postgres"


def unified(api: FakeClusterApi, *names: str, **target: Any) -> UnifiedAdapter:
    if names:
        first = recorded(names[0])
        resource = UNIFIED_FIELDS.volume if first["kind"] == "VolumeReplication" else UNIFIED_FIELDS.group
        api.put(resource, *(recorded(n) for n in names))
    target.setdefault("namespace", "pg-prod")
    target.setdefault("name", "postgres")
    return UnifiedAdapter(api, ReplicationTarget(backend=Backend.UNIFIED, **target))


def test_lowercase_primary_is_promoted() -> None:
    status = unified(FakeClusterApi(), "unified/primary-lowercase.yaml").observe()
    assert status.backend is Backend.UNIFIED
    assert (status.role, status.current, status.completed, status.healthy) == (Role.PRIMARY, True, True, True)
    assert UnifiedAdapter.promoted(status)
    assert status.last_sync_time is not None and status.last_sync_time.isoformat() == "2025-05-20T11:06:00+00:00"
    assert status.volumes == tuple(VolumeState(name=n, role=Role.PRIMARY, state="primary") for n in PVCS)
    assert status.message.startswith(f"{VGR_REF}: Primary, promoted, healthy, replicating")


def test_lowercase_secondary_final_sync() -> None:
    running = unified(FakeClusterApi(), "unified/secondary-final-sync-running.yaml").observe()
    assert running.role is Role.SECONDARY and UnifiedAdapter.still_syncing(running)
    assert "Secondary, final sync running (Resyncing=True/ResyncTriggered" in running.message
    done = unified(FakeClusterApi(), "unified/secondary-final-sync-complete.yaml").observe()
    assert UnifiedAdapter.final_sync_complete(done) and not done.replicating


def test_empty_status_names_the_unified_operator() -> None:
    status = unified(FakeClusterApi(), "unified/empty-status.yaml").observe()
    assert not status.current and status.role is Role.UNKNOWN
    assert "generation 1 never observed by the unified replication operator (status is empty)" in status.message


def test_single_volume_reads_pvc_name() -> None:
    adapter = unified(
        FakeClusterApi(),
        "unified/volumereplication-secondary.yaml",
        name="redis-data",
        namespace="cache",
        single_volume=True,
    )
    status = adapter.observe()
    assert UnifiedAdapter.final_sync_complete(status)
    assert status.volumes == (VolumeState(name="redis-data-0", role=Role.SECONDARY, state="secondary"),)
    assert status.generations == {"VolumeReplication cache/redis-data": 3}


def test_demote_sets_the_absent_auto_resync_once() -> None:
    api = FakeClusterApi()
    adapter = unified(api, "unified/primary-lowercase.yaml")
    assert "autoResync" not in recorded("unified/primary-lowercase.yaml")["spec"]  # *bool, unset
    result = adapter.demote()
    assert result.changed and result.generations == {VGR_REF: 3}
    assert api.requests[-1][:3] == ("PATCH", VGR_PATH, {"spec": {"replicationState": "secondary", "autoResync": False}})
    assert not adapter.demote().changed
    assert api.writes == 1


def test_promote_when_already_primary_writes_nothing() -> None:
    api = FakeClusterApi()
    assert not unified(api, "unified/primary-lowercase.yaml").promote(force=True).changed
    assert api.writes == 0


def test_missing_object_message() -> None:
    with pytest.raises(ObjectMissingError) as caught:
        unified(FakeClusterApi("dc2")).demote()
    assert caught.value.message.startswith(f"{VGR_REF} not found on dc2: create it or fix the group's replication name")


def test_wait_for_final_sync_with_a_fake_clock() -> None:
    adapter = unified(
        FakeClusterApi(), "unified/secondary-final-sync-running.yaml", "unified/secondary-final-sync-complete.yaml"
    )
    clock = FakeClock()
    status = wait_for_status(
        adapter, adapter.final_sync_complete, what="final sync complete", timeout=30, clock=clock, sleep=clock.sleep
    )
    assert UnifiedAdapter.final_sync_complete(status) and clock.sleeps == [0.25]


def test_wait_timeout_names_the_last_status() -> None:
    adapter = unified(FakeClusterApi(), "unified/secondary-final-sync-running.yaml")
    clock = FakeClock()
    with pytest.raises(
        BackendFailedError, match=r"last status: VolumeGroupReplication pg-prod/postgres: Secondary, final"
    ):
        wait_for_status(
            adapter, adapter.final_sync_complete, what="final sync complete", timeout=10, clock=clock, sleep=clock.sleep
        )


def test_missing_volumes_come_from_the_shared_implementation() -> None:
    status = unified(
        FakeClusterApi(), "unified/primary-lowercase.yaml", pvc_names=(*PVCS, "archive-postgres-0")
    ).observe()
    assert status.missing_volumes == ("archive-postgres-0",)
    assert status.volume_problems(PVCS) == [
        f"PVC archive-postgres-0 is not replicated by {VGR_REF} (not listed in "
        "status.persistentVolumeClaimsRefList: check the PVC's labels against the group's selector)"
    ]
    complete = unified(FakeClusterApi(), "unified/secondary-final-sync-complete.yaml", pvc_names=PVCS).observe()
    assert complete.missing_volumes == () and complete.volume_problems(PVCS) == []


def test_single_volume_missing_names_the_pvc_name_field() -> None:
    status = unified(
        FakeClusterApi(),
        "unified/volumereplication-secondary.yaml",
        name="redis-data",
        namespace="cache",
        single_volume=True,
        pvc_names=("redis-data-0", "redis-aof-0"),
    ).observe()
    assert status.missing_volumes == ("redis-aof-0",)
    assert status.volumes[-1].message == "spec.pvcName is redis-data-0, not this PVC"
