"""The replication model: what each site's storage holds, which side takes writes, and the ledger of losses.

Pure and clock-free (every operation takes ``now``), so it is unit-tested without Kubernetes. The controllers of
all four backends drive it; the writer advances it; the control API reports it as the ledger.

Rules:

- A volume (key: namespace + PVC name, the same on both sites) has per site a count of writes it *holds*, a
  *writable* flag (the storage truth of which side is primary) and a *history*: the branches its writes belong
  to. Writes are numbered 1, 2, ... on each side; two sides agree on write ``k`` when it belongs to the same
  branch on both. Every promotion starts a new branch, so writes made after a split are told apart from the
  writes the other side made with the same numbers.
- :meth:`ReplicationModel.write` is one acknowledged write on a writable side of a site that is up.
- Every ``sync_interval`` the one writable side ships to the other side when both sites are up, the link is
  active and the replica holds nothing the primary lacks: the replica then holds exactly what the primary holds.
- A planned demote (``final_sync=True``) stops writes at once and ships the rest after ``final_sync_latency``
  (unless stalled); a demote without final sync leaves the unshipped writes on this side only.
- A promotion exposes what the side holds. Writes the peer holds and this side lacks are ``lost_at_promotion``.
  Promoting while the peer is writable needs ``force`` and leaves two writable sides (recorded).
- A resync copies the peer (which must be writable) over this side after ``resync_latency``; writes this side
  held and the peer lacks are ``discarded_at_resync``.
- A write on a side whose peer was promoted after it, while both are writable, is a ``split_brain_write``.

For a planned failover the ledger shows ``lost_at_promotion == 0`` and the new primary holding every acknowledged
write; for an unplanned one, ``lost_at_promotion`` equals the old primary's writes after its last shipment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from sandbox.simulator.config import SimulatorConfig

Segment = tuple[int, int]
"""One branch of a side's history: (branch id, number of writes held before the branch started)."""


class VolumeKey(NamedTuple):
    """A replicated volume: the PVC of this name in this namespace, on both sites."""

    namespace: str
    pvc: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pvc}"


class Link(StrEnum):
    """Whether the replication link ships writes (Dell can suspend it or leave it failed over)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    FAILED_OVER = "failed-over"


class PromotionRefusedError(Exception):
    """A promotion without ``force`` while the peer is still writable (the storage precondition error)."""


@dataclass
class Side:
    """What one site's storage holds of a volume."""

    held: int = 0
    writable: bool = False
    history: tuple[Segment, ...] = ((0, 0),)
    term: int = 0
    """The promotion number that made this side writable; a lower term than the peer's marks a stale primary."""


@dataclass
class Transfer:
    """A pending final sync or resync: ``target`` receives everything ``source`` holds once ``due`` has passed."""

    source: str
    target: str
    due: float


@dataclass(frozen=True)
class Promotion:
    """One promotion, as recorded in the ledger."""

    time: float
    cluster: str
    held: int
    peer_held: int
    lost: int
    forced: bool
    peer_writable: bool
    peer_up: bool


@dataclass(frozen=True)
class SnapshotPoint:
    """The data of a side at one moment (a VolumeSnapshot): its history and write count."""

    history: tuple[Segment, ...]
    held: int


@dataclass
class Volume:
    """The replication state and ledger of one volume."""

    key: VolumeKey
    sides: dict[str, Side]
    last_ship_attempt: float
    """When the periodic shipment last ran (comparing against the current ``sync_interval`` lets a new interval
    take effect at once)."""
    acknowledged: int = 0
    last_shipment: float | None = None
    last_shipped_count: int = 0
    last_shipment_writes: int = 0
    last_shipment_duration: float = 0.0
    link: Link = Link.ACTIVE
    final_sync: Transfer | None = None
    resync: Transfer | None = None
    lost_at_promotion: int = 0
    discarded_at_resync: int = 0
    split_brain_writes: int = 0
    dual_writable: list[tuple[float, str]] = field(default_factory=list)
    promotions: list[Promotion] = field(default_factory=list)
    branches: int = 0
    terms: int = 0

    def writable_sides(self) -> list[str]:
        """The sides that take writes (normally at most one)."""
        return [name for name, side in self.sides.items() if side.writable]

    @property
    def fresh(self) -> bool:
        """No side has ever been writable: the initial primary is still to be chosen."""
        return not self.promotions and not self.writable_sides()


def common_prefix(a: tuple[Segment, ...], held_a: int, b: tuple[Segment, ...], held_b: int) -> int:
    """How many leading writes two histories share.

    Args:
        a: one side's branches.
        held_a: its write count.
        b: the other side's branches.
        held_b: its write count.
    """
    shared = 0
    while shared < len(a) and shared < len(b) and a[shared] == b[shared]:
        shared += 1
    limit = min(held_a, held_b)
    # The first branch where the histories part (if any) starts where their agreement ends.
    if shared < len(a):
        limit = min(limit, a[shared][1])
    if shared < len(b):
        limit = min(limit, b[shared][1])
    return limit


class ReplicationModel:
    """Replication of every volume between exactly two sites.

    Args:
        sites: the two cluster names.
        config: timings (``sync_interval``, ``final_sync_latency``, ``resync_latency`` are read on every use, so a
            new config takes effect at once).
    """

    def __init__(self, sites: Sequence[str], config: SimulatorConfig) -> None:
        if len(sites) != 2 or sites[0] == sites[1]:
            raise ValueError(f"replication needs exactly two distinct sites, got {list(sites)}")
        self.sites = tuple(sites)
        self.config = config
        self.site_up = dict.fromkeys(self.sites, True)
        self._volumes: dict[VolumeKey, Volume] = {}

    # ------------------------------------------------------------------------------------------------ lookup

    def peer(self, site: str) -> str:
        """The other site."""
        if site not in self.site_up:
            raise KeyError(f"unknown site {site!r}; sites are {', '.join(self.sites)}")
        return self.sites[1] if site == self.sites[0] else self.sites[0]

    def ensure(self, key: VolumeKey, now: float) -> Volume:
        """The volume, created (no side writable, nothing held) on first use."""
        volume = self._volumes.get(key)
        if volume is None:
            volume = Volume(key=key, sides={site: Side() for site in self.sites}, last_ship_attempt=now)
            self._volumes[key] = volume
        return volume

    def get(self, key: VolumeKey) -> Volume | None:
        """The volume, or ``None`` when no controller has used it yet."""
        return self._volumes.get(key)

    def volumes(self) -> list[Volume]:
        """Every volume, ordered by key."""
        return [self._volumes[key] for key in sorted(self._volumes)]

    def set_site(self, site: str, up: bool) -> None:
        """Mark a site's storage up or down (down: no writes on it, no shipments to or from it)."""
        self.peer(site)
        self.site_up[site] = up

    def _both_up(self) -> bool:
        return all(self.site_up.values())

    def _prefix(self, volume: Volume, a: str, b: str) -> int:
        sa, sb = volume.sides[a], volume.sides[b]
        return common_prefix(sa.history, sa.held, sb.history, sb.held)

    # ------------------------------------------------------------------------------------------------ predicates

    def peer_holds_all(self, key: VolumeKey, site: str) -> bool:
        """Whether the peer holds every write ``site`` holds (a demoted side whose final sync is done)."""
        volume = self._volumes.get(key)
        if volume is None:
            return True
        return self._prefix(volume, site, self.peer(site)) == volume.sides[site].held

    def diverged(self, key: VolumeKey, site: str) -> bool:
        """Whether ``site`` holds writes the *writable* peer lacks (split-brain: only a resync can fix it)."""
        volume = self._volumes.get(key)
        if volume is None:
            return False
        peer = self.peer(site)
        return volume.sides[peer].writable and not self.peer_holds_all(key, site)

    def syncing(self, key: VolumeKey, site: str) -> bool:
        """Whether a final sync from ``site`` or a resync of ``site`` is pending."""
        volume = self._volumes.get(key)
        if volume is None:
            return False
        return (volume.final_sync is not None and volume.final_sync.source == site) or (
            volume.resync is not None and volume.resync.target == site
        )

    def replicating(self, key: VolumeKey, site: str) -> bool:
        """Whether writes flow between ``site`` and its peer: both up, link active, one writable, no divergence."""
        volume = self._volumes.get(key)
        if volume is None or not self._both_up() or volume.link is not Link.ACTIVE:
            return False
        writable = volume.writable_sides()
        if len(writable) != 1:
            return False
        replica = self.peer(writable[0])
        return self.peer_holds_all(key, replica)

    def writable(self, key: VolumeKey, site: str) -> bool:
        """Whether ``site`` takes writes for ``key``."""
        volume = self._volumes.get(key)
        return volume is not None and volume.sides[site].writable

    # ------------------------------------------------------------------------------------------------ operations

    def write(self, key: VolumeKey, site: str) -> bool:
        """One acknowledged write on ``site`` when it is writable and up; returns whether it happened."""
        volume = self._volumes.get(key)
        if volume is None or not self.site_up[site]:
            return False
        side = volume.sides[site]
        if not side.writable:
            return False
        side.held += 1
        volume.acknowledged += 1
        peer = volume.sides[self.peer(site)]
        if peer.writable and peer.term > side.term:
            volume.split_brain_writes += 1
        return True

    def bootstrap(self, key: VolumeKey, site: str, now: float) -> bool:
        """Make ``site`` the initial primary of a fresh volume (backends without a role in spec: Dell)."""
        volume = self.ensure(key, now)
        if not volume.fresh:
            return False
        self._make_writable(volume, site, now, forced=False)
        return True

    def demote(self, key: VolumeKey, site: str, now: float, *, final_sync: bool) -> None:
        """Stop writes on ``site``; with ``final_sync`` ship what the peer lacks after ``final_sync_latency``.

        Idempotent: a side that is already read-only is left alone, except that a planned demote schedules a
        final sync again when the peer still lacks some of its writes and none is pending.
        """
        volume = self.ensure(key, now)
        volume.sides[site].writable = False
        peer = self.peer(site)
        if (
            final_sync
            and volume.final_sync is None
            and not volume.sides[peer].writable
            and not self.peer_holds_all(key, site)
        ):
            volume.final_sync = Transfer(source=site, target=peer, due=now + self.config.final_sync_latency)

    def promote(self, key: VolumeKey, site: str, now: float, *, force: bool) -> Promotion | None:
        """Make ``site`` writable with what it holds; ``None`` when it already was.

        Raises:
            PromotionRefusedError: the peer is writable and ``force`` is false.
        """
        volume = self.ensure(key, now)
        if volume.sides[site].writable:
            return None
        peer = self.peer(site)
        if volume.sides[peer].writable and not force:
            raise PromotionRefusedError(f"{key}: peer {peer} is still primary")
        return self._make_writable(volume, site, now, forced=force)

    def _make_writable(self, volume: Volume, site: str, now: float, *, forced: bool) -> Promotion:
        peer_name = self.peer(site)
        side, peer = volume.sides[site], volume.sides[peer_name]
        lost = peer.held - self._prefix(volume, site, peer_name)
        volume.lost_at_promotion += lost
        # A pending transfer into this side can no longer happen: it takes writes of its own from now on.
        if volume.final_sync is not None and volume.final_sync.target == site:
            volume.final_sync = None
        if volume.resync is not None and volume.resync.target == site:
            volume.resync = None
        volume.branches += 1
        volume.terms += 1
        side.history = (*side.history, (volume.branches, side.held))
        side.term = volume.terms
        side.writable = True
        if peer.writable:
            state = "up" if self.site_up[peer_name] else "down"
            volume.dual_writable.append((now, f"{site} promoted while {peer_name} ({state}) was still writable"))
        promotion = Promotion(
            time=now,
            cluster=site,
            held=side.held,
            peer_held=peer.held,
            lost=lost,
            forced=forced,
            peer_writable=peer.writable,
            peer_up=self.site_up[peer_name],
        )
        volume.promotions.append(promotion)
        return promotion

    def request_resync(self, key: VolumeKey, site: str, now: float) -> None:
        """Schedule a resync of the read-only ``site`` from its peer (done once the peer is writable)."""
        volume = self.ensure(key, now)
        volume.sides[site].writable = False
        if volume.final_sync is not None and volume.final_sync.source == site:
            # Resyncing from the peer discards what a final sync would have shipped (ceph-csi issue 3209).
            volume.final_sync = None
        if volume.resync is None or volume.resync.target != site:
            volume.resync = Transfer(source=self.peer(site), target=site, due=now + self.config.resync_latency)

    def set_link(self, key: VolumeKey, link: Link, now: float) -> None:
        """Suspend, fail over or reactivate the replication link of a volume."""
        self.ensure(key, now).link = link

    def ship_now(self, key: VolumeKey, now: float) -> bool:
        """An on-demand shipment (Dell SYNC, Trident mirror update); returns whether it happened."""
        volume = self._volumes.get(key)
        if volume is None or volume.link is not Link.ACTIVE:
            return False
        writable = volume.writable_sides()
        if len(writable) != 1:
            return False
        return self._ship(volume, writable[0], self.peer(writable[0]), now, duration=0.0)

    def snapshot(self, key: VolumeKey, site: str) -> SnapshotPoint:
        """What ``site`` holds now (an empty point for a volume the model does not know)."""
        volume = self._volumes.get(key)
        if volume is None:
            return SnapshotPoint(history=((0, 0),), held=0)
        side = volume.sides[site]
        return SnapshotPoint(history=side.history, held=side.held)

    def holds_snapshot(self, key: VolumeKey, site: str, point: SnapshotPoint) -> bool:
        """Whether ``site`` holds every write of ``point``."""
        volume = self._volumes.get(key)
        if volume is None:
            return point.held == 0
        side = volume.sides[site]
        return common_prefix(side.history, side.held, point.history, point.held) >= point.held

    # ------------------------------------------------------------------------------------------------ time

    def next_due(self) -> float | None:
        """When the next final sync, resync or periodic shipment is due (``None``: nothing replicates)."""
        times = [
            moment
            for volume in self._volumes.values()
            for moment in (
                volume.final_sync.due if volume.final_sync else None,
                volume.resync.due if volume.resync else None,
                volume.last_ship_attempt + self.config.sync_interval,
            )
            if moment is not None
        ]
        return min(times, default=None)

    def advance(self, now: float, stalled: Callable[[Volume], bool] = lambda _volume: False) -> None:
        """Complete due final syncs and resyncs and make the periodic shipments.

        Args:
            now: the current time.
            stalled: whether a volume's pending final sync is held back (the ``stall-final-sync`` fault).
        """
        for volume in self._volumes.values():
            self._advance_final_sync(volume, now, stalled(volume))
            self._advance_resync(volume, now)
            if now - volume.last_ship_attempt >= self.config.sync_interval:
                volume.last_ship_attempt = now
                writable = volume.writable_sides()
                if len(writable) == 1 and volume.link is Link.ACTIVE:
                    self._ship(volume, writable[0], self.peer(writable[0]), now, duration=0.0)

    def _advance_final_sync(self, volume: Volume, now: float, stalled: bool) -> None:
        transfer = volume.final_sync
        if transfer is None or now < transfer.due or stalled:
            return
        if volume.sides[transfer.source].writable or volume.sides[transfer.target].writable:
            # Re-promoted, or the peer was promoted without waiting: nothing can be shipped any more.
            volume.final_sync = None
            return
        if volume.link is Link.ACTIVE and self._ship(
            volume, transfer.source, transfer.target, now, duration=self.config.final_sync_latency
        ):
            volume.final_sync = None

    def _advance_resync(self, volume: Volume, now: float) -> None:
        transfer = volume.resync
        if transfer is None or now < transfer.due or not self._both_up():
            return
        source, target = volume.sides[transfer.source], volume.sides[transfer.target]
        if not source.writable:
            return  # a resync copies the primary: it waits until the peer is promoted
        volume.discarded_at_resync += target.held - self._prefix(volume, transfer.target, transfer.source)
        target.held, target.history = 0, ((0, 0),)
        self._ship(volume, transfer.source, transfer.target, now, duration=self.config.resync_latency)
        volume.resync = None

    def _ship(self, volume: Volume, source_name: str, target_name: str, now: float, *, duration: float) -> bool:
        source, target = volume.sides[source_name], volume.sides[target_name]
        if not self._both_up() or target.writable:
            return False
        if self._prefix(volume, target_name, source_name) != target.held:
            return False  # the replica holds writes the primary lacks: it needs a resync first
        volume.last_shipment_writes = source.held - target.held
        target.held, target.history = source.held, source.history
        volume.last_shipment = now
        volume.last_shipped_count = source.held
        volume.last_shipment_duration = duration
        return True


def group_last_shipment(model: ReplicationModel, keys: Iterable[VolumeKey]) -> float | None:
    """The oldest last shipment of a group's volumes (what the group as a whole is guaranteed to have shipped).

    ``None`` when any volume has never shipped.
    """
    times: list[float] = []
    for key in keys:
        volume = model.get(key)
        if volume is None or volume.last_shipment is None:
            return None
        times.append(volume.last_shipment)
    return min(times) if times else None
