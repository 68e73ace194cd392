"""Unit tier: ``ReplicationStatus.missing_volumes`` and ``ReplicationStatus.volume_problems()`` on built statuses.

What a planned failover checks for every volume, independent of any adapter: expected PVCs that are not
replicated (absent from ``volumes`` where those name PVCs, or listed in ``missing_volumes``) and unhealthy
volumes, for per-PVC backends and for PowerStore, whose one volume entry stands for the whole group.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import Backend, ReplicationStatus, Role, VolumeState

VGR = "VolumeGroupReplication pg-prod/postgres"


def status(backend: Backend = Backend.CSI_ADDONS, **fields: Any) -> ReplicationStatus:
    values: dict[str, Any] = {
        "cluster": "dc1",
        "backend": backend,
        "role": Role.PRIMARY,
        "current": True,
        "completed": True,
        "healthy": True,
        "replicating": True,
        "syncing": False,
        "generations": {VGR: 3},
    }
    values.update(fields)
    return ReplicationStatus(**values)


def volume(name: str, **fields: Any) -> VolumeState:
    return VolumeState(**{"name": name, "role": Role.PRIMARY, "state": "Primary", **fields})


def test_missing_volumes_defaults_to_empty() -> None:
    assert status().missing_volumes == ()
    assert status().volume_problems([]) == []


def test_every_expected_pvc_replicated_and_healthy_is_no_problem() -> None:
    replicated = status(volumes=(volume("data-postgres-0"), volume("wal-postgres-0")))
    assert replicated.volume_problems(["data-postgres-0", "wal-postgres-0"]) == []


def test_an_expected_pvc_absent_from_the_volumes_is_not_replicated() -> None:
    replicated = status(volumes=(volume("data-postgres-0"),))
    assert replicated.volume_problems(["data-postgres-0", "wal-postgres-0"]) == [
        f"PVC wal-postgres-0 is not replicated by {VGR}"
    ]


def test_missing_volumes_are_reported_once_with_the_adapter_message_and_not_again_as_unhealthy() -> None:
    not_replicated = volume(
        "wal-postgres-0", role=Role.UNKNOWN, state="not replicated", message="not listed", healthy=False
    )
    observed = status(
        volumes=(volume("data-postgres-0"), not_replicated), missing_volumes=("wal-postgres-0", "archive-0")
    )
    # Expected ones first, in the caller's order, then the other missing ones the group expects; each once.
    assert observed.volume_problems(["wal-postgres-0", "wal-postgres-0", "data-postgres-0"]) == [
        f"PVC wal-postgres-0 is not replicated by {VGR} (not listed)",
        f"PVC archive-0 is not replicated by {VGR}",
    ]


def test_unhealthy_volumes_are_reported_with_state_and_message() -> None:
    observed = status(
        volumes=(
            volume("data-postgres-0", state="failed", message="Could not promote mirror", healthy=False),
            volume("wal-postgres-0", state="", healthy=False),
            volume("config-postgres-0"),
        )
    )
    assert observed.volume_problems(["data-postgres-0", "wal-postgres-0", "config-postgres-0"]) == [
        "PVC data-postgres-0: failed (Could not promote mirror)",
        "PVC wal-postgres-0: no state reported",
    ]


@pytest.mark.parametrize(
    ("generations", "by"),
    [
        ({}, "the group's csi-addons replication objects"),
        (
            {"TridentMirrorRelationship pg/a": 1, "TridentMirrorRelationship pg/b": 1},
            "the group's TridentMirrorRelationships",
        ),
        ({"VolumeReplication pg/a": 1, "VolumeGroupReplication pg/b": 1}, "the group's csi-addons replication objects"),
    ],
)
def test_without_one_object_the_message_names_the_group_objects(generations: dict[str, int], by: str) -> None:
    assert status(generations=generations).volume_problems(["a"]) == [f"PVC a is not replicated by {by}"]


def test_a_group_object_backend_judges_health_and_the_adapters_missing_volumes_only() -> None:
    rg = "DellCSIReplicationGroup rg-pg-prod"
    group = volume("rg-pg-prod", state="Error", message="link SUSPENDED", healthy=False)
    observed = status(Backend.POWERSTORE, volumes=(group,), missing_volumes=("wal-postgres-0",), generations={rg: 7})
    # data-postgres-0 is not in volumes (the entry is the RG), which says nothing about it.
    assert observed.volume_problems(["data-postgres-0", "wal-postgres-0"]) == [
        f"PVC wal-postgres-0 is not replicated by {rg}",
        f"{rg} (every PVC of the group): Error (link SUSPENDED)",
    ]
    unnamed = status(Backend.POWERSTORE, volumes=(group,), generations={})
    assert unnamed.volume_problems([]) == ["rg-pg-prod (every PVC of the group): Error (link SUSPENDED)"]


@pytest.mark.parametrize("backend", list(Backend))
def test_only_powerstore_reports_one_volume_for_the_group(backend: Backend) -> None:
    assert backend.volumes_are_pvcs is (backend is not Backend.POWERSTORE)


def test_missing_volumes_cross_the_temporal_boundary() -> None:
    observed = status(missing_volumes=("wal-postgres-0",))
    assert ReplicationStatus.model_validate_json(observed.model_dump_json()) == observed
    # A status serialised before the field existed still loads.
    legacy = observed.model_dump(mode="json")
    del legacy["missing_volumes"]
    assert ReplicationStatus.model_validate(legacy).missing_volumes == ()
