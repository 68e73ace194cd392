"""``orchestrate approve`` and ``orchestrate abort``: answer a running operation through its validated updates."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from orchestrate.commands.common import (
    ConfigOption,
    JsonOption,
    OptionalGroupOption,
    SiteOption,
    client_or_exit,
    config_or_exit,
    group_or_exit,
    run,
)
from orchestrate.commands.site import answer_site
from orchestrate.exit_codes import ExitCode
from orchestrate.output import console, emit_json, fail
from orchestrate.queries import NoAnswerError, tell
from orchestrate.service import workflow_id
from workflows.failover import GroupFailoverWorkflow

ByOption = Annotated[str | None, typer.Option("--by", help="Who answers (default: the current user).")]


def approve(
    group: OptionalGroupOption = None,
    site: SiteOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """Let GROUP's operation that waits for approval go on.

    With --site: every group of SITE's failover that waits for approval (with --group too: that one).
    """
    who = by or f"cli:{getpass.getuser()}"
    if site is not None:
        answer_site(site, "approve", who, group, as_json, config_path)
        return
    if group is None:
        fail("say which: --group GROUP or --site SITE", ExitCode.BAD_INPUT, as_json=as_json)
    _answer(group, "approve", who, as_json, config_path)


def abort(
    group: OptionalGroupOption = None,
    site: SiteOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """Stop GROUP's running operation and undo what it did (only before the target's promotion).

    With --site: SITE's failover starts no more groups, and each group still moving is asked to abort.
    """
    who = by or f"cli:{getpass.getuser()}"
    if (group is None) == (site is None):
        fail("say which: --group GROUP or --site SITE (one of them)", ExitCode.BAD_INPUT, as_json=as_json)
    if site is not None:
        answer_site(site, "abort", who, None, as_json, config_path)
        return
    assert group is not None
    _answer(group, "abort", who, as_json, config_path)


def _answer(group_name: str, verb: str, who: str, as_json: bool, config_path: ConfigOption) -> None:
    config = config_or_exit(config_path, as_json=as_json)
    group = group_or_exit(config, group_name, as_json=as_json)

    async def send() -> str:
        client = await client_or_exit(config, as_json=as_json)
        handle = client.get_workflow_handle_for(GroupFailoverWorkflow.run, workflow_id(group.name))
        update = GroupFailoverWorkflow.approve if verb == "approve" else GroupFailoverWorkflow.abort
        try:
            return await tell(handle, update, who)
        except NoAnswerError as silent:
            fail(
                f"{verb} not confirmed: {silent}. Temporal hands it to the next worker that takes the operation "
                "(unless Temporal restarts first), so it may still take effect",
                ExitCode.ERROR,
                as_json=as_json,
                hint=f"start the worker; `orchestrate status --group {group.name}` shows whether it took effect",
            )
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
