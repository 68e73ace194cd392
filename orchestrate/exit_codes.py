"""The CLI's documented exit codes (the README lists them); scripts branch on these."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit status of every ``orchestrate`` command."""

    OK = 0
    """The command did what it was asked."""
    ERROR = 1
    """An unexpected error, or the lab/environment could not do what was asked; the message says what failed."""
    BAD_INPUT = 2
    """Bad input: unknown option, unknown group or cluster, malformed configuration. Nothing was changed."""
