"""Unit: the arithmetic behind the overhead benchmark's figures (``benchmarks.failover_overhead``).

The benchmark splits a failover's overhead into the time outside the waits (the orchestration's own) and the time
inside them; waits that overlap (the application starting while the old side is reprotected) count once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from benchmarks.failover_overhead import percentile, time_waiting
from workflows.models import StepRecord

ORIGIN = datetime(2026, 12, 1, tzinfo=UTC)


def step(name: str, start: float, end: float | None) -> StepRecord:
    return StepRecord(
        name=name,
        started=ORIGIN + timedelta(seconds=start),
        ended=None if end is None else ORIGIN + timedelta(seconds=end),
    )


def test_overlapping_waits_count_once_and_short_steps_not_at_all() -> None:
    steps = [
        step("stop workloads", 0.0, 0.01),
        step("wait for volumes released", 0.01, 0.26),
        step("promote", 0.26, 0.27),
        step("wait for workloads ready", 0.28, 0.40),
        step("wait for resync", 0.29, 0.35),  # inside the previous wait
        step("wait for nothing", 0.38, 0.45),  # overlaps its end
    ]
    assert abs(time_waiting(steps) - (0.25 + 0.17)) < 1e-9


def test_unfinished_steps_are_left_out() -> None:
    assert time_waiting([step("wait for final sync", 0.0, None)]) == 0.0


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.95) == 19.0
    assert percentile(values, 0.5) == 10.0
    assert percentile([3.0], 0.95) == 3.0
