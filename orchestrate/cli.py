"""The ``orchestrate`` command: one Typer app, one sub-app or command module per verb."""

from __future__ import annotations

import typer

from orchestrate.commands import sandbox

app = typer.Typer(
    name="orchestrate",
    help="Fail stateful Kubernetes applications over between two sites with replicated storage.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(sandbox.app, name="sandbox")


def main() -> None:
    """Console-script entry point."""
    app()
