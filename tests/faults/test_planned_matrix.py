"""Fault matrix of the planned path: each backend x each step x each fault, through the real CLI in the lab.

Steps: quiesce, final sync, promotion, application start, reprotect (see :data:`scenario.STEPS`). Faults: the
worker SIGKILLed and restarted, the Temporal dev server SIGKILLed and restarted on its database, the source's and
the target's apiserver stopped for a few seconds, and a storage fault fitting the step (transient ones that the
backend retries, and permanent ones that end in compensation or in "needs attention" and ``resume``).

Every case must end in a state ``status`` explains, within :data:`scenario.END_TIMEOUT` (never wedged), with no
volume writable on two live sites (Trident's quiesced handover is measured apart), the application never on both
sites, and no acknowledged write lost. The matrix and its totals are printed at the end of the session.

``FAULT_GROUPS`` chooses the backends' demo groups (comma-separated, or ``all``); the default, which CI runs, is
pg-prod (csi-addons) alone: 25 cases. ``make faults`` runs all four groups (100 cases).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.e2e.conftest import FullLab
from tests.e2e.diagnosis import lab_diagnosis
from tests.faults.report import REPORT
from tests.faults.scenario import FAULTS, LATENCIES, STEPS, run_planned_case

ALL_GROUPS = ("pg-prod", "pg-unified", "pg-trident", "pg-powerstore")
BACKENDS = {"pg-prod": "csi-addons", "pg-unified": "unified", "pg-trident": "trident", "pg-powerstore": "powerstore"}


def _groups() -> tuple[str, ...]:
    chosen = os.environ.get("FAULT_GROUPS", "pg-prod")
    return ALL_GROUPS if chosen == "all" else tuple(g.strip() for g in chosen.split(",") if g.strip())


CASES = [(group, point, fault) for group in _groups() for point in STEPS for fault in FAULTS]


@pytest.fixture(scope="module")
def slow_steps(full_lab: FullLab) -> Any:
    """Stretch the simulator's step latencies for the module so that each fault lands inside its step."""
    before = full_lab.simulator.config()
    full_lab.simulator.configure(**LATENCIES)
    yield
    full_lab.simulator.configure(**{name: getattr(before, name) for name in LATENCIES})


@pytest.mark.parametrize(("group", "point", "fault"), CASES, ids=[f"{g}-{p}-{f}" for g, p, f in CASES])
def test_planned_case(
    full_lab: FullLab, slow_steps: Any, home: None, sampler_for: Any, group: str, point: str, fault: str
) -> None:
    sampler = sampler_for(group)
    outcome, lost = run_planned_case(full_lab, sampler, group, point, fault)
    REPORT.append(
        {
            "group": group,
            "backend": BACKENDS[group],
            "mode": "planned",
            "step": point,
            "fault": fault,
            "injected": outcome.injected,
            "outcome": outcome.outcome,
            "resumed": outcome.resumed,
            "max_writable": sampler.max_writable,
            "both_running": sampler.both_running_samples,
            "handover_seconds": sampler.handover_samples * sampler.interval,
            "lost": lost,
            "wedged": outcome.wedged,
            "explained": outcome.explained,
            "seconds": outcome.seconds,
            "status": outcome.status,
        }
    )
    assert not outcome.wedged, (
        f"the operation did not end within the timeout: {outcome.status}\n{lab_diagnosis(full_lab, group)}"
    )
    assert outcome.explained, outcome.status
    assert outcome.outcome in ("succeeded", "failed-compensated", "needs-attention"), outcome.message
    if outcome.outcome == "needs-attention":
        assert outcome.resumed, (
            f"resume did not finish the job: {outcome.status}\n{outcome.message}\n{lab_diagnosis(full_lab, group)}"
        )
    assert lost == 0
    assert sampler.max_writable <= 1
    # The sampler fixture also asserts no violation (two Primary replicas, the application on both sites).
