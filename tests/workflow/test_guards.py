"""Workflow tier: what the worker and the workflows enforce whatever a client sends, and the review's safety fixes.

Covers: the group's approval policy applies even when the client does not ask for approval; a fence started with
sides that are not the group's two clusters refuses to act; the fence starts before the promote is requested (a
returning old primary is guarded during a promote that hangs) and ends "not needed" only once the failover
abandoned the promotion; a forced unplanned failover of a Trident group (no demote: the source stays promoted until
reestablished) does not wait for the source to report Secondary; a quiesce that fails half-way is undone.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from adapters.base import Backend, Role
from tests.workflow.conftest import Scenario, eventually, result_of
from tests.workflow.test_fence import fence_state, lose_dc1
from workflows.failover import GroupFenceWorkflow
from workflows.groups import ApprovalPolicy, ReplicationConfig
from workflows.models import FenceRequest, Operation, Outcome, Phase


async def test_the_groups_approval_policy_applies_whatever_the_client_asks(scenario: Scenario) -> None:
    scenario.configure(approval=ApprovalPolicy(planned=True, timeout=timedelta(seconds=1)))
    result = await scenario.run(approval_required=False)

    assert result.outcome is Outcome.REFUSED, result.message
    assert "not approved within" in result.message
    assert not [c for c in scenario.world.calls if c.startswith(("stop_workloads", "demote", "promote"))]


async def test_a_fence_with_sides_that_are_not_the_groups_refuses_to_act(scenario: Scenario) -> None:
    handle = await scenario.client.start_workflow(
        GroupFenceWorkflow.run,
        FenceRequest(group=scenario.group, old_primary="dc1", new_primary="dc9"),
        id=f"fence/{scenario.group}",
        task_queue=scenario.task_queue,
        execution_timeout=timedelta(seconds=30),
    )
    state = await result_of(handle)

    assert (state.stage, state.done) == ("refused", True), state.message
    assert "are not the two clusters" in state.message
    assert not [c for c in scenario.world.calls if c.startswith(("stop_workloads", "reprotect"))]


async def test_the_fence_guards_the_old_primary_while_the_promote_hangs(scenario: Scenario) -> None:
    world = scenario.world
    lose_dc1(scenario)
    world.promote_gate = asyncio.Event()
    handle = await scenario.start(operation=Operation.UNPLANNED)
    await asyncio.wait_for(world.promote_started.wait(), timeout=10)

    # The promote is in flight; the fence already runs and reports the old side as not yet answering.
    state = await eventually(lambda: fence_state(scenario), lambda s: s.probes >= 1)
    assert state.stage == "waiting" and not state.done
    # dc1 answers again while dc2 is still Secondary: "not promoted yet" is no reason to end the fence.
    world.sides["dc1"].reachable = True
    await asyncio.sleep(0.5)
    assert not (await fence_state(scenario)).done
    world.sides["dc1"].reachable = False
    world.promote_gate.set()

    result = await result_of(handle)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    world.returns_after_probes = 1
    state = await result_of(scenario.fence())
    assert state.stage == "fenced", state.message
    assert world.sides["dc1"].role is Role.SECONDARY and world.sides["dc1"].replicas == 0


async def test_a_forced_unplanned_failover_of_a_trident_group_does_not_wait_for_a_demote(scenario: Scenario) -> None:
    scenario.configure(backend=Backend.TRIDENT, replication=ReplicationConfig(pvcs=("data-postgres-0",)))
    result = await scenario.run(operation=Operation.UNPLANNED, force=True)

    assert result.outcome is Outcome.SUCCEEDED, result.message
    calls = scenario.world.calls
    assert "wait_secondary:dc1" not in calls
    assert calls.index("demote:dc1") < calls.index("promote:dc2")
    # Reestablished before the application starts.
    assert calls.index("reprotect:dc1") < calls.index("start_workloads:dc2")


async def test_a_quiesce_that_fails_half_way_is_undone(scenario: Scenario) -> None:
    scenario.world.fail("stop_workloads", cluster="dc1", message="scale subresource refused (condition: Forbidden)")
    result = await scenario.run()

    assert result.outcome is Outcome.FAILED_COMPENSATED, result.message
    assert result.progress.phase is Phase.FAILED_COMPENSATED
    assert result.progress.compensated == ("restart workloads on dc1",)
    assert "start_workloads:dc1" in scenario.world.calls
