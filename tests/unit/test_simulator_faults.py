"""Unit tier: the simulator's fault registry (matching by group and cluster, counted faults, removal filters)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sandbox.simulator.faults import FaultRegistry
from sandbox.simulator.schemas import FaultKind, FaultSpec


def test_counted_fault_fires_n_times_then_stops() -> None:
    registry = FaultRegistry()
    registry.add(FaultSpec(group="pg", kind=FaultKind.FAIL_DEMOTE, times=2))
    fired = [registry.take(FaultKind.FAIL_DEMOTE, {"pg"}, "dc1") for _ in range(3)]
    assert [f.fired if f else None for f in fired] == [1, 2, None]
    (state,) = registry.entries()
    assert state.exhausted and state.remaining == 0, "exhausted faults stay listed with their count"


def test_forever_fault_keeps_firing() -> None:
    registry = FaultRegistry()
    registry.add(FaultSpec(group="pg", kind=FaultKind.FAIL_PROMOTE))
    for attempt in range(1, 6):
        fault = registry.take(FaultKind.FAIL_PROMOTE, {"pg"}, "dc2")
        assert fault is not None and fault.fired == attempt and fault.remaining is None


def test_matching_by_group_cluster_and_kind() -> None:
    registry = FaultRegistry()
    registry.add(FaultSpec(group="pg", kind=FaultKind.STALL_FINAL_SYNC, cluster="dc1"))
    assert registry.active(FaultKind.STALL_FINAL_SYNC, {"pg", "rg-pg"}, "dc1")
    assert not registry.active(FaultKind.STALL_FINAL_SYNC, {"pg"}, "dc2"), "restricted to dc1"
    assert not registry.active(FaultKind.STALL_FINAL_SYNC, {"other"}, "dc1")
    assert not registry.active(FaultKind.FAIL_DEMOTE, {"pg"}, "dc1")
    assert registry.take(FaultKind.STALL_FINAL_SYNC, {"pg"}, "dc1") is not None


def test_adding_the_same_fault_replaces_it() -> None:
    registry = FaultRegistry()
    registry.add(FaultSpec(group="pg", kind=FaultKind.FAIL_DEMOTE, times=1))
    registry.take(FaultKind.FAIL_DEMOTE, {"pg"}, "dc1")
    registry.add(FaultSpec(group="pg", kind=FaultKind.FAIL_DEMOTE, times=3))
    (state,) = registry.entries()
    assert (state.fired, state.remaining) == (0, 3)


def test_remove_filters() -> None:
    registry = FaultRegistry()
    registry.add(FaultSpec(group="a", kind=FaultKind.FAIL_DEMOTE))
    registry.add(FaultSpec(group="a", kind=FaultKind.FAIL_PROMOTE, cluster="dc2"))
    registry.add(FaultSpec(group="b", kind=FaultKind.FAIL_DEMOTE))
    assert registry.remove(group="a", kind=FaultKind.FAIL_PROMOTE) == 1
    assert registry.remove(kind=FaultKind.FAIL_DEMOTE, cluster="dc9") == 0
    assert registry.remove(group="b") == 1
    assert registry.remove() == 1
    assert registry.entries() == []


def test_non_counted_kinds_ignore_times_and_specs_are_validated() -> None:
    state = FaultRegistry().add(FaultSpec(group="pg", kind=FaultKind.STOP_LAG_UPDATES, times=3))
    assert state.remaining is None
    with pytest.raises(ValidationError):
        FaultSpec(group="pg", kind="explode")
    with pytest.raises(ValidationError):
        FaultSpec(group="", kind=FaultKind.FAIL_DEMOTE)
    with pytest.raises(ValidationError):
        FaultSpec(group="pg", kind=FaultKind.FAIL_DEMOTE, times=0)
