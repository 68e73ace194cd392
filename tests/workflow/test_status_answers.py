"""Workflow tier: what ``status`` and the busy refusal read from Temporal always comes back, and from the right run.

Covers: a completed operation is read from the run that was described even when a new operation of the group
started in between (the CI hang: "the result" of the id's newest run waited for that run to end); a query that no
worker answers (the worker stopped after the workflow's first task, or none ever polled) ends at its deadline with
a ``NoAnswerError`` that says what Temporal knows, and ``status``'s operation entry and the busy refusal are built
from it instead of waiting; an abort that no worker takes ends at its deadline too, and still takes effect once a
worker returns (what the CLI's "not confirmed" message says).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from temporalio.service import RPCError, RPCStatusCode

from orchestrate import queries, service
from orchestrate.commands import status
from orchestrate.queries import NoAnswerError, ask, tell
from tests.workflow.conftest import Scenario, eventually, result_of
from workflows.failover import GroupFailoverWorkflow
from workflows.models import FailoverResult, Outcome, Phase, Progress

ANSWERED_WITHIN = 8.0
"""Seconds a call made here may take before the test calls it a hang (the deadline in use is 1 s)."""


@pytest.fixture(autouse=True)
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "ANSWER_TIMEOUT", timedelta(seconds=1))


async def test_a_completed_operation_is_read_from_its_own_run_while_a_new_one_runs(scenario: Scenario) -> None:
    first = await scenario.run()
    assert first.outcome is Outcome.SUCCEEDED, first.message
    described = await scenario.client.get_workflow_handle(scenario.workflow_id).describe()
    second = await scenario.start(operation="failback", approval_required=True)  # waits for an approval
    try:
        state = await asyncio.wait_for(service.operation_state(scenario.client, described), ANSWERED_WITHIN)
        assert isinstance(state, FailoverResult) and state.outcome is Outcome.SUCCEEDED
        assert state.message == first.message

        now = await asyncio.wait_for(service.last_operation(scenario.client, scenario.group), ANSWERED_WITHIN)
        assert now is not None and now[0].run_id == second.result_run_id
        assert isinstance(now[1], Progress)  # the new run's progress (its phase may still be Preflight)
    finally:
        await second.execute_update(GroupFailoverWorkflow.abort, "test")
        await result_of(second)


async def test_a_query_after_the_worker_stopped_ends_at_its_deadline_and_says_why(idle_scenario: Scenario) -> None:
    async with idle_scenario.worker():
        handle = await idle_scenario.start(approval_required=True)
        await eventually(
            lambda: ask(handle, GroupFailoverWorkflow.progress), lambda p: p.phase is Phase.WAITING_FOR_APPROVAL
        )

    began = time.monotonic()
    with pytest.raises(NoAnswerError) as silent:
        await asyncio.wait_for(ask(handle, GroupFailoverWorkflow.progress), ANSWERED_WITHIN)
    assert time.monotonic() - began < ANSWERED_WITHIN
    assert silent.value.workflow_id == idle_scenario.workflow_id
    assert f"{idle_scenario.workflow_id} did not answer" in str(silent.value)
    assert "is `orchestrate worker` running" in str(silent.value)

    entry = await asyncio.wait_for(
        status._operation_entry(idle_scenario.client, idle_scenario.group), 3 * ANSWERED_WITHIN
    )
    assert entry is not None and entry["status"] == "RUNNING" and entry["answered"] is False
    assert "did not answer" in entry["message"]

    with pytest.raises(NoAnswerError):
        await asyncio.wait_for(service.running_progress(idle_scenario.client, idle_scenario.group), ANSWERED_WITHIN)
    busy = service.GroupBusyError(idle_scenario.group, silent.value)
    assert "did not say what it does" in str(busy) and busy.progress is None

    with pytest.raises(NoAnswerError, match="did not answer within 1 s"):  # an abort nobody takes
        await asyncio.wait_for(tell(handle, GroupFailoverWorkflow.abort, "unanswered"), ANSWERED_WITHIN)

    async with idle_scenario.worker():  # a worker again: Temporal hands it the abort it kept, which takes effect
        aborted = await result_of(handle)
    assert aborted.progress.phase is Phase.ABORTED
    assert aborted.progress.aborted_by == "unanswered"


async def test_a_query_refused_for_a_full_query_buffer_is_unanswered(idle_scenario: Scenario) -> None:
    # While no worker takes the workflow's tasks Temporal buffers few queries (one by default) and refuses the
    # others at once with RESOURCE_EXHAUSTED ("consistent query buffer is full"): `status` polled during a worker
    # outage exited 1 with it, as if Temporal were down. It is an unanswered query, and Temporal is asked what it
    # knows of the workflow as for any other.
    handle = await idle_scenario.start()  # no worker polls the scenario's task queue

    class RefusingHandle:
        id = handle.id

        async def query(self, *args: object, **kwargs: object) -> None:
            raise RPCError("consistent query buffer is full", RPCStatusCode.RESOURCE_EXHAUSTED, b"")

        async def describe(self, **kwargs: object) -> object:
            return await handle.describe()

    try:
        with pytest.raises(NoAnswerError) as silent:
            await asyncio.wait_for(ask(RefusingHandle(), GroupFailoverWorkflow.progress), ANSWERED_WITHIN)
        assert "(Temporal: consistent query buffer is full)" in str(silent.value)
        assert "for a worker" in str(silent.value)  # what Temporal said of the workflow's task
    finally:
        await handle.terminate("test over")


async def test_a_workflow_no_worker_ever_took_says_its_task_waits_for_one(idle_scenario: Scenario) -> None:
    handle = await idle_scenario.start()  # no worker polls the scenario's task queue
    try:
        with pytest.raises(NoAnswerError) as silent:
            await asyncio.wait_for(ask(handle, GroupFailoverWorkflow.progress), ANSWERED_WITHIN)
        assert "its workflow task has waited" in str(silent.value) and "for a worker" in str(silent.value)
    finally:
        await handle.terminate("test over")
