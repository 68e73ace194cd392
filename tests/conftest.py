"""Shared pytest configuration: the tiers live in tests/unit, tests/workflow, tests/lab, tests/e2e, tests/faults.

A failing test that used a full lab gets a "lab diagnosis" section in its report (dead lab processes, the group's
pods and VolumeAttachments on each cluster, the simulator's last warnings), read at the moment of the failure: a
failure seen only in CI leaves nothing else behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    full_lab = getattr(item, "funcargs", {}).get("full_lab")
    if not report.failed or full_lab is None:
        return
    from tests.e2e.diagnosis import lab_diagnosis  # only the lab tiers need it

    params = getattr(getattr(item, "callspec", None), "params", {})
    groups = [params["group"]] if isinstance(params.get("group"), str) else [g.name for g in full_lab.config.groups]
    try:
        text = lab_diagnosis(full_lab, *groups[:4])
    except Exception as exc:  # a diagnosis must never hide the failure it describes
        text = f"lab diagnosis failed: {exc!r}"
    report.sections.append((f"lab diagnosis ({report.when})", text))
