"""The real csi-addons scenarios' lab: pg-prod (a VGR) and redis-prod (a single-volume VR), on the upstream controllers.

It replaces the e2e package's five-group lab for the tests of this folder only (``full_lab`` of the same name);
the storage simulator serves the csi-addons driver socket of each cluster and writes no VR/VGR status. The shared
failure scenarios run on both groups (``scenario_group``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import FullLab, running_full_lab

GROUPS = ("pg-prod", "redis-prod")
"""The VolumeGroupReplication group and the single-volume VolumeReplication group."""


@pytest.fixture(scope="package")
def full_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullLab]:
    """pg-prod and redis-prod on the real csi-addons controllers, Primary on dc1."""
    yield from running_full_lab(tmp_path_factory.mktemp("e2e-csi-addons-lab"), demo_only=GROUPS, real_csi_addons=True)


@pytest.fixture(params=GROUPS)
def scenario_group(request: pytest.FixtureRequest) -> str:
    """Each failure scenario on the VGR group and on the single-volume VR group."""
    group: str = request.param
    return group
