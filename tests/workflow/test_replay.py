"""Replay of recorded workflow histories: CI fails a change that would break workflows already running.

Every file in ``tests/workflow/histories/`` (written by ``tests/workflow/record_histories.py``) is a closed
history of a production workflow: GroupFailover planned (with and without hooks), unplanned, compensated after a
demote and after a promote failure, aborted during the final sync, approved, started by an alert (alerts joining
by signal), refused, needs attention and resumed;
the GroupFence an unplanned failover starts; a GroupMonitor cancelled after a few observations; and a
SiteFailover of one group with its child GroupFailover (which reports its phase to the parent by signal). Each is
replayed with the worker's workflows and data converter; a nondeterminism error (the code now issues other
commands than the history recorded) fails the test named after the file. A last test proves the check can fail:
the planned history against a GroupFailover whose first command differs.

The rule: a change to the order or kind of commands a workflow issues (activities, local activities, timers,
child workflows, search-attribute upserts, continue-as-new) needs ``workflow.patched("<id>")`` around the new
code, so that old histories take the old branch, or a new workflow type. The recorded histories are re-recorded
only together with such a gate, never to make a failing replay pass.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from workflows.failover import GroupFailoverWorkflow, GroupFenceWorkflow
from workflows.models import FailoverRequest, FailoverResult
from workflows.monitor import GroupMonitorWorkflow
from workflows.site import SiteFailoverWorkflow

HISTORIES = Path(__file__).parent / "histories"
FILES = sorted(HISTORIES.glob("*.json"))
REQUIRED = ("planned", "unplanned", "fence", "compensated", "aborted", "resume", "monitor", "site")
"""Each must appear in at least one file's name."""


def load(path: Path) -> WorkflowHistory:
    document = json.loads(path.read_text())
    return WorkflowHistory.from_json(document["workflowId"], document)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=[GroupFailoverWorkflow, GroupFenceWorkflow, GroupMonitorWorkflow, SiteFailoverWorkflow],
        data_converter=pydantic_data_converter,
    )
    history = load(path)
    try:
        await replayer.replay_workflow(history)
    except Exception as error:
        pytest.fail(
            f"{path.name} ({history.workflow_id}) no longer replays: {type(error).__name__}: {error}\n"
            "Gate the changed commands with workflow.patched(...) (or use a new workflow type); do not "
            "re-record the history to make this pass.",
            pytrace=False,
        )


def test_histories_cover_the_paths() -> None:
    names = [p.stem for p in FILES]
    missing = [r for r in REQUIRED if not any(r in n for n in names)]
    assert not missing, f"no recorded history for {missing} in {HISTORIES} (have {names})"


@workflow.defn(name="GroupFailover")
class ChangedFailoverWorkflow:
    """GroupFailover as an incompatible change would leave it: a timer where the history has a local activity."""

    @workflow.run
    async def run(self, request: FailoverRequest) -> FailoverResult:
        await workflow.sleep(timedelta(seconds=1))
        raise RuntimeError(f"not reached on replay of {request.group}")


async def test_a_changed_command_sequence_fails_replay() -> None:
    replayer = Replayer(
        workflows=[ChangedFailoverWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),  # the class lives in this test module
    )
    with pytest.raises(Exception) as raised:
        await replayer.replay_workflow(load(HISTORIES / "planned.json"))
    error = raised.value
    assert isinstance(error, workflow.NondeterminismError) or "nondetermin" in str(error).lower(), repr(error)
