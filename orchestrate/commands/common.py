"""Options and helpers every command shares: configuration, Temporal client, groups, confirmation, following."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from temporalio.client import Client, WorkflowFailureError

from orchestrate.config import ConfigError, OrchestratorConfig, UnknownGroupError, load_config
from orchestrate.exit_codes import OUTCOME_EXIT, ExitCode
from orchestrate.output import console, emit_json, fail
from orchestrate.queries import NoAnswerError
from orchestrate.temporal_client import connect
from workflows.groups import GroupConfig
from workflows.models import FailoverResult
from workflows.site.models import SiteFailoverResult

T = TypeVar("T")
R = TypeVar("R", FailoverResult, SiteFailoverResult)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Configuration file (default: $ORCHESTRATE_CONFIG or ./orchestrate.yaml)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document (errors too) for scripts.")]
GroupOption = Annotated[str, typer.Option("--group", "-g", help="Protection group name (see `orchestrate groups`).")]
OptionalGroupOption = Annotated[
    str | None, typer.Option("--group", "-g", help="Protection group name (see `orchestrate groups`).")
]
SiteOption = Annotated[str | None, typer.Option("--site", help="Site name (the `site` of the configured clusters).")]


def config_or_exit(path: Path | None, *, as_json: bool) -> OrchestratorConfig:
    """Load the configuration or exit with BAD_INPUT naming the file, line and field."""
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(str(exc), ExitCode.BAD_INPUT, as_json=as_json, hint="fix the file; `orchestrate validate` checks it")


def group_or_exit(config: OrchestratorConfig, name: str, *, as_json: bool) -> GroupConfig:
    """The named group or exit with BAD_INPUT listing the known groups."""
    try:
        return config.group(name)
    except UnknownGroupError as exc:
        fail(str(exc), ExitCode.BAD_INPUT, as_json=as_json)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from a synchronous command."""
    return asyncio.run(coroutine)


def confirm_or_exit(what: str, question: str, *, skip: bool, as_json: bool) -> None:
    """Ask before ``what`` changes anything (``question`` on the terminal); without a terminal, refuse.

    Args:
        what: the operation, for the refusal ("planned failover of pg-prod").
        question: what the terminal asks.
        skip: ``--yes`` or ``--dry-run`` was given.
        as_json: errors as JSON.
    """
    if skip:
        return
    if not sys.stdin.isatty():
        fail(
            f"{what} needs confirmation",
            ExitCode.BAD_INPUT,
            as_json=as_json,
            hint="pass --yes (or --dry-run to only check)",
        )
    if not typer.confirm(question):
        fail("not confirmed; nothing was changed", ExitCode.BAD_INPUT, as_json=as_json)


def report_detached(workflow_id: str, run_id: str | None, status_command: str, *, as_json: bool) -> ExitCode:
    """Say that an operation started and was left to run (``--detach``), and how to follow it."""
    if as_json:
        emit_json({"workflow_id": workflow_id, "run_id": run_id, "detached": True})
    else:
        console.print(f"started {workflow_id}; follow it with `{status_command}`")
    return ExitCode.OK


async def client_or_exit(config: OrchestratorConfig, *, as_json: bool) -> Client:
    """A Temporal client, or exit with ERROR saying how to get a server."""
    try:
        return await connect(config.temporal)
    except Exception as exc:
        fail(
            f"cannot reach Temporal at {config.temporal.address}: {exc}",
            ExitCode.ERROR,
            as_json=as_json,
            hint="start the lab (`orchestrate sandbox up`) or point temporal.address at your Temporal cluster",
        )


async def follow_to_the_end(
    workflow_id: str,
    follow: Awaitable[R],
    render: Callable[[R], None],
    *,
    subject: str,
    status_command: str,
    abort_command: str,
    as_json: bool,
) -> ExitCode:
    """Follow a started operation until it ends; print its result (or one JSON document) and return its exit code.

    Args:
        workflow_id: the operation's workflow id.
        follow: shows progress and returns the result.
        render: prints the result for a person.
        subject: what runs ("the operation", "the site failover"), for the messages.
        status_command: the command that follows it after an interruption.
        abort_command: the command that stops it.
        as_json: one JSON document instead of text.
    """
    try:
        result = await follow
    except WorkflowFailureError as error:
        fail(
            f"the workflow failed: {error.cause or error}",
            ExitCode.NEEDS_ATTENTION,
            as_json=as_json,
            hint=f"inspect it in the Temporal Web UI (workflow id {workflow_id})",
        )
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print(
            f"\ninterrupted: {subject} goes on in Temporal; `{status_command}` follows it, `{abort_command}` stops it"
        )
        return ExitCode.INTERRUPTED
    code = OUTCOME_EXIT[result.outcome]
    if as_json:
        emit_json({"workflow_id": workflow_id, "exit_code": int(code), **result.model_dump(mode="json")})
    else:
        render(result)
    return code


class SilenceNotice:
    """Says once that a followed workflow stopped answering its progress query, and once that it answers again.

    The live views go on waiting for the result meanwhile: a silent worker is worth a line, not an exit.
    """

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.silent = False

    def no_answer(self, error: NoAnswerError) -> None:
        """The query met its deadline."""
        if not self.silent and not self.quiet:
            console.print(f"[yellow]   no progress: {error}; still waiting for the result[/]")
        self.silent = True

    def answered(self) -> None:
        """The query was answered."""
        if self.silent and not self.quiet:
            console.print("   the workflow answers again")
        self.silent = False
