"""``orchestrate approve`` and ``orchestrate abort``: answer a running operation through its validated updates."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from orchestrate.commands.common import (
    ConfigOption,
    GroupOption,
    JsonOption,
    client_or_exit,
    config_or_exit,
    group_or_exit,
    run,
)
from orchestrate.exit_codes import ExitCode
from orchestrate.output import console, emit_json, fail
from orchestrate.service import workflow_id
from workflows.failover import GroupFailoverWorkflow

ByOption = Annotated[str | None, typer.Option("--by", help="Who answers (default: the current user).")]


def approve(
    group: GroupOption, by: ByOption = None, as_json: JsonOption = False, config_path: ConfigOption = None
) -> None:
    """Let GROUP's operation that waits for approval go on."""
    _answer(group, "approve", by, as_json, config_path)


def abort(
    group: GroupOption, by: ByOption = None, as_json: JsonOption = False, config_path: ConfigOption = None
) -> None:
    """Stop GROUP's running operation and undo what it did (only before the target's promotion)."""
    _answer(group, "abort", by, as_json, config_path)


def _answer(group_name: str, verb: str, by: str | None, as_json: bool, config_path: ConfigOption) -> None:
    config = config_or_exit(config_path, as_json=as_json)
    group = group_or_exit(config, group_name, as_json=as_json)
    who = by or f"cli:{getpass.getuser()}"

    async def send() -> str:
        client = await client_or_exit(config, as_json=as_json)
        handle = client.get_workflow_handle_for(GroupFailoverWorkflow.run, workflow_id(group.name))
        update = GroupFailoverWorkflow.approve if verb == "approve" else GroupFailoverWorkflow.abort
        try:
            return await handle.execute_update(update, who)
        except WorkflowUpdateFailedError as refused:
            reason = refused.cause.message if refused.cause else str(refused)  # type: ignore[attr-defined]
            fail(f"{verb} refused: {reason}", ExitCode.REFUSED, as_json=as_json)
        except RPCError as error:
            fail(
                f"no running operation on {group.name} ({error.message})",
                ExitCode.REFUSED,
                as_json=as_json,
                hint=f"`orchestrate status --group {group.name}` shows the group",
            )

    answer = run(send())
    if as_json:
        emit_json({"group": group.name, "action": verb, "answer": answer})
    else:
        console.print(answer)
