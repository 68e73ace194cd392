"""The site-failover scenarios' lab: twelve demo groups (the five named, then the backends in turn) in tiers 10, 20, 30.

It replaces the e2e package's five-group lab for the tests of this folder only (``full_lab`` of the same name);
the fixtures of tests/e2e/conftest.py (``home``, ``sampler_for``) act on whichever lab is in use.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import FullLab, running_full_lab

SITE_GROUPS = 12


@pytest.fixture(scope="package")
def full_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullLab]:
    """Twelve demo groups, Primary on dc1."""
    yield from running_full_lab(tmp_path_factory.mktemp("e2e-site-lab"), demo_groups=SITE_GROUPS)
