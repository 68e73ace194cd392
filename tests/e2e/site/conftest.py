"""The site-failover scenarios' lab: twelve demo groups (the five named, then the backends in turn) in tiers 10, 20, 30.

It replaces the e2e package's five-group lab for the tests of this folder only (``full_lab`` of the same name);
the fixtures of tests/e2e/conftest.py (``home``, ``sampler_for``) act on whichever lab is in use. ``groups`` names
every group with its tier, and ``sampling`` runs the invariant sampler on all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from tests.e2e.conftest import FullLab, running_full_lab

SITE_GROUPS = 12
SAMPLE_INTERVAL = 1.0
"""Once a second: twelve samplers at the default rate would load the 2-core machine more than the failover does."""


@pytest.fixture(scope="package")
def full_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullLab]:
    """Twelve demo groups, Primary on dc1."""
    yield from running_full_lab(tmp_path_factory.mktemp("e2e-site-lab"), demo_groups=SITE_GROUPS)


@pytest.fixture()
def groups(full_lab: FullLab) -> dict[str, int]:
    """Every group of the lab and its tier."""
    return {g.name: g.priority for g in full_lab.config.groups}


@contextmanager
def sampling(sampler_for: Any, groups: dict[str, int], allow_lost_primary: str | None = None) -> Iterator[None]:
    """The invariant sampler on every group for the block."""
    with ExitStack() as stack:
        for group in groups:
            stack.enter_context(sampler_for(group, allow_lost_primary=allow_lost_primary, interval=SAMPLE_INTERVAL))
        yield
