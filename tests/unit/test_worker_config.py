"""Unit tier: ``orchestrate.worker.ConfigFile``, the worker's configuration that follows edits of its file.

Covers: ``group()`` resolves a configured group; after the file is rewritten with a changed group (its mtime
bumped explicitly) ``group()`` returns the new values; a group removed from the file -> GroupNotConfiguredError
(permanent) listing the known ones; a broken edit (invalid YAML, or valid YAML failing validation) keeps the
previous configuration and a later good edit is picked up; a ConfigFile without a path never re-reads.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import pytest

from activities.groups import GroupNotConfiguredError
from orchestrate.config import load_config
from orchestrate.worker import ConfigFile
from tests.unit.config_texts import MINIMAL_CONFIG

CONFIG = (
    MINIMAL_CONFIG
    + """\
    rpo: 2m
  - name: pg-audit
    namespace: pg-audit
    backend: csi-addons
    clusters: [dc1, dc2]
    replication:
      name: audit
"""
)


def rewrite(path: Path, text: str) -> None:
    """Write ``text`` and move the file's mtime a second past the previous one (coarse clocks, fast tests)."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    later = before + 1_000_000_000
    os.utime(path, ns=(later, later))
    assert path.stat().st_mtime_ns != before


@pytest.fixture
def path(tmp_path: Path) -> Path:
    config = tmp_path / "orchestrate.yaml"
    config.write_text(CONFIG)
    return config


@pytest.fixture
def watched(path: Path) -> ConfigFile:
    return ConfigFile(load_config(path), path)


def test_group_resolves(watched: ConfigFile) -> None:
    group = watched.group("pg-prod")
    assert (group.name, group.namespace, group.rpo) == ("pg-prod", "pg-prod", timedelta(minutes=2))
    assert watched.group("pg-audit").replication.name == "audit"


def test_changed_group_is_picked_up(watched: ConfigFile, path: Path) -> None:
    assert watched.group("pg-prod").replication.name == "postgres"
    rewrite(path, CONFIG.replace("name: postgres\n    rpo: 2m", "name: postgres-v2\n    rpo: 7m"))
    group = watched.group("pg-prod")
    assert group.replication.name == "postgres-v2"
    assert group.rpo == timedelta(minutes=7)


def test_unchanged_mtime_is_not_reread(watched: ConfigFile, path: Path) -> None:
    stamp = path.stat().st_mtime_ns
    path.write_text(CONFIG.replace("rpo: 2m", "rpo: 9m"))
    os.utime(path, ns=(stamp, stamp))  # same mtime: ConfigFile has no reason to read it
    assert watched.group("pg-prod").rpo == timedelta(minutes=2)


def test_removed_group_is_not_configured_listing_the_known_ones(watched: ConfigFile, path: Path) -> None:
    watched.group("pg-audit")
    rewrite(path, CONFIG.split("  - name: pg-audit")[0])
    with pytest.raises(GroupNotConfiguredError) as error:
        watched.group("pg-audit")
    assert "unknown group 'pg-audit'" in str(error.value)
    assert "known groups: pg-prod" in str(error.value)
    assert "in this worker's configuration" in str(error.value)
    assert not error.value.retryable
    assert watched.group("pg-prod").name == "pg-prod"


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(CONFIG.replace("    rpo: 2m", "    rpo: [2m"), id="invalid-yaml"),
        pytest.param(CONFIG.replace("backend: csi-addons", "backend: ceph", 1), id="invalid-field"),
    ],
)
def test_broken_edit_keeps_the_previous_configuration(
    watched: ConfigFile, path: Path, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = watched.current()
    caplog.set_level(logging.ERROR, logger="orchestrate.worker")
    rewrite(path, broken)
    assert watched.current() is before
    assert watched.group("pg-prod").rpo == timedelta(minutes=2)
    assert watched.group("pg-audit").name == "pg-audit"
    assert any("configuration edit ignored" in r.getMessage() for r in caplog.records)
    # a later good edit is taken
    rewrite(path, CONFIG.replace("rpo: 2m", "rpo: 4m"))
    assert watched.group("pg-prod").rpo == timedelta(minutes=4)


def test_without_a_path_it_never_rereads(path: Path) -> None:
    fixed = ConfigFile(load_config(path))
    rewrite(path, CONFIG.split("  - name: pg-audit")[0].replace("rpo: 2m", "rpo: 8m"))
    assert fixed.group("pg-prod").rpo == timedelta(minutes=2)
    assert fixed.group("pg-audit").name == "pg-audit"


def test_deleted_file_keeps_the_last_configuration(watched: ConfigFile, path: Path) -> None:
    path.unlink()
    assert watched.group("pg-prod").rpo == timedelta(minutes=2)
