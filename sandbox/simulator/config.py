"""The simulator's tunables: tick, poll and sync intervals, per-operation latencies and retry policy.

One frozen model shared by the CLI (every field is also a ``--flag``), the control API (``GET``/``POST /config``)
and the typed client. Defaults are fast, so that lab tests and demos complete in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field


class DriverSockets(NamedTuple):
    """Where the simulator serves one kind of storage driver to upstream controllers: a socket per cluster."""

    sockets: Mapping[str, Path]
    stubs: Path
    """The folder of the driver service's generated Python stubs."""


class SimulatorConfig(BaseModel):
    """Timings of the storage simulator, in seconds.

    Attributes:
        tick: longest time between two reconciles (write, ship, reconcile); the loop also runs on every watched
            change and when something it scheduled is due, so the tick no longer paces the reactions.
        idle_poll_interval: for in-memory API servers that are listed every tick: a kind whose last LIST was empty
            is listed again only after this long.
        sync_interval: the primary ships its writes to the replica this often (asynchronous replication).
        promote_latency: time a promotion takes after the controller sees the request.
        demote_latency: time a demotion (and Trident's establish) takes after the controller sees the request.
        final_sync_latency: time the final sync after a planned demote takes (also a TAMU transfer).
        resync_latency: time a resync from the peer takes once the peer is primary.
        action_latency: time a Dell action's driver call takes before it acts.
        retry_interval: a failed attempt (injected fault, refused precondition) is retried after this long.
        detach_delay: a VolumeAttachment no pod uses any more is deleted after this long.
        dell_error_after: a Dell action that keeps failing is retried this long, then the RG goes to ``Error``.
        write_bytes: bytes one acknowledged write stands for (``lastSyncBytes``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tick: float = Field(0.2, gt=0, le=5)
    idle_poll_interval: float = Field(1.0, gt=0)
    sync_interval: float = Field(1.0, gt=0)
    promote_latency: float = Field(0.2, ge=0)
    demote_latency: float = Field(0.2, ge=0)
    final_sync_latency: float = Field(0.3, ge=0)
    resync_latency: float = Field(0.3, ge=0)
    action_latency: float = Field(0.2, ge=0)
    retry_interval: float = Field(0.5, gt=0)
    detach_delay: float = Field(0.5, ge=0)
    dell_error_after: float = Field(3600.0, ge=0)
    write_bytes: int = Field(4096, gt=0)
