"""Unit tier: configuration loading: a valid file, and bad input reported with file, line and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from adapters.base import Backend
from orchestrate.config import ConfigError, UnknownGroupError, load_config
from workflows.groups import parse_duration

VALID = """\
temporal:
  address: 127.0.0.1:7233
  task_queue: failover
clusters:
  - name: dc1
    site: dc1
    kubeconfig: kubeconfig
  - name: dc2
    site: dc2
    kubeconfig: /abs/kubeconfig
    context: site-b
groups:
  - name: pg-prod
    namespace: pg-prod
    backend: csi-addons
    clusters: [dc1, dc2]
    replication:
      name: postgres
    workloads:
      - kind: StatefulSet
        name: postgres
        replicas: 1
    rpo: 2m
    timeouts:
      final_sync: 1h30m
  - name: pg-trident
    namespace: pg-trident
    backend: trident
    clusters: [dc1, dc2]
    replication:
      pvcs: [data-postgres-0, wal-postgres-0]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orchestrate.yaml"
    path.write_text(text)
    return path


def test_valid_file_loads_with_defaults_and_resolved_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    group = config.group("pg-prod")
    assert group.backend is Backend.CSI_ADDONS
    assert group.rpo == timedelta(minutes=2)
    assert group.timeouts.final_sync == timedelta(hours=1, minutes=30)
    assert group.timeouts.promote == timedelta(minutes=5)
    assert group.peer_of("dc1") == "dc2"
    assert group.replication_name("dc2") == "postgres"
    assert config.cluster("dc1").kubeconfig == tmp_path / "kubeconfig"
    assert config.cluster("dc2").context_name == "site-b"
    assert config.temporal.task_queue == "failover"


def test_unknown_group_lists_the_known_ones(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    with pytest.raises(UnknownGroupError, match="unknown group 'pg-nope'; known groups: pg-prod, pg-trident"):
        config.group("pg-nope")


def test_bad_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("backend: csi-addons", "backend: ceph"))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert f"{path}:15: groups.0.backend: Input should be" in str(error.value)


def test_bad_duration_and_unknown_key(tmp_path: Path) -> None:
    text = VALID.replace("rpo: 2m", "rpo: soon").replace("  task_queue: failover", "  task_qeue: failover")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert f"{path}:23: groups.0.rpo: Value error, 'soon' is not a duration" in message
    assert f"{path}:3: temporal.task_qeue: Extra inputs are not permitted" in message


def test_trident_group_needs_its_pvcs(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("      pvcs: [data-postgres-0, wal-postgres-0]\n", "      {}\n"))
    with pytest.raises(ConfigError, match=r"orchestrate.yaml:\d+: groups.1: Value error, replication.pvcs"):
        load_config(path)


def test_group_naming_an_unknown_cluster(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        VALID.replace(
            "clusters: [dc1, dc2]\n    replication:\n      name", "clusters: [dc1, dc3]\n    replication:\n      name"
        ),
    )
    with pytest.raises(ConfigError, match=r"unknown cluster.*dc3; known clusters: dc1, dc2"):
        load_config(path)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "clusters:\n  - name: dc1\n   site: [\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_config(path)


def test_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pass --config or set ORCHESTRATE_CONFIG"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("5m", 300), ("1h30m", 5400), (12, 12), ("1.5s", 1.5)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
