"""The CLI's documented exit codes (the README lists them); scripts branch on these."""

from __future__ import annotations

from enum import IntEnum

from workflows.models import Outcome


class ExitCode(IntEnum):
    """Process exit status of every ``orchestrate`` command."""

    OK = 0
    """The command did what it was asked."""
    ERROR = 1
    """An unexpected error, or the lab/environment could not do what was asked; the message says what failed."""
    BAD_INPUT = 2
    """Bad input: unknown option, unknown group or cluster, malformed configuration. Nothing was changed."""
    REFUSED = 3
    """Refused: preflight found it unsafe, or another operation runs on the group. Nothing was changed."""
    FAILED_COMPENSATED = 4
    """The operation failed or was aborted before the target's promotion; what it did was undone."""
    NEEDS_ATTENTION = 5
    """The operation could not finish and could not undo itself: an operator must look (see ``status``)."""
    INTERRUPTED = 130
    """The CLI was interrupted (Ctrl-C); a started operation goes on in Temporal (see ``status``)."""


OUTCOME_EXIT = {
    Outcome.SUCCEEDED: ExitCode.OK,
    Outcome.DRY_RUN: ExitCode.OK,
    Outcome.REFUSED: ExitCode.REFUSED,
    Outcome.FAILED_COMPENSATED: ExitCode.FAILED_COMPENSATED,
    Outcome.NEEDS_ATTENTION: ExitCode.NEEDS_ATTENTION,
}
"""The exit code of an operation that ended with each outcome (a group's, or a site's: its worst group's)."""
