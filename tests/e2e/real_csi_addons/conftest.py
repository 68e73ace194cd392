"""The real csi-addons scenarios' lab: pg-prod only, its VGR driven by the upstream csi-addons manager and sidecar.

It replaces the e2e package's four-group lab for the tests of this folder only (``full_lab`` of the same name);
the storage simulator serves the csi-addons driver socket of each cluster and writes no VR/VGR status.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import FullLab, running_full_lab


@pytest.fixture(scope="package")
def full_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullLab]:
    """pg-prod on the real csi-addons controllers, Primary on dc1."""
    yield from running_full_lab(tmp_path_factory.mktemp("e2e-csi-addons-lab"), demo_groups=1, real_csi_addons=True)
