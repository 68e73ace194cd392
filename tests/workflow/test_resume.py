"""Workflow tier: ``resume``, which finishes an operation that ended "needs attention" from fresh observations.

Covers: a planned failover whose post-hook fails for good ends with dc2 Primary and the application there, and a
resume (a new ``failover/<group>`` run with operation resume) once the hook is fixed runs the post-hooks again and
reprotects dc1 without resync; resume refuses with two primaries (the old one awaits its fence); resume with
``fence_pending`` leaves the old side to the fence (no reprotect); an operation records where it leaves the
Primary (``leaves_primary_on``), and a resume after an undo that failed before the promotion restarts the
application on the source instead of refusing; on PowerStore, whose demote also promotes the peer, that undo
leaves the Primary on either side and resume starts the application where the array put it.
"""

from __future__ import annotations

from adapters.base import Backend, Role
from orchestrate import service
from tests.workflow.conftest import Scenario, hooks
from workflows.groups import ReplicationConfig
from workflows.models import Operation, Outcome, Phase


async def test_resume_finishes_a_planned_failover_whose_post_hook_failed(scenario: Scenario) -> None:
    world = scenario.world
    scenario.configure(hooks=hooks(post=("dns",)))
    world.fail("hook-dns", message="dns switch refused")
    first = await scenario.run()

    assert first.outcome is Outcome.NEEDS_ATTENTION, first.message
    assert first.progress.phase is Phase.NEEDS_ATTENTION
    assert "dc2 is Primary and holds the data" in first.message and "orchestrate resume" in first.message
    # dc1 was reprotected while the application started: only the post-hook is left.
    assert first.progress.left_to_do == ("post-hooks",)
    assert world.sides["dc2"].role is Role.PRIMARY and world.sides["dc2"].replicas == 1
    assert world.sides["dc1"].replicas == 0
    assert "wait_resync:dc1" in world.calls

    world.failures.pop("hook-dns")  # the operator fixed the DNS API
    before = len(world.calls)
    resumed = await scenario.run(operation=Operation.RESUME)

    assert resumed.outcome is Outcome.SUCCEEDED, resumed.message
    assert resumed.progress.phase is Phase.RESUMED
    assert (resumed.progress.source, resumed.progress.target) == ("dc1", "dc2")
    calls = world.calls[before:]
    assert "promote:dc2" not in calls and "demote:dc1" not in calls
    assert calls.index("stop_workloads:dc1") < calls.index("start_workloads:dc2")
    assert "reprotect:dc1" in calls and "reprotect-resync=False" in calls and "wait_resync:dc1" in calls
    keys = [h.idempotency_key for h in world.hook_calls]
    assert len(keys) == 2 and keys[0] != keys[1]  # a new operation: the hook is called with a new key
    assert world.sides["dc1"].role is Role.SECONDARY and world.sides["dc1"].replicas == 0
    assert world.sides["dc2"].role is Role.PRIMARY and world.sides["dc2"].replicas == 1


async def test_resume_refuses_two_primaries(scenario: Scenario) -> None:
    world = scenario.world
    # An unplanned failover promoted dc2; dc1 came back Primary before its fence got to it.
    world.sides["dc2"].role, world.sides["dc2"].replicas = Role.PRIMARY, 1
    world.awaiting_fence.add("dc1")
    result = await scenario.run(operation=Operation.RESUME, fence_pending=True, expected_primary="dc2")

    assert result.outcome is Outcome.REFUSED, result.message
    assert "resume needs exactly one Primary" in result.message and "not fenced yet" in result.message
    assert world.calls == ["observe_roles"]


async def test_resume_refuses_a_primary_other_than_the_expected_one(scenario: Scenario) -> None:
    world = scenario.world
    # An unplanned failover promoted dc2 and failed at a post-hook; dc1 returned Primary while dc2 cannot be read:
    # only dc1 is observed Primary. Resume must not take it for the target.
    world.sides["dc2"].role, world.sides["dc2"].replicas = Role.PRIMARY, 1
    world.sides["dc2"].reachable = False
    world.awaiting_fence.add("dc1")
    result = await scenario.run(operation=Operation.RESUME, fence_pending=True, expected_primary="dc2")

    assert result.outcome is Outcome.REFUSED, result.message
    assert "resume expected dc2 as the Primary" in result.message
    assert world.calls == ["observe_roles"]
    world.sides["dc2"].reachable = True


async def test_resume_with_a_pending_fence_skips_the_reprotect(scenario: Scenario) -> None:
    world = scenario.world
    # dc2 was promoted and holds the data, but its application never started; dc1 answers (Secondary).
    world.sides["dc1"].role, world.sides["dc1"].replicas = Role.SECONDARY, 0
    world.sides["dc2"].role = Role.PRIMARY
    result = await scenario.run(operation=Operation.RESUME, fence_pending=True)

    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert result.progress.phase is Phase.RESUMED
    assert f"left to the fence (fence/{scenario.group})" in result.message
    assert not any(c.startswith("reprotect") or c.startswith("wait_resync") for c in world.calls)
    assert "stop_workloads:dc1" in world.calls  # the application never runs on both sites
    assert world.sides["dc2"].replicas == 1 and world.sides["dc1"].replicas == 0


async def test_resume_after_a_failed_undo_before_the_promotion_restarts_the_source(scenario: Scenario) -> None:
    world = scenario.world
    # The quiesce fails and so does its undo (dc1's workloads do not come back): nothing was demoted or promoted.
    world.fail("wait_volumes_released", cluster="dc1", message="pod postgres-0 still uses data-0")
    world.fail("wait_workloads_ready", cluster="dc1", message="postgres not ready")
    first = await scenario.run()

    assert first.outcome is Outcome.NEEDS_ATTENTION, first.message
    assert "compensation stopped at restart workloads on dc1" in first.message
    assert f"orchestrate resume --group {scenario.group}" in first.message
    assert first.progress.leaves_primary_on == "dc1"
    expected = await service.expected_primary(scenario.client, scenario.group, None)
    assert expected == "dc1"

    world.failures.clear()  # the operator fixed dc1
    before = len(world.calls)
    resumed = await scenario.run(operation=Operation.RESUME, expected_primary=expected)

    assert resumed.outcome is Outcome.SUCCEEDED, resumed.message
    assert (resumed.progress.source, resumed.progress.target) == ("dc2", "dc1")
    assert resumed.message == f"{scenario.group} resumed on dc1, the Primary: the application runs there"
    calls = world.calls[before:]
    assert not any(c.startswith(("promote", "demote")) for c in calls)
    assert "start_workloads:dc1" in calls and "start_workloads:dc2" not in calls
    assert world.sides["dc1"].role is Role.PRIMARY and world.sides["dc1"].replicas == 1
    assert world.sides["dc2"].role is Role.SECONDARY and world.sides["dc2"].replicas == 0


async def test_an_operation_records_where_it_leaves_the_primary(scenario: Scenario) -> None:
    world = scenario.world
    world.fail("hook-dns", message="dns switch refused")
    scenario.configure(hooks=hooks(post=("dns",)))
    promoted = await scenario.run()
    assert promoted.outcome is Outcome.NEEDS_ATTENTION and promoted.progress.leaves_primary_on == "dc2"
    assert await service.expected_primary(scenario.client, scenario.group, None) == "dc2"


async def test_a_compensation_stopped_after_the_promotion_leaves_the_primary_on_either_side(scenario: Scenario) -> None:
    world = scenario.world
    world.fail("wait_promoted", cluster="dc2", message="promotion not confirmed")
    world.fail("reprotect", cluster="dc2", message="cannot return to Secondary")
    result = await scenario.run()

    assert result.outcome is Outcome.NEEDS_ATTENTION, result.message
    assert result.progress.leaves_primary_on is None
    assert await service.expected_primary(scenario.client, scenario.group, None) is None


async def test_a_powerstore_demote_may_leave_the_primary_on_either_side(scenario: Scenario) -> None:
    world = scenario.world
    # FAILOVER_REMOTE demotes dc1 and promotes dc2 in one array action that the replicator keeps retrying: the
    # final-sync wait gives up, the re-promote of dc1 is refused while the action runs, and later the array
    # finishes the failover on its own. Resume must then start the application on dc2, the one Primary.
    scenario.configure(backend=Backend.POWERSTORE, replication=ReplicationConfig(name="rg-pg-prod"))
    world.fail("wait_final_sync", cluster="dc1", message="FAILOVER_REMOTE still in progress")
    world.fail("promote", cluster="dc1", message="FAILOVER_REMOTE is requested on this RG")
    first = await scenario.run()

    assert first.outcome is Outcome.NEEDS_ATTENTION, first.message
    assert "compensation stopped at re-promote dc1" in first.message
    assert first.progress.leaves_primary_on is None
    expected = await service.expected_primary(scenario.client, scenario.group, None)
    assert expected is None

    # While the action runs, dc1's RG still says isSource: resume must not start the application there.
    world.failures.clear()
    world.sides["dc1"].role, world.sides["dc1"].settling = Role.PRIMARY, "FAILOVER_REMOTE_IN_PROGRESS"
    early = await scenario.run(operation=Operation.RESUME, expected_primary=expected)
    assert early.outcome is Outcome.REFUSED, early.message
    assert "dc1 reports Primary but the storage has not completed its last request there" in early.message
    assert world.sides["dc1"].replicas == 0 and world.sides["dc2"].replicas == 0

    world.sides["dc1"].role, world.sides["dc1"].settling = Role.SECONDARY, None
    world.sides["dc2"].role = Role.PRIMARY  # the array finished FAILOVER_REMOTE
    resumed = await scenario.run(operation=Operation.RESUME, expected_primary=expected)

    assert resumed.outcome is Outcome.SUCCEEDED, resumed.message
    assert (resumed.progress.source, resumed.progress.target) == ("dc1", "dc2")
    assert world.sides["dc2"].replicas == 1 and world.sides["dc1"].replicas == 0
