"""Fault tier fixtures: the e2e tier's full lab (worker process, real CLI, invariant sampler), and the matrix report.

Every case appends one row to :data:`REPORT`; at the end of the session the matrix is printed (and written as JSON
to ``$FAULTS_REPORT`` when set) with its totals: cases, outcomes, maximum simultaneous writable sides, pods on both
sites, writes lost in planned cases, wedged workflows, and Trident's measured handover window.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import full_lab, home, sampler_for  # noqa: F401  (the same lab, a package of its own)
from tests.faults.report import REPORT, render, totals


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fault matrix after the tests."""
    if not REPORT:
        return
    terminalreporter.write_line("")
    for line in render(REPORT):
        terminalreporter.write_line(line)
    target = os.environ.get("FAULTS_REPORT")
    if target:
        Path(target).write_text(json.dumps({"cases": REPORT, "totals": totals(REPORT)}, indent=2, default=str))


@pytest.fixture(scope="session")
def report() -> list[dict[str, Any]]:
    """The rows of the matrix."""
    return REPORT
