"""Unit tier: the simulator's replication model.

Covers periodic shipping (only from the one writable side, only with both sites up), the final sync of a planned
demote (and its stall), loss accounting at promotion (none after a planned handover, exactly the unshipped writes
after an unplanned one), refused and forced promotions, resync (divergent writes discarded), split-brain writes,
the writer only acting on the writable side of a site that is up, snapshots, and the common-prefix arithmetic.
"""

from __future__ import annotations

import pytest

from sandbox.simulator.config import SimulatorConfig
from sandbox.simulator.model import (
    Link,
    PromotionRefusedError,
    ReplicationModel,
    VolumeKey,
    common_prefix,
    group_last_shipment,
)

KEY = VolumeKey("pg-prod", "data")
CONFIG = SimulatorConfig(sync_interval=1.0, final_sync_latency=0.3, resync_latency=0.5)


def model_with_primary(site: str = "dc1") -> ReplicationModel:
    model = ReplicationModel(("dc1", "dc2"), CONFIG)
    model.ensure(KEY, now=0.0)
    model.promote(KEY, site, now=0.0, force=False)
    return model


def write(model: ReplicationModel, site: str, count: int) -> None:
    for _ in range(count):
        model.write(KEY, site)


def held(model: ReplicationModel, site: str) -> int:
    volume = model.get(KEY)
    assert volume is not None
    return volume.sides[site].held


def test_needs_exactly_two_sites() -> None:
    with pytest.raises(ValueError):
        ReplicationModel(("dc1",), CONFIG)
    with pytest.raises(ValueError):
        ReplicationModel(("dc1", "dc1"), CONFIG)


def test_writer_only_writes_on_the_writable_side_of_a_site_that_is_up() -> None:
    model = model_with_primary("dc1")
    assert model.write(KEY, "dc1")
    assert not model.write(KEY, "dc2")
    model.set_site("dc1", up=False)
    assert not model.write(KEY, "dc1")
    model.set_site("dc1", up=True)
    assert not model.write(VolumeKey("pg-prod", "unknown"), "dc1")
    volume = model.get(KEY)
    assert volume is not None
    assert (volume.acknowledged, held(model, "dc1"), held(model, "dc2")) == (1, 1, 0)


def test_shipments_copy_the_primary_every_interval() -> None:
    model = model_with_primary()
    write(model, "dc1", 5)
    model.advance(now=0.5)
    assert held(model, "dc2") == 0, "nothing ships before the interval"
    model.advance(now=1.0)
    volume = model.get(KEY)
    assert volume is not None
    assert held(model, "dc2") == 5
    assert (volume.last_shipment, volume.last_shipped_count, volume.last_shipment_writes) == (1.0, 5, 5)
    write(model, "dc1", 3)
    model.advance(now=1.5)
    assert held(model, "dc2") == 5
    model.advance(now=2.0)
    assert held(model, "dc2") == 8
    assert volume.last_shipment_writes == 3
    assert model.replicating(KEY, "dc1")


def test_no_shipment_while_a_site_is_down_or_the_link_is_suspended() -> None:
    model = model_with_primary()
    write(model, "dc1", 4)
    model.set_site("dc2", up=False)
    model.advance(now=1.0)
    assert held(model, "dc2") == 0
    assert not model.replicating(KEY, "dc1")
    model.set_site("dc2", up=True)
    model.set_link(KEY, Link.SUSPENDED, now=1.0)
    model.advance(now=2.0)
    assert held(model, "dc2") == 0
    assert not model.ship_now(KEY, now=2.1)
    model.set_link(KEY, Link.ACTIVE, now=2.2)
    assert model.ship_now(KEY, now=2.2)
    assert held(model, "dc2") == 4


def test_planned_demote_ships_the_rest_and_promotion_loses_nothing() -> None:
    model = model_with_primary()
    write(model, "dc1", 10)
    model.advance(now=1.0)
    write(model, "dc1", 7)  # acknowledged after the last shipment
    model.demote(KEY, "dc1", now=1.2, final_sync=True)
    assert not model.writable(KEY, "dc1")
    assert model.syncing(KEY, "dc1")
    assert not model.peer_holds_all(KEY, "dc1")
    model.advance(now=1.4)
    assert model.syncing(KEY, "dc1"), "the final sync takes final_sync_latency"
    model.advance(now=1.5)
    assert not model.syncing(KEY, "dc1")
    assert model.peer_holds_all(KEY, "dc1")
    promotion = model.promote(KEY, "dc2", now=1.6, force=False)
    assert promotion is not None and promotion.lost == 0
    volume = model.get(KEY)
    assert volume is not None
    assert volume.lost_at_promotion == 0
    assert held(model, "dc2") == volume.acknowledged == 17
    assert volume.last_shipment_duration == CONFIG.final_sync_latency
    # The old primary now follows the new one.
    write(model, "dc2", 2)
    model.advance(now=3.0)
    assert held(model, "dc1") == 19
    assert model.replicating(KEY, "dc2")
    assert not model.diverged(KEY, "dc1")


def test_a_stalled_final_sync_never_finishes_until_released() -> None:
    model = model_with_primary()
    write(model, "dc1", 3)
    model.demote(KEY, "dc1", now=0.1, final_sync=True)
    model.advance(now=5.0, stalled=lambda volume: True)
    assert model.syncing(KEY, "dc1")
    assert held(model, "dc2") == 0
    model.advance(now=5.1)
    assert not model.syncing(KEY, "dc1")
    assert held(model, "dc2") == 3


def test_final_sync_waits_for_the_peer_site() -> None:
    model = model_with_primary()
    write(model, "dc1", 3)
    model.set_site("dc2", up=False)
    model.demote(KEY, "dc1", now=0.0, final_sync=True)
    model.advance(now=1.0)
    assert model.syncing(KEY, "dc1")
    model.set_site("dc2", up=True)
    model.advance(now=1.1)
    assert held(model, "dc2") == 3


def test_demote_is_idempotent() -> None:
    model = model_with_primary()
    write(model, "dc1", 3)
    model.demote(KEY, "dc1", now=0.0, final_sync=True)
    model.advance(now=0.3)
    model.demote(KEY, "dc1", now=0.4, final_sync=True)
    assert not model.syncing(KEY, "dc1"), "nothing left to ship: no second final sync"


def test_promotion_is_refused_while_the_peer_is_writable_unless_forced() -> None:
    model = model_with_primary()
    with pytest.raises(PromotionRefusedError):
        model.promote(KEY, "dc2", now=0.1, force=False)
    promotion = model.promote(KEY, "dc2", now=0.2, force=True)
    assert promotion is not None and promotion.forced and promotion.peer_writable and promotion.peer_up
    volume = model.get(KEY)
    assert volume is not None
    assert volume.writable_sides() == ["dc1", "dc2"]
    assert len(volume.dual_writable) == 1
    assert model.promote(KEY, "dc2", now=0.3, force=False) is None, "already writable: nothing to do"


def test_unplanned_promotion_loses_exactly_the_writes_after_the_last_shipment() -> None:
    model = model_with_primary()
    write(model, "dc1", 20)
    model.advance(now=1.0)
    write(model, "dc1", 6)
    model.set_site("dc1", up=False)
    write(model, "dc1", 4)  # the site is down: these never happen
    promotion = model.promote(KEY, "dc2", now=1.5, force=True)
    volume = model.get(KEY)
    assert volume is not None and promotion is not None
    assert promotion.lost == volume.lost_at_promotion == 6
    assert volume.acknowledged - volume.last_shipped_count == 6
    assert not promotion.peer_up
    assert "down" in volume.dual_writable[0][1]


def test_resync_discards_divergent_writes_and_counts_split_brain_writes() -> None:
    model = model_with_primary()
    write(model, "dc1", 10)
    model.advance(now=1.0)
    write(model, "dc1", 2)
    model.set_site("dc1", up=False)
    model.promote(KEY, "dc2", now=1.2, force=True)
    write(model, "dc2", 5)
    model.set_site("dc1", up=True)  # the old primary returns, still writable: split-brain
    write(model, "dc1", 3)
    volume = model.get(KEY)
    assert volume is not None
    assert volume.split_brain_writes == 3
    assert model.diverged(KEY, "dc1")
    model.advance(now=2.0)
    assert held(model, "dc1") == 15, "no shipment between two writable sides"
    model.demote(KEY, "dc1", now=2.1, final_sync=False)
    model.advance(now=3.0)
    assert model.diverged(KEY, "dc1")
    assert held(model, "dc1") == 15, "a diverged replica receives nothing until resynced"
    model.request_resync(KEY, "dc1", now=3.1)
    assert model.syncing(KEY, "dc1")
    model.advance(now=3.5)
    assert model.syncing(KEY, "dc1"), "the resync takes resync_latency"
    model.advance(now=3.6)
    assert not model.syncing(KEY, "dc1")
    assert held(model, "dc1") == held(model, "dc2") == 15
    assert volume.discarded_at_resync == 5, "2 unshipped + 3 split-brain writes"
    assert not model.diverged(KEY, "dc1")
    # Bookkeeping: each acknowledged write is held by the primary or was lost.
    assert volume.acknowledged == held(model, "dc2") + volume.lost_at_promotion + volume.split_brain_writes


def test_resync_waits_until_the_peer_is_primary() -> None:
    model = model_with_primary()
    write(model, "dc1", 4)
    model.demote(KEY, "dc1", now=0.0, final_sync=False)
    model.request_resync(KEY, "dc1", now=0.0)
    model.advance(now=1.0)
    assert model.syncing(KEY, "dc1")
    promotion = model.promote(KEY, "dc2", now=1.0, force=False)
    assert promotion is not None and promotion.lost == 4, "a forced resync after demote loses unshipped writes"
    model.advance(now=1.1)
    assert not model.syncing(KEY, "dc1")
    assert held(model, "dc1") == 0


def test_snapshots_arrive_with_shipments() -> None:
    model = model_with_primary()
    write(model, "dc1", 3)
    point = model.snapshot(KEY, "dc1")
    write(model, "dc1", 2)
    assert model.holds_snapshot(KEY, "dc1", point)
    assert not model.holds_snapshot(KEY, "dc2", point)
    model.advance(now=1.0)
    assert model.holds_snapshot(KEY, "dc2", point)
    unknown = VolumeKey("pg-prod", "other")
    assert model.holds_snapshot(unknown, "dc2", model.snapshot(unknown, "dc1"))


def test_bootstrap_only_chooses_the_first_primary() -> None:
    model = ReplicationModel(("dc1", "dc2"), CONFIG)
    assert model.bootstrap(KEY, "dc2", now=0.0)
    assert model.writable(KEY, "dc2")
    model.demote(KEY, "dc2", now=0.1, final_sync=True)
    assert not model.bootstrap(KEY, "dc1", now=0.2)
    assert not model.writable(KEY, "dc1")


def test_group_last_shipment_is_the_oldest_volume() -> None:
    model = model_with_primary()
    other = VolumeKey("pg-prod", "wal")
    model.ensure(other, now=0.0)
    model.promote(other, "dc1", now=0.0, force=False)
    assert group_last_shipment(model, [KEY, other]) is None
    model.advance(now=1.0)
    model.ship_now(KEY, now=1.5)
    assert group_last_shipment(model, [KEY, other]) == 1.0
    assert group_last_shipment(model, []) is None


@pytest.mark.parametrize(
    ("a", "held_a", "b", "held_b", "expected"),
    [
        (((0, 0),), 10, ((0, 0),), 7, 7),
        (((0, 0),), 10, ((0, 0), (1, 8)), 12, 8),
        (((0, 0), (1, 8)), 9, ((0, 0), (2, 5)), 20, 5),
        (((0, 0), (1, 8)), 12, ((0, 0), (1, 8)), 12, 12),
        (((0, 0), (1, 8)), 8, ((0, 0),), 10, 8),
    ],
)
def test_common_prefix(
    a: tuple[tuple[int, int], ...], held_a: int, b: tuple[tuple[int, int], ...], held_b: int, expected: int
) -> None:
    assert common_prefix(a, held_a, b, held_b) == expected
    assert common_prefix(b, held_b, a, held_a) == expected
