"""Workflow tier: the safety rules of DESIGN.md section 2, scenario by scenario against the fake world.

Covers compensation (an undo that fails stops it and the source is never re-promoted while the target may still be
Primary; the normal undo order; abort refused once the promotion was sent), decisions taken on fresh observations
(approval, then a preflight that sees the lost site answering; approval timeout), the forced unplanned failover of
a source that answers (stopped and demoted first, restarted when its demotion fails), hooks and waits across
retries (one idempotency key, one deadline), abort during a retry back-off, and never wedging (preflight or role
observation failing, an unknown group, abort during approval, a worker shut down while a wait runs).
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from adapters.base import Role
from tests.workflow.conftest import Scenario, eventually, hooks, result_of
from workflows.failover import GroupFailoverWorkflow
from workflows.groups import ApprovalPolicy
from workflows.models import FailoverResult, Operation, Outcome, Phase, Progress

READS = ("observe_roles", "preflight")


def writes(calls: list[str]) -> list[str]:
    """The calls that are not observations."""
    return [c for c in calls if not c.startswith(READS)]


async def progress_of(handle: WorkflowHandle[GroupFailoverWorkflow, FailoverResult]) -> Progress:
    return await handle.query(GroupFailoverWorkflow.progress)


# ------------------------------------------------------------------------------------------------ compensation


async def test_failed_return_to_secondary_stops_compensation_and_never_repromotes(scenario: Scenario) -> None:
    world = scenario.world
    world.fail("wait_promoted", cluster="dc2", message="dc2 never reported Primary")
    world.fail("reprotect", cluster="dc2", message="dc2 rejects the reprotect")
    result = await scenario.run()

    assert result.outcome is Outcome.NEEDS_ATTENTION, result.message
    assert result.progress.phase is Phase.NEEDS_ATTENTION
    assert "promote:dc1" not in world.calls
    assert "compensation stopped at return dc2 to Secondary" in result.message
    assert "dc2 rejects the reprotect" in result.message
    assert result.progress.left_to_do == ("return dc2 to Secondary", "re-promote dc1", "restart workloads on dc1")
    assert "still to undo: return dc2 to Secondary, re-promote dc1, restart workloads on dc1" in result.message
    assert result.progress.compensated == ()
    assert world.sides["dc1"].role is Role.SECONDARY and world.sides["dc1"].replicas == 0


async def test_target_that_stays_primary_blocks_the_repromotion(scenario: Scenario) -> None:
    world = scenario.world
    world.fail("wait_promoted", cluster="dc2", message="dc2 never reported Primary")
    world.ignore_reprotect = {"dc2"}
    result = await scenario.run()

    assert result.outcome is Outcome.NEEDS_ATTENTION, result.message
    assert "reprotect:dc2" in world.calls and "wait_secondary:dc2" in world.calls
    assert "promote:dc1" not in world.calls
    assert "step 'wait for Secondary' on dc2 failed" in result.message and "still Primary" in result.message
    assert result.progress.left_to_do[0] == "return dc2 to Secondary"
    assert world.sides["dc2"].role is Role.PRIMARY and world.sides["dc1"].role is Role.SECONDARY


async def test_compensation_returns_the_target_to_secondary_before_repromoting(scenario: Scenario) -> None:
    world = scenario.world
    world.fail("wait_promoted", cluster="dc2", message="dc2 never reported Primary")
    world.secondary_lags = 3  # the target takes a moment to report Secondary
    result = await scenario.run()

    assert result.outcome is Outcome.FAILED_COMPENSATED, result.message
    assert result.progress.compensated == ("return dc2 to Secondary", "re-promote dc1", "restart workloads on dc1")
    undo = world.calls[world.calls.index("wait_promoted:dc2") + 1 :]
    assert [c for c in undo if not c.startswith("reprotect-")] == [
        "reprotect:dc2",
        "wait_secondary:dc2",
        "promote:dc1",
        "wait_promoted:dc1",
        "start_workloads:dc1",
        "wait_workloads_ready:dc1",
    ]
    assert world.sides["dc1"].role is Role.PRIMARY and world.sides["dc1"].replicas == 1
    assert world.sides["dc2"].role is Role.SECONDARY and world.sides["dc2"].replicas == 0


async def test_abort_is_refused_while_the_promote_is_in_flight(scenario: Scenario) -> None:
    world = scenario.world
    world.promote_gate = asyncio.Event()
    handle = await scenario.start()
    await asyncio.wait_for(world.promote_started.wait(), timeout=10)

    # The promote is a local activity: the workflow task stays open while it runs, so the update is only answered
    # once it returns (or the task heartbeats, ~8 s each). Send the abort while it holds, then let it go.
    abort = asyncio.ensure_future(handle.execute_update(GroupFailoverWorkflow.abort, "dave"))
    await asyncio.sleep(1.0)
    assert not abort.done() and "promote:dc2" in world.calls and "wait_promoted:dc2" not in world.calls
    world.promote_gate.set()
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await asyncio.wait_for(abort, timeout=10)
    assert "too late to abort" in str(refused.value.cause)

    result = await result_of(handle)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert result.progress.aborted_by is None and result.progress.compensated == ()
    assert world.sides["dc2"].role is Role.PRIMARY and world.sides["dc2"].replicas == 1


# ------------------------------------------------------------------------------------------------ fresh decisions


async def test_approved_unplanned_is_refused_when_the_lost_site_answers_again(scenario: Scenario) -> None:
    world = scenario.world
    world.sides["dc1"].reachable = False
    handle = await scenario.start(operation=Operation.UNPLANNED, approval_required=True)
    waiting = await eventually(lambda: progress_of(handle), lambda p: p.approval_pending)
    assert waiting.phase is Phase.WAITING_FOR_APPROVAL and (waiting.source, waiting.target) == ("dc1", "dc2")

    world.sides["dc1"].reachable = True  # the "lost" site was only partitioned for a while
    assert await handle.execute_update(GroupFailoverWorkflow.approve, "erin") == "approved by erin"
    result = await result_of(handle)

    assert result.outcome is Outcome.REFUSED, result.message
    assert "after approval" in result.message and "dc1 lost: dc1 answers" in result.message
    assert writes(world.calls) == []
    assert world.sides["dc1"].role is Role.PRIMARY and world.sides["dc2"].role is Role.SECONDARY


async def test_approval_timeout_refuses_without_writes(scenario: Scenario) -> None:
    world = scenario.world
    scenario.configure(approval=ApprovalPolicy(timeout=timedelta(seconds=1)))
    started = time.monotonic()
    result = await scenario.run(approval_required=True)

    assert result.outcome is Outcome.REFUSED, result.message
    assert "not approved within 0:00:01" in result.message and "nothing was changed" in result.message
    assert time.monotonic() - started < 10
    assert world.calls == ["observe_roles", "preflight"]
    assert not result.progress.approval_pending


# ------------------------------------------------------------------------------------------------ forced unplanned


async def test_forced_unplanned_stops_and_demotes_the_answering_source_first(scenario: Scenario) -> None:
    world = scenario.world
    result = await scenario.run(operation=Operation.UNPLANNED, force=True)

    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert result.progress.fence_workflow is None  # the source answered: it is demoted now, no fence needed
    first = [c for c in world.calls if not c.startswith(READS)][:5]
    assert first == [
        "stop_workloads:dc1",
        "wait_volumes_released:dc1",
        "demote:dc1",
        "wait_secondary:dc1",
        "promote:dc2",
    ]
    assert "reprotect-resync=True" in world.calls
    assert world.sides["dc1"].role is Role.SECONDARY and world.sides["dc1"].replicas == 0
    assert world.sides["dc2"].role is Role.PRIMARY and world.sides["dc2"].replicas == 1


async def test_forced_unplanned_restarts_the_source_when_its_demotion_fails(scenario: Scenario) -> None:
    world = scenario.world
    world.fail("demote", cluster="dc1", message="demote rejected")
    result = await scenario.run(operation=Operation.UNPLANNED, force=True)

    assert result.outcome is Outcome.FAILED_COMPENSATED, result.message
    assert "step 'demote' on dc1 failed: [cluster dc1] demote rejected" in result.message
    assert "promote:dc2" not in world.calls
    assert "restart workloads on dc1" in result.progress.compensated
    assert world.calls.index("start_workloads:dc1") > world.calls.index("demote:dc1")
    assert world.sides["dc1"].role is Role.PRIMARY and world.sides["dc1"].replicas == 1
    assert world.sides["dc2"].role is Role.SECONDARY and world.sides["dc2"].replicas == 0


# ------------------------------------------------------------------------------------------------ retries and abort


async def test_hook_retries_keep_one_idempotency_key(scenario: Scenario) -> None:
    world = scenario.world
    scenario.configure(hooks=hooks(pre=("notify",)))
    world.fail("hook-notify", times=2, retryable=True, error_type="HookFailedError", message="502 from notify")
    result = await scenario.run()

    assert result.outcome is Outcome.SUCCEEDED, result.message
    keys = [h.idempotency_key for h in world.hook_calls if h.hook_name == "notify"]
    assert len(keys) == 3 and len(set(keys)) == 1
    assert keys[0].startswith(f"{scenario.workflow_id}/") and keys[0].endswith("/pre-hook/notify")
    step = next(s for s in result.progress.steps if s.name == "pre-hook notify")
    assert step.attempts == 3 and step.last_error is not None and "502 from notify" in step.last_error


async def test_wait_retries_keep_one_deadline(scenario: Scenario) -> None:
    world = scenario.world
    world.fail("wait_final_sync", times=2, retryable=True, error_type="ApiError", message="apiserver 503")
    result = await scenario.run()

    assert result.outcome is Outcome.SUCCEEDED, result.message
    waits = [w for name, w in world.wait_inputs if name == "wait_final_sync"]
    assert len(waits) == 3
    assert {w.deadline for w in waits} == {waits[0].deadline} and waits[0].deadline is not None
    assert {w.timeout for w in waits} == {timedelta(seconds=2)}
    step = next(s for s in result.progress.steps if s.name == "wait for final sync")
    assert step.attempts == 3


async def test_abort_during_a_retry_backoff_takes_effect_at_once(scenario: Scenario) -> None:
    world = scenario.world
    world.fail("wait_volumes_released", cluster="dc1", times=None, retryable=True, message="volumes still attached")
    handle = await scenario.start()

    def backing_off(progress: Progress) -> bool:
        step = next((s for s in progress.steps if s.name == "wait for volumes released"), None)
        return step is not None and step.attempts >= 2 and step.detail.startswith("retrying in")

    await eventually(lambda: progress_of(handle), backing_off)  # the second pause: 2 s
    aborted = time.monotonic()
    await handle.execute_update(GroupFailoverWorkflow.abort, "frank")
    result = await result_of(handle)
    assert time.monotonic() - aborted < 3

    assert result.outcome is Outcome.FAILED_COMPENSATED, result.message
    assert result.progress.phase is Phase.ABORTED and result.progress.aborted_by == "frank"
    assert result.progress.compensated == ("restart workloads on dc1",)
    assert world.calls.count("wait_volumes_released:dc1") == 2
    assert "demote:dc1" not in world.calls
    assert world.sides["dc1"].role is Role.PRIMARY and world.sides["dc1"].replicas == 1


# ------------------------------------------------------------------------------------------------ never wedge


@pytest.mark.parametrize("fault", ["preflight", "observe_roles"])
async def test_a_failing_check_refuses_instead_of_wedging(scenario: Scenario, fault: str) -> None:
    world = scenario.world
    world.fail(fault, error_type="ApiError", message=f"{fault} broke")
    result = await scenario.run()

    assert result.outcome is Outcome.REFUSED, result.message
    assert result.progress.phase is Phase.REFUSED
    assert "could not check the group, nothing was changed" in result.message and f"{fault} broke" in result.message
    assert writes(world.calls) == []


async def test_an_unknown_group_is_refused(scenario: Scenario) -> None:
    result = await scenario.run(group="no-such-group")

    assert result.outcome is Outcome.REFUSED, result.message
    assert "unknown group 'no-such-group'" in result.message
    assert scenario.world.calls == []


async def test_abort_during_approval_ends_aborted(scenario: Scenario) -> None:
    world = scenario.world
    handle = await scenario.start(approval_required=True)
    await eventually(lambda: progress_of(handle), lambda p: p.approval_pending)
    answer = await handle.execute_update(GroupFailoverWorkflow.abort, "grace")
    assert "abort requested by grace" in answer
    result = await result_of(handle)

    assert result.outcome is Outcome.FAILED_COMPENSATED, result.message
    assert result.progress.phase is Phase.ABORTED and result.progress.aborted_by == "grace"
    assert not result.progress.approval_pending
    assert world.calls == ["observe_roles", "preflight"]


async def test_a_wait_survives_a_graceful_worker_shutdown(idle_scenario: Scenario) -> None:
    scenario, world = idle_scenario, idle_scenario.world
    scenario.configure(timeouts=world.group().timeouts.model_copy(update={"final_sync": timedelta(seconds=30)}))
    started, release = threading.Event(), threading.Event()
    overrides = {"wait_final_sync": world.sleeping_wait("wait_final_sync", started=started, release=release)}
    with ThreadPoolExecutor(max_workers=4) as executor:
        worker_a = scenario.worker(
            overrides=overrides, activity_executor=executor, graceful_shutdown_timeout=timedelta(milliseconds=300)
        )
        run_a = asyncio.ensure_future(worker_a.run())
        try:
            handle = await scenario.start()
            assert await asyncio.to_thread(started.wait, 10)
            await asyncio.wait_for(worker_a.shutdown(), timeout=10)
        finally:
            if not run_a.done():
                await worker_a.shutdown()
            await run_a
        release.set()  # the next attempt finds the final sync complete
        async with scenario.worker(overrides=overrides, activity_executor=executor):
            result = await result_of(handle, timeout=30)

    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert result.progress.compensated == ()
    step = next(s for s in result.progress.steps if s.name == "wait for final sync")
    assert step.attempts == 2, step
    assert step.last_error is not None and "shutting down" in step.last_error
    assert world.calls.count("wait_final_sync:dc1") == 2
