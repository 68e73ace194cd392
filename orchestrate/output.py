"""Console output shared by every command: human text through Rich, or one JSON document for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

from orchestrate.exit_codes import ExitCode

console = Console()
error_console = Console(stderr=True)


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def fail(message: str, code: ExitCode, *, as_json: bool = False, hint: str | None = None) -> NoReturn:
    """Report an error (as JSON on stdout with ``--json``, else on stderr) and exit with ``code``."""
    if as_json:
        emit_json({"error": {"code": int(code), "kind": code.name.lower(), "message": message, "hint": hint}})
    else:
        error_console.print(f"[bold red]error:[/] {message}")
        if hint:
            error_console.print(f"[yellow]hint:[/] {hint}")
    raise typer.Exit(int(code))
