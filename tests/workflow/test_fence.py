"""Workflow tier: fence-on-return (``fence/<group>``), the durable workflow an unplanned failover leaves behind.

Covers: the fence outlives an operation that ends "needs attention" (post-hook failure) and, when the lost site
answers again, stops its workloads and reprotects it with resync; it starts even when the promotion or its wait
fails; it keeps probing across many failed probes and keeps retrying a failing reprotect until it succeeds; its
``state`` query while it waits and while it retries; it ends "not-needed" without touching the old site when the
target never became Primary; and it continues as new when its history grows, carrying its probes across runs.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from adapters.base import Role
from tests.workflow.conftest import Scenario, eventually, hooks, result_of
from workflows.failover import GroupFenceWorkflow
from workflows.failover import fence as fence_module
from workflows.models import FenceState, Operation, Outcome


def lose_dc1(scenario: Scenario) -> None:
    """dc1 (the primary, its application running) stops answering."""
    scenario.world.sides["dc1"].reachable = False


async def fence_state(scenario: Scenario) -> FenceState:
    return await scenario.fence().query(GroupFenceWorkflow.state)


def assert_fenced(scenario: Scenario, state: FenceState) -> None:
    """dc1 stopped, then reprotected with resync from dc2: Secondary, nothing running, no longer awaiting."""
    world = scenario.world
    assert state.stage == "fenced" and state.done, state.message
    assert world.sides["dc1"].role is Role.SECONDARY and world.sides["dc1"].replicas == 0
    assert world.sides["dc2"].role is Role.PRIMARY
    assert world.calls.index("stop_workloads:dc1") < world.calls.index("reprotect:dc1")
    last_reprotect = len(world.calls) - 1 - world.calls[::-1].index("reprotect:dc1")
    assert world.calls[last_reprotect + 1] == "reprotect-resync=True"
    assert "dc1" not in world.awaiting_fence


async def test_fence_outlives_a_failed_post_hook_and_fences_dc1_when_it_returns(scenario: Scenario) -> None:
    world = scenario.world
    scenario.configure(hooks=hooks(post=("dns",)))
    world.fail("hook-dns", message="dns switch refused")
    lose_dc1(scenario)
    result = await scenario.run(operation=Operation.UNPLANNED)

    assert result.outcome is Outcome.NEEDS_ATTENTION, result.message
    assert "post-hook dns" in result.message and "post-hooks" in result.progress.left_to_do
    assert result.progress.fence_workflow == f"fence/{scenario.group}"
    assert world.sides["dc2"].role is Role.PRIMARY and world.sides["dc2"].replicas == 1
    assert (await scenario.fence().describe()).status is WorkflowExecutionStatus.RUNNING
    assert "stop_workloads:dc1" not in world.calls

    world.sides["dc1"].reachable = True
    assert_fenced(scenario, await result_of(scenario.fence()))
    assert world.calls.count("reprotect:dc1") == 1


async def test_fence_keeps_probing_and_retries_a_failing_reprotect(scenario: Scenario) -> None:
    world = scenario.world
    lose_dc1(scenario)
    world.returns_after_probes = 30
    world.fail("reprotect", cluster="dc1", times=4, retryable=False, message="reprotect rejected")
    result = await scenario.run(
        operation=Operation.UNPLANNED,
        fence_poll_initial=timedelta(milliseconds=50),
        fence_poll_max=timedelta(milliseconds=100),
    )
    assert result.outcome is Outcome.SUCCEEDED, result.message

    state = await result_of(scenario.fence())
    assert_fenced(scenario, state)
    assert world.calls.count("check_reachable:dc1") == 30
    assert state.probes == 30
    assert world.calls.count("reprotect:dc1") == 5  # four rejected, the fifth accepted
    assert state.last_error is not None and "reprotect rejected" in state.last_error


async def test_fence_state_while_it_waits_and_while_it_retries(scenario: Scenario) -> None:
    world = scenario.world
    lose_dc1(scenario)
    result = await scenario.run(operation=Operation.UNPLANNED)
    assert result.outcome is Outcome.SUCCEEDED, result.message

    waiting = await eventually(lambda: fence_state(scenario), lambda s: s.probes >= 3)
    assert waiting.stage == "waiting" and not waiting.done
    assert waiting.old_primary == "dc1" and waiting.new_primary == "dc2"
    assert waiting.waiting_since is not None and waiting.next_probe_at is not None
    assert waiting.next_probe_at >= waiting.waiting_since
    assert "unreachable" in waiting.message
    assert waiting.last_error is None

    world.fail("reprotect", cluster="dc1", times=None, message="reprotect rejected")
    world.sides["dc1"].reachable = True
    retrying = await eventually(lambda: fence_state(scenario), lambda s: s.last_error is not None)
    assert retrying.stage == "reprotecting" and not retrying.done
    assert "reprotect rejected" in retrying.last_error and "retrying" in retrying.message
    assert retrying.next_probe_at is not None and retrying.probes >= waiting.probes
    assert world.sides["dc1"].replicas == 0  # stopped before the reprotect was tried

    world.failures.pop("reprotect:dc1")
    assert_fenced(scenario, await result_of(scenario.fence()))


async def test_fence_not_needed_when_dc2_never_became_primary(scenario: Scenario) -> None:
    world = scenario.world
    lose_dc1(scenario)
    world.fail("promote", cluster="dc2", message="promote rejected")
    result = await scenario.run(operation=Operation.UNPLANNED)

    assert result.outcome is Outcome.NEEDS_ATTENTION, result.message
    assert f"fence/{scenario.group} still guards dc1" in result.message
    assert world.sides["dc2"].role is Role.SECONDARY
    assert (await scenario.fence().describe()).status is WorkflowExecutionStatus.RUNNING

    world.sides["dc1"].reachable = True
    state = await result_of(scenario.fence())
    assert state.stage == "not-needed" and state.done, state.message
    assert "dc2 is not Primary" in state.message
    assert not any(c.endswith(":dc1") and not c.startswith("check_reachable") for c in world.calls)
    assert world.sides["dc1"].role is Role.PRIMARY and world.sides["dc1"].replicas == 1


async def test_fence_starts_even_when_wait_promoted_fails(scenario: Scenario) -> None:
    world = scenario.world
    lose_dc1(scenario)
    world.fail("wait_promoted", cluster="dc2", message="never reported Primary")
    result = await scenario.run(operation=Operation.UNPLANNED)

    assert result.outcome is Outcome.NEEDS_ATTENTION, result.message
    assert result.progress.fence_workflow == f"fence/{scenario.group}"
    assert (await scenario.fence().describe()).status is WorkflowExecutionStatus.RUNNING

    world.returns_after_probes = 2
    assert_fenced(scenario, await result_of(scenario.fence()))


async def test_fence_continues_as_new_carrying_its_probes(
    idle_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fence reads HISTORY_LIMIT at run time, but the workflow sandbox imports its own copy of the module: pass
    # the module through so that the patched limit is the one the fence sees.
    monkeypatch.setattr(fence_module, "HISTORY_LIMIT", 60)
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(fence_module.__name__)
    )
    scenario, world = idle_scenario, idle_scenario.world
    lose_dc1(scenario)
    async with scenario.worker(workflow_runner=runner):
        result = await scenario.run(
            operation=Operation.UNPLANNED,
            fence_poll_initial=timedelta(milliseconds=50),
            fence_poll_max=timedelta(milliseconds=50),
        )
        assert result.outcome is Outcome.SUCCEEDED, result.message
        earlier = (await scenario.fence().describe()).run_id

        await eventually(lambda: scenario.fence().describe(), lambda d: d.run_id != earlier, timeout=15)
        carried = await fence_state(scenario)
        history = await scenario.client.get_workflow_handle(scenario.fence().id, run_id=earlier).fetch_history()
        assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        # The new run goes on counting from the probes of the runs before it (one local-activity marker each, besides
        # the first run's check of its sides: a resolve_group marker and the patch marker).
        markers = sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED)
        earlier_probes = markers - 2
        assert carried.stage == "waiting"
        assert earlier_probes <= carried.probes <= world.calls.count("check_reachable:dc1")

        world.sides["dc1"].reachable = True
        state = await result_of(scenario.fence())
    assert_fenced(scenario, state)
    assert state.probes == world.calls.count("check_reachable:dc1")  # every probe of every run
    assert state.waiting_since == carried.waiting_since
