"""The saga: undo actions pushed before each forward step, run newest first when the operation is compensated.

Compensation stops at the first undo that fails: each undo assumes the ones before it succeeded (the source is
re-promoted only after the target was observed Secondary), so going on after a failure could make a second
primary. What was undone and what is left are both reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from temporalio import workflow

from workflows.failover.steps import StepFailedError


@dataclass(frozen=True)
class CompensationReport:
    """How compensation went: what was undone, the undo that failed (and why), and what was left undone."""

    undone: tuple[str, ...]
    failed: str | None = None
    left: tuple[str, ...] = ()
    cancelled: bool = False


@dataclass
class Saga:
    """Undo actions in the order their forward steps ran."""

    undo: list[tuple[str, Callable[[], Awaitable[None]]]] = field(default_factory=list)

    def push(self, name: str, action: Callable[[], Awaitable[None]]) -> None:
        """Remember how to undo the step about to run."""
        self.undo.append((name, action))

    async def compensate(self) -> CompensationReport:
        """Run the undo actions newest first, stopping at the first that fails.

        A cancellation of the workflow during compensation does not interrupt it: each undo runs to its end
        (the source must be put back), and the report says the workflow was cancelled.
        """
        undone: list[str] = []
        cancelled = False
        pending = list(reversed(self.undo))
        for index, (name, action) in enumerate(pending):
            task = asyncio.ensure_future(action())
            while not task.done():
                try:
                    await workflow.wait([task])  # unlike awaiting the task, a cancellation here does not reach it
                except asyncio.CancelledError:
                    cancelled = True
            if task.cancelled():
                left = tuple(n for n, _ in pending[index:])
                return CompensationReport(tuple(undone), f"{name}: cancelled", left, True)
            problem = task.exception()
            if problem is not None:
                if not isinstance(problem, StepFailedError):
                    raise problem
                left = tuple(n for n, _ in pending[index + 1 :])
                return CompensationReport(tuple(undone), f"{name}: {problem}", left, cancelled)
            undone.append(name)
        return CompensationReport(tuple(undone), cancelled=cancelled)
