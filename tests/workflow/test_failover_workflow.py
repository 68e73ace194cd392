"""Workflow tier: the group failover workflow against activity fakes on a real Temporal dev server.

Covers the planned path, compensation (permanent demote failure, final sync past its timeout, permanent promote
failure, abort during the final-sync wait), a sync point transferred to the target before its promotion (and a
failed transfer compensated with no promotion), approval (approve and its validator), refusal by preflight with no
write, retries recorded in progress, failures after the point of no return (needs attention, no rollback), and the
unplanned path with fence-on-return (and its refusal when the source answers). Every scenario checks the invariants
the fake world records.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from adapters.base import Role, SyncPoint
from tests.workflow.conftest import Scenario
from tests.workflow.fake_world import FakeWorld
from workflows.failover import GroupFailoverWorkflow, GroupFenceWorkflow
from workflows.groups import StepTimeouts
from workflows.models import FailoverResult, Operation, Outcome, Phase


@pytest_asyncio.fixture()
async def world_and_queue(scenario: Scenario) -> tuple[FakeWorld, str]:
    return scenario.world, scenario.task_queue


async def start(
    client: Client, world: FakeWorld, task_queue: str, **overrides: object
) -> WorkflowHandle[GroupFailoverWorkflow, FailoverResult]:
    return await Scenario(client, world, task_queue).start(**overrides)


def client_of(env: WorkflowEnvironment) -> Client:
    return env.client


async def test_planned_failover_moves_primary_and_workloads(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    handle = await start(temporal_env.client, world, task_queue)
    result = await handle.result()

    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert result.progress.phase is Phase.RELOCATED
    assert (result.progress.source, result.progress.target) == ("dc1", "dc2")
    assert world.sides["dc2"].role is Role.PRIMARY and world.sides["dc2"].replicas == 1
    assert world.sides["dc1"].role is Role.SECONDARY and world.sides["dc1"].replicas == 0
    order = [c for c in world.calls if not c.startswith(("observe", "preflight", "reprotect-"))]
    assert order[:7] == [
        "stop_workloads:dc1",
        "wait_volumes_released:dc1",
        "prepare_sync_point:dc1",
        "demote:dc1",
        "wait_final_sync:dc1",
        "promote:dc2",
        "wait_promoted:dc2",
    ]
    # After the promotion the application starts on dc2 while dc1 is reprotected: two chains, each in order.
    after = order[7:]
    assert sorted(after) == sorted(
        ["start_workloads:dc2", "wait_workloads_ready:dc2", "reprotect:dc1", "wait_resync:dc1"]
    )
    assert after.index("start_workloads:dc2") < after.index("wait_workloads_ready:dc2")
    assert after.index("reprotect:dc1") < after.index("wait_resync:dc1")
    assert "reprotect-resync=False" in world.calls
    steps = {s.name: s for s in result.progress.steps}
    assert steps["wait for final sync"].outcome == "done"
    assert all(s.ended is not None for s in result.progress.steps)


@pytest.mark.parametrize(
    ("fault", "step"),
    [("demote", "demote"), ("wait_final_sync", "wait for final sync"), ("promote", "promote")],
)
async def test_permanent_failure_before_promotion_is_compensated(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str], fault: str, step: str
) -> None:
    world, task_queue = world_and_queue
    cluster = "dc2" if fault == "promote" else "dc1"
    world.fail(fault, cluster=cluster, message=f"{fault} failed for good (condition: FailedToDemote)")
    result = await (await start(temporal_env.client, world, task_queue)).result()

    assert result.outcome is Outcome.FAILED_COMPENSATED
    assert result.progress.phase is Phase.FAILED_COMPENSATED
    assert f"step '{step}'" in result.message and "failed for good" in result.message
    assert world.sides["dc1"].role is Role.PRIMARY and world.sides["dc1"].replicas == 1
    assert world.sides["dc2"].role is Role.SECONDARY and world.sides["dc2"].replicas == 0
    assert "restart workloads on dc1" in result.progress.compensated


async def test_a_sync_point_is_transferred_to_the_target_before_its_promotion(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    world.sync_point = SyncPoint(snapshot_handles={"data": "trident_pvc_1/data-failover-1"})
    result = await (await start(temporal_env.client, world, task_queue)).result()

    assert result.outcome is Outcome.SUCCEEDED, result.message
    order = [c for c in world.calls if c.split(":")[0] in ("wait_final_sync", "transfer_sync_point", "promote")]
    assert order == ["wait_final_sync:dc1", "transfer_sync_point:dc2", "promote:dc2"]
    assert world.transferred == [world.sync_point]
    transfer = next(request for name, request in world.wait_inputs if name == "transfer_sync_point")
    assert transfer.deadline is not None and transfer.timeout == world.group().timeouts.final_sync


async def test_a_failed_transfer_is_compensated_without_a_promotion(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    world.sync_point = SyncPoint(snapshot_handles={"data": "trident_pvc_1/data-failover-1"})
    world.fail("transfer_sync_point", cluster="dc2", message="mirror update Failed: snapshot was not transferred")
    result = await (await start(temporal_env.client, world, task_queue)).result()

    assert result.outcome is Outcome.FAILED_COMPENSATED
    assert "step 'transfer sync point' on dc2 failed" in result.message
    assert not any(call.startswith("promote:dc2") for call in world.calls)
    assert result.progress.compensated == ("re-promote dc1", "restart workloads on dc1")
    assert world.sides["dc1"].role is Role.PRIMARY and world.sides["dc1"].replicas == 1


async def test_final_sync_past_its_timeout_is_compensated(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    world.stall_final_sync = True
    result = await (await start(temporal_env.client, world, task_queue)).result()

    assert result.outcome is Outcome.FAILED_COMPENSATED
    assert "final sync complete: not reached within 2s" in result.message
    assert result.progress.compensated == ("re-promote dc1", "restart workloads on dc1")
    assert world.sides["dc1"].role is Role.PRIMARY and world.sides["dc1"].replicas == 1


async def test_abort_during_final_sync_compensates(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    world.stall_final_sync = True
    world.groups[world.group_name] = world.group().model_copy(
        update={"timeouts": StepTimeouts(final_sync=timedelta(seconds=60))}
    )
    handle = await start(temporal_env.client, world, task_queue)
    await asyncio.wait_for(world.final_sync_started.wait(), timeout=30)
    with pytest.raises(WorkflowUpdateFailedError):  # nothing waits for approval
        await handle.execute_update(GroupFailoverWorkflow.approve, "mallory")
    answer = await handle.execute_update(GroupFailoverWorkflow.abort, "alice")
    assert "abort requested by alice" in answer
    result = await handle.result()

    assert result.outcome is Outcome.FAILED_COMPENSATED
    assert result.progress.phase is Phase.ABORTED
    assert result.progress.aborted_by == "alice"
    assert world.sides["dc1"].role is Role.PRIMARY and world.sides["dc1"].replicas == 1


async def test_abort_is_refused_after_the_target_is_promoted(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    world.stall_start = asyncio.Event()
    handle = await start(temporal_env.client, world, task_queue)
    await asyncio.wait_for(world.start_waiting.wait(), timeout=30)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(GroupFailoverWorkflow.abort, "bob")
    assert "too late to abort" in str(refused.value.cause)
    world.stall_start.set()
    assert (await handle.result()).outcome is Outcome.SUCCEEDED


async def test_approval_gates_the_operation(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    handle = await start(temporal_env.client, world, task_queue, approval_required=True)
    for _ in range(100):
        progress = await handle.query(GroupFailoverWorkflow.progress)
        if progress.approval_pending:
            break
        await asyncio.sleep(0.05)
    assert progress.phase is Phase.WAITING_FOR_APPROVAL
    assert not any(c.startswith(("stop_workloads", "demote")) for c in world.calls)

    assert await handle.execute_update(GroupFailoverWorkflow.approve, "carol") == "approved by carol"
    result = await handle.result()
    assert result.outcome is Outcome.SUCCEEDED
    assert result.progress.approved_by == "carol"


async def test_refused_preflight_changes_nothing(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    world.fail("refuse", times=0)
    result = await (await start(temporal_env.client, world, task_queue)).result()

    assert result.outcome is Outcome.REFUSED
    assert "lag within RPO: last sync 900s ago (RPO 300s) (pass --force)" in result.message
    assert world.calls == ["observe_roles", "preflight"]


async def test_dry_run_stops_after_preflight(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    result = await (await start(temporal_env.client, world, task_queue, dry_run=True)).result()
    assert result.outcome is Outcome.DRY_RUN
    assert world.calls == ["observe_roles", "preflight"]


async def test_retryable_errors_are_retried_and_recorded(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    world.fail("demote", times=2, retryable=True, error_type="ConflictError", message="conflict on write")
    result = await (await start(temporal_env.client, world, task_queue)).result()

    assert result.outcome is Outcome.SUCCEEDED
    demote = next(s for s in result.progress.steps if s.name == "demote")
    assert demote.attempts == 3
    assert demote.last_error is not None and "conflict on write" in demote.last_error


async def test_failure_after_promotion_needs_attention_without_rollback(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    world.fail("wait_workloads_ready", message="postgres 0/1 ready")
    result = await (await start(temporal_env.client, world, task_queue)).result()

    assert result.outcome is Outcome.NEEDS_ATTENTION
    assert "dc2 is Primary and holds the data" in result.message
    assert world.sides["dc2"].role is Role.PRIMARY
    assert world.sides["dc1"].role is Role.SECONDARY
    assert result.progress.compensated == ()


async def test_a_reprotect_failing_alongside_the_start_leaves_the_application_running(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    world.fail("wait_resync", message="dc1 did not resync")
    result = await (await start(temporal_env.client, world, task_queue)).result()

    assert result.outcome is Outcome.NEEDS_ATTENTION
    assert "dc2 is Primary and holds the data" in result.message and "dc1 did not resync" in result.message
    assert result.progress.left_to_do == ("reprotect",)
    assert world.sides["dc2"].role is Role.PRIMARY and world.sides["dc2"].replicas == 1
    assert result.progress.compensated == ()


async def test_a_start_and_a_reprotect_both_failing_are_both_named(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    world.fail("wait_workloads_ready", message="postgres 0/1 ready")
    world.fail("wait_resync", message="dc1 did not resync")
    result = await (await start(temporal_env.client, world, task_queue)).result()

    assert result.outcome is Outcome.NEEDS_ATTENTION
    assert "postgres 0/1 ready" in result.message and "dc1 did not resync" in result.message
    assert set(result.progress.left_to_do) == {"start workloads", "post-hooks", "reprotect"}
    assert world.sides["dc1"].role is Role.SECONDARY and world.sides["dc1"].replicas == 0


async def test_unplanned_failover_fences_the_old_primary_on_return(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    world.sides["dc1"].reachable = False
    world.returns_after_probes = 3
    result = await (await start(temporal_env.client, world, task_queue, operation=Operation.UNPLANNED)).result()

    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert result.progress.phase is Phase.FAILED_OVER
    assert result.progress.fence_workflow == f"fence/{world.group_name}"
    assert world.sides["dc2"].role is Role.PRIMARY and world.sides["dc2"].replicas == 1
    fence = await temporal_env.client.get_workflow_handle_for(
        GroupFenceWorkflow.run, f"fence/{world.group_name}"
    ).result()
    assert fence.stage == "fenced", fence.message
    assert world.sides["dc1"].role is Role.SECONDARY and world.sides["dc1"].replicas == 0
    assert world.calls.count("check_reachable:dc1") == 3
    assert "reprotect-resync=True" in world.calls
    assert result.progress.data_loss_window_seconds is None  # the fake reports no sync time on the target


async def test_unplanned_refused_when_source_answers(
    temporal_env: WorkflowEnvironment, world_and_queue: tuple[FakeWorld, str]
) -> None:
    world, task_queue = world_and_queue
    result = await (await start(temporal_env.client, world, task_queue, operation=Operation.UNPLANNED)).result()
    # dc1 answers: preflight refuses the unplanned failover (not forced) and suggests a planned one.
    assert result.outcome is Outcome.REFUSED
    assert "dc1 lost: dc1 answers" in result.message and "planned failover" in result.message
    assert world.calls == ["observe_roles", "preflight"]
