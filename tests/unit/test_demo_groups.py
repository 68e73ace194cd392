"""Unit tests of the lab's demo groups: the five named ones, and more spread over backends and priority tiers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapters.base import Backend
from orchestrate.config import parse_config
from sandbox.demo import DEMO_GROUPS, demo_config, demo_groups


def test_five_named_groups_keep_the_default_priority() -> None:
    assert demo_groups() == DEMO_GROUPS
    assert all(g.priority is None for g in demo_groups(5))
    assert [g.name for g in demo_groups(2)] == ["pg-prod", "pg-unified"]


def test_named_groups_can_be_chosen_and_an_unknown_one_is_named() -> None:
    assert [g.name for g in demo_groups(only=("redis-prod", "pg-prod"))] == ["pg-prod", "redis-prod"]
    with pytest.raises(ValueError, match="no demo group pg-nope; the demo groups are pg-prod, pg-unified"):
        demo_groups(only=("pg-nope",))


def test_the_single_volume_group_is_one_redis_pvc_replicated_by_a_volume_replication() -> None:
    (redis,) = demo_groups(only=("redis-prod",))
    assert redis.backend is Backend.CSI_ADDONS and redis.single_volume
    assert redis.pvcs == ("data-redis-0",) and redis.replication_name == "redis"
    config = parse_config(demo_config(Path("/lab/kubeconfig"), "127.0.0.1:7233", groups=(redis,)), Path("/lab/o.yaml"))
    (group,) = config.groups
    assert group.replication_target("dc2").single_volume and group.replication_name("dc2") == "redis"
    assert [w.name for w in group.workloads] == ["redis"] and group.replication.pvcs == ("data-redis-0",)


def test_twelve_groups_have_every_backend_in_each_of_three_tiers() -> None:
    groups = demo_groups(12)
    assert [g.name for g in groups[:6]] == [
        "pg-prod",
        "pg-unified",
        "pg-trident",
        "pg-powerstore",
        "redis-prod",
        "app-006",
    ]
    assert groups[4].single_volume and groups[4].priority == 20
    assert not any(g.single_volume for g in groups[5:])
    assert len({g.name for g in groups}) == 12
    for tier in (10, 20, 30):
        assert {g.backend for g in groups if g.priority == tier} == set(Backend)


def test_the_configuration_carries_the_tiers() -> None:
    text = demo_config(Path("/lab/kubeconfig"), "127.0.0.1:7233", groups=demo_groups(6))
    config = parse_config(text, Path("/lab/orchestrate.yaml"))
    assert [g.priority for g in config.groups] == [10, 10, 20, 20, 30, 30]
    assert yaml.safe_load(text)["groups"][0]["name"] == "pg-prod"


def test_at_least_one_group() -> None:
    with pytest.raises(ValueError, match="at least one"):
        demo_groups(0)
