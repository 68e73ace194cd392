"""Options and helpers every command shares: the configuration, the Temporal client, group lookup."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from temporalio.client import Client

from orchestrate.config import ConfigError, OrchestratorConfig, UnknownGroupError, load_config
from orchestrate.exit_codes import ExitCode
from orchestrate.output import fail
from orchestrate.temporal_client import connect
from workflows.groups import GroupConfig

T = TypeVar("T")

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
