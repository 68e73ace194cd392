"""Wait until an adapter's observation satisfies a predicate, failing fast on permanent backend failures.

Used by the lab tests directly and by the activities, which pass a ``progress`` callback that heartbeats.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from adapters.base import ReplicationAdapter, ReplicationStatus
from clusters.errors import BackendFailedError, ClusterUnreachableError, PreconditionFailedError, RetryableError

Predicate = Callable[[ReplicationStatus], bool]


def poll_intervals(first: float, maximum: float, growth: float = 1.5) -> Iterator[float]:
    """Sleep times between polls: ``first``, growing by ``growth`` up to ``maximum``.

    Most steps finish within a second, so the first checks are quick; a wait that lasts minutes (a final sync)
    settles at ``maximum`` and costs the API server little.
    """
    interval = first
    while True:
        yield interval
        interval = min(maximum, interval * growth)


def wait_for_status(
    adapter: ReplicationAdapter,
    predicate: Predicate,
    *,
    what: str,
    timeout: float,
    interval: float = 0.25,
    max_interval: float | None = None,
    progress: Callable[[ReplicationStatus], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplicationStatus:
    """Observe ``adapter`` until ``predicate`` holds and return that observation.

    Args:
        adapter: the side to watch.
        predicate: e.g. ``adapter.final_sync_complete``.
        what: a phrase for messages ("final sync complete").
        timeout: seconds before giving up.
        interval: seconds between the first observations.
        max_interval: the interval grows up to this (default: it stays at ``interval``).
        progress: called with every observation (activities heartbeat here).
        clock: monotonic clock (injectable for tests).
        sleep: sleep function (injectable for tests).

    Raises:
        BackendFailedError: the backend reports a permanent failure, or ``timeout`` passed (with the last status).
        PreconditionFailedError: the backend reports a precondition an operator must fix.
        ClusterUnreachableError: the cluster stopped answering and did not come back before the timeout.
    """
    deadline = clock() + timeout
    intervals = poll_intervals(interval, max_interval or interval)
    last: ReplicationStatus | None = None
    last_error: RetryableError | None = None
    while True:
        try:
            last = adapter.observe()
            last_error = None
        except RetryableError as exc:
            last_error = exc
        if last is not None and last_error is None:
            if progress is not None:
                progress(last)
            if predicate(last):
                return last
            if last.failure and last.failure_permanent:
                error = PreconditionFailedError if "Prerequisite" in last.failure else BackendFailedError
                raise error(
                    f"{what}: the backend gave up: {last.failure}", cluster=adapter.cluster, condition=last.failure
                )
        if clock() >= deadline:
            if last_error is not None and isinstance(last_error, ClusterUnreachableError):
                raise last_error
            state = last.message if last else "no observation"
            failure = f"; last failure: {last.failure}" if last and last.failure else ""
            raise BackendFailedError(
                f"{what}: not reached within {timeout:.0f}s (last status: {state}{failure})",
                cluster=adapter.cluster,
                condition=last.failure if last else None,
            )
        sleep(next(intervals))
