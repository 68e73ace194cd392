"""``orchestrate validate`` and ``orchestrate worker``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from orchestrate.commands.common import ConfigOption, JsonOption, config_or_exit
from orchestrate.config import config_path as resolve_config_path
from orchestrate.exit_codes import ExitCode
from orchestrate.output import console, emit_json, fail
from orchestrate.service import observe_groups
from orchestrate.temporal_client import serve_metrics
from orchestrate.worker import run_worker


def validate(as_json: JsonOption = False, config_path: ConfigOption = None) -> None:
    """Check the configuration, that every cluster answers, and that every group's objects exist."""
    config = config_or_exit(config_path, as_json=as_json)
    views = asyncio.run(observe_groups(config, list(config.groups)))
    problems: list[str] = []
    report: list[dict[str, Any]] = []
    for view in views:
        for side in view.sides:
            ok = side.status is not None
            if not ok:
                problems.append(f"{view.group} on {side.cluster}: {side.error}")
            report.append(
                {
                    "group": view.group,
                    "cluster": side.cluster,
                    "reachable": side.reachable,
                    "ok": ok,
                    "detail": side.error or (side.status.message if side.status else ""),
                }
            )
    if as_json:
        emit_json({"valid": not problems, "checks": report, "problems": problems})
    else:
        console.print(f"configuration: {len(config.clusters)} clusters, {len(config.groups)} groups: valid")
        for row in report:
            mark = "[green]✓[/]" if row["ok"] else "[red]✗[/]"
            console.print(f" {mark} {row['group']} on {row['cluster']}: {row['detail']}")
    if problems:
        if not as_json:
            fail(f"{len(problems)} problem(s) found", ExitCode.ERROR)
        raise SystemExit(int(ExitCode.ERROR))


def worker(
    config_path: ConfigOption = None,
    metrics_address: Annotated[
        str | None,
        typer.Option(help="Serve Prometheus metrics (the operations' and Temporal's) on HOST:PORT, e.g. 0.0.0.0:9464."),
    ] = None,
) -> None:
    """Run a worker for the configured task queue until interrupted (Ctrl-C or SIGTERM)."""
    config = config_or_exit(config_path, as_json=False)
    if metrics_address is not None:
        host, _, port = metrics_address.rpartition(":")
        if not host or not port.isdigit():
            fail(f"--metrics-address {metrics_address!r} is not HOST:PORT", ExitCode.BAD_INPUT)
        serve_metrics(metrics_address)
        console.print(f"worker: metrics on http://{metrics_address}/metrics", highlight=False)
    console.print(
        f"worker: Temporal {config.temporal.address}, namespace {config.temporal.namespace}, task queue "
        f"{config.temporal.task_queue}, clusters {', '.join(c.name for c in config.clusters)}"
    )
    console.print(f"worker: configuration {resolve_config_path(config_path)} (re-read when it changes)")
    asyncio.run(
        run_worker(
            config,
            ready=lambda: console.print("worker ready", highlight=False),
            path=resolve_config_path(config_path),
        )
    )
