"""Unit: the arithmetic behind the benchmarks' figures (``benchmarks.failover_overhead``, ``benchmarks.site_failover``).

The overhead benchmark splits a failover's overhead into the time outside the waits (the orchestration's own) and
the time inside them; waits that overlap (the application starting while the old side is reprotected) count once.
The site benchmark splits each group's time into before its child started, the child's start, in steps, between
steps and after, and adds up how long its tasks sat in Temporal's queues.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
    WorkflowTaskStartedEventAttributes,
)
from temporalio.client import WorkflowHistory

from benchmarks.failover_overhead import percentile, time_waiting
from benchmarks.site_failover import time_queued, where_the_time_goes
from workflows.models import StepRecord
from workflows.site.models import SiteGroupProgress, SitePhase, SiteProgress

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


def at(seconds: float) -> datetime:
    return ORIGIN + timedelta(seconds=seconds)


def test_a_site_groups_time_is_split_before_during_and_after_its_steps() -> None:
    progress = SiteProgress(
        site="dc1",
        phase=SitePhase.ENDED,
        message="",
        started=at(0.0),
        groups=(
            SiteGroupProgress(
                group="pg", backend="csi-addons", tier=1, source="dc1", target="dc2", started=at(1.0), ended=at(5.0)
            ),
        ),
    )
    steps = (step("stop workloads", 1.5, 2.0), step("wait for a", 2.5, 3.5), step("wait for b", 3.0, 4.0))
    parts = where_the_time_goes(progress, {"pg": steps})
    assert parts == {
        "before child": [1.0],
        "child start": [0.5],
        "in steps": [2.0],
        "between steps": [0.5],
        "after": [1.0],
    }


def _event(event_id: int, kind: int, seconds: float, scheduled: int = 0) -> HistoryEvent:
    time = Timestamp()
    time.FromDatetime(at(seconds))
    event = HistoryEvent(event_id=event_id, event_type=kind, event_time=time)
    if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
        event.workflow_task_started_event_attributes.CopyFrom(
            WorkflowTaskStartedEventAttributes(scheduled_event_id=scheduled)
        )
    elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
        event.activity_task_started_event_attributes.CopyFrom(
            ActivityTaskStartedEventAttributes(scheduled_event_id=scheduled)
        )
    return event


def test_queued_time_is_scheduled_to_started_per_kind_of_task() -> None:
    events = [
        _event(1, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 0.0),
        _event(2, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, 0.25, scheduled=1),
        _event(3, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, 0.3),
        _event(4, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 0.4),
        _event(5, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED, 0.5, scheduled=3),
        _event(6, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, 0.9, scheduled=4),
    ]
    queued = time_queued(WorkflowHistory("failover/pg", events))
    assert abs(queued["workflow tasks"] - 0.75) < 1e-9
    assert abs(queued["activity tasks"] - 0.2) < 1e-9
