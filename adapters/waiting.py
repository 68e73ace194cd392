"""Wait until an adapter's observation satisfies a predicate, failing fast on permanent backend failures.

Two ways to wait: poll with growing intervals, or (``watch=True``) follow the adapter's objects with watches
and observe again on each change (:func:`clusters.watch.observations`), which acts on a status change within
milliseconds and costs requests only for what changed. Used by the lab tests directly and by the activities,
which pass a ``progress`` callback that heartbeats and a ``sleep`` that wakes when the activity is cancelled.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from adapters.base import ReplicationAdapter, ReplicationStatus
from clusters.errors import BackendFailedError, ClusterUnreachableError, PreconditionFailedError, RetryableError
from clusters.watch import WatchScope, observations, poll_intervals

Predicate = Callable[[ReplicationStatus], bool]


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
    watch: bool = False,
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
        sleep: sleep function (injectable for tests); when watching, it is called with 0 between short blocks.
        watch: follow the adapter's :meth:`~adapters.base.ReplicationAdapter.watch_scopes` with watches and
            observe on each change, instead of polling (``interval`` then only paces a fallback to polling).

    Raises:
        BackendFailedError: the backend reports a permanent failure, or ``timeout`` passed (with the last status).
        PreconditionFailedError: the backend reports a precondition an operator must fix.
        ClusterUnreachableError: the cluster stopped answering and did not come back before the timeout.
    """
    return _until(
        adapter,
        predicate,
        what=what,
        timeout=timeout,
        progress=progress,
        clock=clock,
        sleep=sleep,
        scopes=adapter.watch_scopes() if watch else (),
        poll=poll_intervals(interval, max_interval or interval),
    )


def wait_for_resync(
    adapter: ReplicationAdapter,
    peer: ReplicationAdapter,
    *,
    timeout: float,
    interval: float = 0.25,
    max_interval: float | None = None,
    progress: Callable[[ReplicationStatus], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    watch: bool = False,
) -> ReplicationStatus:
    """Wait until ``adapter``'s side follows ``peer`` again after :meth:`~ReplicationAdapter.reprotect`.

    When the backend requests the reprotect on the peer's objects
    (:attr:`~adapters.base.ReplicationAdapter.reprotect_acts_on_peer`), only the peer reports that action's
    progress and failure (Dell writes no ``remoteState``): the wait follows the peer until the action has ended
    (:meth:`~adapters.base.ReplicationAdapter.peer_reprotect_complete`), so that a failure there ends it at once and
    a retried one is named, then this side until it has caught up. Both share ``timeout``; the other arguments are
    those of :func:`wait_for_status`.

    Raises:
        BackendFailedError: either side reports a permanent failure, or ``timeout`` passed.
        PreconditionFailedError: either side reports a precondition an operator must fix.
        ClusterUnreachableError: a side stopped answering and did not come back before the timeout.
    """
    deadline = clock() + timeout

    def until(side: ReplicationAdapter, predicate: Predicate, what: str) -> ReplicationStatus:
        def told(status: ReplicationStatus) -> None:
            # The caller heartbeats on behalf of this side: say when an observation is the peer's.
            if progress is not None:
                elsewhere = side is not adapter
                progress(status.model_copy(update={"message": f"{what}: {status.message}"}) if elsewhere else status)

        return wait_for_status(
            side,
            predicate,
            what=what,
            timeout=max(0.0, deadline - clock()),
            interval=interval,
            max_interval=max_interval,
            progress=told,
            clock=clock,
            sleep=sleep,
            watch=watch,
        )

    if adapter.reprotect_acts_on_peer:
        until(peer, peer.peer_reprotect_complete, f"the reprotect action on {peer.cluster}")
    return until(adapter, adapter.resync_complete, "resync complete")


def _until(
    adapter: ReplicationAdapter,
    predicate: Predicate,
    *,
    what: str,
    timeout: float,
    progress: Callable[[ReplicationStatus], None] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    scopes: tuple[WatchScope, ...],
    poll: Iterator[float],
) -> ReplicationStatus:
    """The loop of :func:`wait_for_status`."""
    deadline = clock() + timeout
    last: ReplicationStatus | None = None
    last_error: RetryableError | None = None
    found = observations(
        adapter.api,
        scopes,
        lambda api: adapter.with_api(api).observe(),
        deadline=time.monotonic() + timeout,
        sleep=sleep,
        poll=poll,
    )
    with contextlib.closing(found):
        for observed in found:
            if isinstance(observed, RetryableError):
                last_error = observed
            else:
                last, last_error = observed, None
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
    raise AssertionError("observations never end")
