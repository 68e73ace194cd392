"""The ``orchestrate`` command: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from orchestrate.commands import admin, failover, manage, sandbox, status

app = typer.Typer(
    name="orchestrate",
    help="Fail stateful Kubernetes applications over between two sites with replicated storage.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command()(failover.failover)
app.command()(failover.failback)
app.command()(status.status)
app.command()(status.groups)
app.command()(status.history)
app.command()(manage.approve)
app.command()(manage.abort)
app.command()(admin.validate)
app.command()(admin.worker)
app.add_typer(sandbox.app, name="sandbox")


def main() -> None:
    """Console-script entry point."""
    app()
