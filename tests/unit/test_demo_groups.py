"""Unit tests of the lab's demo groups: the four named ones, and more spread over backends and priority tiers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapters.base import Backend
from orchestrate.config import parse_config
from sandbox.demo import DEMO_GROUPS, demo_config, demo_groups


def test_four_named_groups_keep_the_default_priority() -> None:
    assert demo_groups() == DEMO_GROUPS
    assert all(g.priority is None for g in demo_groups(4))
    assert [g.name for g in demo_groups(2)] == ["pg-prod", "pg-unified"]


def test_twelve_groups_have_every_backend_in_each_of_three_tiers() -> None:
    groups = demo_groups(12)
    assert [g.name for g in groups[:5]] == ["pg-prod", "pg-unified", "pg-trident", "pg-powerstore", "app-005"]
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
