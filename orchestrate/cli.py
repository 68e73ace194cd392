"""The ``orchestrate`` command: one Typer app, one module per command group."""

from __future__ import annotations

import os
import sys

import typer

from orchestrate.commands import admin, failover, manage, sandbox, serve, status
from orchestrate.exit_codes import ExitCode
from orchestrate.telemetry import configure_tracing, flush_tracing

app = typer.Typer(
    name="orchestrate",
    help="Fail stateful Kubernetes applications over between two sites with replicated storage.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command()(failover.failover)
app.command()(failover.failback)
app.command()(failover.resume)
app.command()(status.status)
app.command()(status.groups)
app.command()(status.history)
app.command()(manage.approve)
app.command()(manage.abort)
app.command()(admin.validate)
app.command()(admin.worker)
app.command()(serve.serve)
app.add_typer(sandbox.app, name="sandbox")


def main() -> None:
    """Console-script entry point.

    Leaves with ``os._exit`` after flushing: the Temporal client's native threads can outlive interpreter shutdown
    and abort the process (SIGABRT) after it printed its answer (temporalio/sdk-python issue 300), which would
    turn a correct exit code into 134.
    """
    code = int(ExitCode.OK)
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "cli")
    configure_tracing(f"failover-orchestrator {command}")
    try:
        app()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    except KeyboardInterrupt:
        code = int(ExitCode.INTERRUPTED)
    flush_tracing()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
