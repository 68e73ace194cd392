"""The real Dell scenarios' lab: pg-powerstore alone, its RG made and driven by upstream csm-replication.

It replaces the e2e package's lab for the tests of this folder only (``full_lab`` of the same name); the storage
simulator serves each cluster's PowerStore replication driver socket and writes no DellCSIReplicationGroup.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import FullLab, running_full_lab


@pytest.fixture(scope="package")
def full_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullLab]:
    """pg-powerstore on the real Dell replication controller and replicator, Primary on dc1."""
    # Only the group these tests drive: the other demo groups would only add start-up time and load.
    yield from running_full_lab(tmp_path_factory.mktemp("e2e-dell-lab"), real_dell=True, demo_only=("pg-powerstore",))


@pytest.fixture()
def scenario_group() -> str:
    """The shared failure scenarios imported here (the worker crash) run on pg-powerstore."""
    return "pg-powerstore"
