"""Workflow tier: the site failover's orchestration (tiers, bounded parallelism, joins, refusals, abort, summary).

The children here are a stand-in registered as ``GroupFailover``: each sleeps, reports its application started to
its parent by the same signal the real group operation sends, and ends with the outcome the test chose. What a
group operation does is covered by the other modules of this tier; the real children run in the e2e tier.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity, workflow
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.failover import operation_id
from workflows.models import (
    ALERT_SIGNAL,
    GROUP_REPORT_SIGNAL,
    AlertNote,
    FailoverRequest,
    FailoverResult,
    GroupReport,
    Operation,
    Outcome,
    Phase,
    Progress,
)
from workflows.site import SiteFailoverWorkflow
from workflows.site.models import (
    GroupsInput,
    GroupState,
    JoinInput,
    OperationsReport,
    PlannedGroup,
    SiteFailoverRequest,
    SiteFailoverResult,
    SiteInput,
    SitePlan,
    SkippedGroup,
)

EVENTS: dict[str, list[tuple[str, str]]] = {}
"""Per test run (keyed by the run's tag): (event, group) in the order they happened."""
BEHAVIOUR: dict[str, dict[str, Any]] = {}
"""Per test run: each group's stand-in behaviour (``start``/``rest`` seconds, ``outcome``)."""


def _tag(group: str) -> str:
    return group.split("-", 1)[0]


@activity.defn(name="record_event")
async def record_event(event: str, group: str) -> None:
    EVENTS.setdefault(_tag(group), []).append((event, group))


@workflow.defn(name="GroupFailover", sandboxed=False)
class StandInGroupFailover:
    """Sleeps ``start`` s, reports its application started, sleeps ``rest`` s, ends with ``outcome``."""

    @workflow.run
    async def run(self, request: FailoverRequest) -> FailoverResult:
        behaviour = BEHAVIOUR[_tag(request.group)].get(request.group, {})
        timeout = timedelta(seconds=10)
        await workflow.execute_activity(record_event, args=["start", request.group], start_to_close_timeout=timeout)
        if request.alert is not None:
            handed = f"alert {request.alert.alertname}, approval {request.approval_required}"
            await workflow.execute_activity(record_event, args=[handed, request.group], start_to_close_timeout=timeout)
        await workflow.sleep(behaviour.get("start", 0.2))
        outcome = behaviour.get("outcome", Outcome.SUCCEEDED)
        parent = workflow.info().parent
        if outcome is Outcome.SUCCEEDED and parent is not None:
            await workflow.execute_activity(
                record_event, args=["app-started", request.group], start_to_close_timeout=timeout
            )
            report = GroupReport(group=request.group, phase=Phase.REPROTECTING, message="", application_started=True)
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(GROUP_REPORT_SIGNAL, report)
        await workflow.sleep(behaviour.get("rest", 0.2))
        await workflow.execute_activity(record_event, args=["end", request.group], start_to_close_timeout=timeout)
        phase = Phase.RELOCATED if outcome is Outcome.SUCCEEDED else Phase.NEEDS_ATTENTION
        if request.dry_run:
            outcome, phase = Outcome.DRY_RUN, Phase.DRY_RUN
        progress = Progress(
            group=request.group,
            operation=request.operation,
            source="dc1",
            target=request.target,
            phase=phase,
            message="",
        )
        return FailoverResult(outcome=outcome, message=f"{request.group}: {outcome.value}", progress=progress)


@dataclass
class SiteWorld:
    """The site as the stand-in activities report it."""

    tag: str
    plan: SitePlan
    operations: OperationsReport = field(default_factory=OperationsReport)
    joined: list[str] = field(default_factory=list)

    def activities(self) -> list[Any]:
        world = self

        @activity.defn(name="plan_site")
        async def plan_site(request: SiteInput) -> SitePlan:
            return world.plan

        @activity.defn(name="group_operations")
        async def group_operations(request: GroupsInput) -> OperationsReport:
            return world.operations

        @activity.defn(name="wait_group_operation")
        async def wait_group_operation(request: JoinInput) -> FailoverResult:
            world.joined.append(request.group)
            progress = Progress(
                group=request.group,
                operation=Operation.PLANNED,
                source="dc1",
                target="dc2",
                phase=Phase.RELOCATED,
                message="",
            )
            return FailoverResult(outcome=Outcome.SUCCEEDED, message="the other one", progress=progress)

        return [plan_site, group_operations, wait_group_operation, record_event]

    def events(self) -> list[tuple[str, str]]:
        return EVENTS.get(self.tag, [])


def _group(tag: str, name: str, priority: int, *, source_answers: bool = True) -> PlannedGroup:
    return PlannedGroup(
        group=f"{tag}-{name}",
        backend="csi-addons",
        priority=priority,
        source="dc1",
        target="dc2",
        source_answers=source_answers,
    )


@pytest_asyncio.fixture()
async def site(temporal_env: WorkflowEnvironment) -> AsyncIterator[Any]:
    """Make a site world and run a site failover against it with a worker of its own."""
    task_queue = f"site-{uuid.uuid4().hex[:8]}"
    tag = uuid.uuid4().hex[:8]
    made: list[Worker] = []
    running: list[asyncio.Task[None]] = []

    async def start(
        groups: list[tuple[str, int]],
        *,
        behaviour: dict[str, dict[str, Any]] | None = None,
        site_answers: bool = True,
        skipped: tuple[SkippedGroup, ...] = (),
        operations: OperationsReport | None = None,
        **request: Any,
    ) -> tuple[SiteWorld, WorkflowHandle[SiteFailoverWorkflow, SiteFailoverResult]]:
        plan = SitePlan(
            site="dc1",
            clusters=("dc1",),
            site_answers=site_answers,
            groups=tuple(_group(tag, n, p, source_answers=site_answers) for n, p in groups),
            skipped=skipped,
        )
        world = SiteWorld(tag=tag, plan=plan, operations=operations or OperationsReport())
        BEHAVIOUR[tag] = {f"{tag}-{k}": v for k, v in (behaviour or {}).items()}
        worker = Worker(
            temporal_env.client,
            task_queue=task_queue,
            workflows=[SiteFailoverWorkflow, StandInGroupFailover],
            activities=world.activities(),
        )
        made.append(worker)
        running.append(asyncio.create_task(worker.run()))
        handle = await temporal_env.client.start_workflow(
            SiteFailoverWorkflow.run,
            SiteFailoverRequest(site="dc1", **request),
            id=f"site-failover/dc1-{tag}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=60),
        )
        return world, handle

    start.tag = tag  # type: ignore[attr-defined]
    yield start
    for worker in made:
        await worker.shutdown()
    EVENTS.pop(tag, None)
    BEHAVIOUR.pop(tag, None)


def _index(events: list[tuple[str, str]], event: str, group: str) -> int:
    return events.index((event, group))


async def test_tiers_start_after_the_previous_tier_has_its_applications_started(site: Any) -> None:
    world, handle = await site(
        [("db-a", 1), ("db-b", 1), ("app", 2), ("web", 3)],
        behaviour={"db-a": {"start": 0.2, "rest": 2.0}, "db-b": {"start": 0.6, "rest": 2.0}},
    )
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    events, tag = world.events(), world.tag
    tier_1_started = max(_index(events, "app-started", f"{tag}-db-a"), _index(events, "app-started", f"{tag}-db-b"))
    assert _index(events, "start", f"{tag}-app") > tier_1_started
    assert _index(events, "start", f"{tag}-web") > _index(events, "app-started", f"{tag}-app")
    # The next tier did not wait for the previous one's end (its reprotect): the milestone is the application.
    assert _index(events, "start", f"{tag}-app") < _index(events, "end", f"{tag}-db-a")
    assert result.progress.tiers == (1, 2, 3)
    assert {g.outcome for g in result.progress.groups} == {Outcome.SUCCEEDED}
    assert result.progress.operation is Operation.PLANNED
    assert "4 succeeded" in result.message


async def test_at_most_parallel_groups_of_a_tier_move_at_once(site: Any) -> None:
    names = [f"g{i}" for i in range(5)]
    world, handle = await site([(n, 1) for n in names], parallel=2)
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    in_flight = most = 0
    for event, _ in world.events():
        if event == "start":
            in_flight += 1
        elif event == "app-started":
            in_flight -= 1
        most = max(most, in_flight)
    assert most == 2


async def test_a_busy_group_is_joined_not_started_twice(site: Any) -> None:
    tag = site.tag
    world, handle = await site([("busy", 1), ("free", 1)], operations=OperationsReport(busy=(f"{tag}-busy",)))
    result = await asyncio.wait_for(handle.result(), 30)
    assert world.joined == [f"{tag}-busy"]
    assert ("start", f"{tag}-busy") not in world.events()
    assert ("start", f"{tag}-free") in world.events()
    assert result.outcome is Outcome.SUCCEEDED


async def test_a_group_with_a_pending_fence_is_not_moved_and_the_site_says_so(site: Any) -> None:
    tag = site.tag
    world, handle = await site(
        [("fenced", 1), ("free", 1)], operations=OperationsReport(fence_pending=(f"{tag}-fenced",))
    )
    result = await asyncio.wait_for(handle.result(), 30)
    entry = next(g for g in result.progress.groups if g.group == f"{tag}-fenced")
    assert entry.state is GroupState.NOT_STARTED and entry.outcome is Outcome.REFUSED
    assert "not fenced yet" in entry.message
    assert ("start", f"{tag}-fenced") not in world.events()
    assert result.outcome is Outcome.REFUSED


async def test_planned_failover_of_a_site_that_does_not_answer_is_refused(site: Any) -> None:
    world, handle = await site([("a", 1)], site_answers=False, operation=Operation.PLANNED)
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.outcome is Outcome.REFUSED
    assert "--unplanned" in result.message
    assert world.events() == []


async def test_the_site_state_chooses_unplanned_when_it_does_not_answer(site: Any) -> None:
    _, handle = await site([("a", 1)], site_answers=False)
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.progress.operation is Operation.UNPLANNED
    assert result.outcome is Outcome.SUCCEEDED


async def test_abort_starts_no_more_groups(site: Any) -> None:
    tag = site.tag
    world, handle = await site(
        [("first", 1), ("second", 2), ("third", 3)], behaviour={"first": {"start": 1.5, "rest": 0.2}}
    )
    for _ in range(100):
        if ("start", f"{tag}-first") in world.events():
            break
        await asyncio.sleep(0.05)
    running = await handle.execute_update(SiteFailoverWorkflow.abort, "cli:test")
    assert running == [f"{tag}-first"]
    result = await asyncio.wait_for(handle.result(), 30)
    states = {g.group: g.state for g in result.progress.groups}
    assert states[f"{tag}-second"] is GroupState.NOT_STARTED and states[f"{tag}-third"] is GroupState.NOT_STARTED
    assert ("start", f"{tag}-second") not in world.events()
    assert result.progress.aborted_by == "cli:test"
    with pytest.raises(Exception, match="already"):
        await handle.execute_update(SiteFailoverWorkflow.abort, "cli:late")


async def test_one_group_needing_attention_makes_the_site_need_attention(site: Any) -> None:
    tag = site.tag
    _, handle = await site([("bad", 1), ("good", 1)], behaviour={"bad": {"outcome": Outcome.NEEDS_ATTENTION}})
    result = await asyncio.wait_for(handle.result(), 30)
    outcomes = {g.group: g.outcome for g in result.progress.groups}
    assert outcomes == {f"{tag}-bad": Outcome.NEEDS_ATTENTION, f"{tag}-good": Outcome.SUCCEEDED}
    assert result.outcome is Outcome.NEEDS_ATTENTION
    assert "1 needs-attention" in result.message and "1 succeeded" in result.message


async def test_nothing_to_move_succeeds_unless_a_group_needs_attention(site: Any) -> None:
    _, handle = await site([], skipped=(SkippedGroup(group="x", reason="its primary is already dc2"),))
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.outcome is Outcome.SUCCEEDED and "nothing to move" in result.message


async def test_dry_run_runs_every_group_as_a_dry_run(site: Any) -> None:
    _, handle = await site([("a", 1), ("b", 2)], dry_run=True)
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.outcome is Outcome.DRY_RUN
    assert {g.outcome for g in result.progress.groups} == {Outcome.DRY_RUN}
    assert result.message.startswith("dry run of the site failover")


async def test_an_alert_started_site_failover_hands_approval_and_the_alert_to_every_group(site: Any) -> None:
    note = AlertNote(alertname="DatacenterDown", fingerprint="f1", status="firing", rule="dc1-dark")
    world, handle = await site(
        [("a", 1), ("b", 2)], approval_required=True, alert=note, triggered_by="alertmanager:DatacenterDown"
    )
    await handle.signal(ALERT_SIGNAL, note.model_copy(update={"status": "resolved"}))
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.outcome is Outcome.SUCCEEDED
    handed = [group for event, group in world.events() if event == "alert DatacenterDown, approval True"]
    assert sorted(handed) == [f"{site.tag}-a", f"{site.tag}-b"]
    assert [a.status for a in result.progress.alerts] == ["firing", "resolved"]
    assert result.progress.triggered_by == "alertmanager:DatacenterDown"


def test_child_ids_are_the_group_operation_ids() -> None:
    assert operation_id("pg-prod") == "failover/pg-prod"
