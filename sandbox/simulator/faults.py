"""The registry of injected faults: which group and cluster a fault applies to, and how often it still fires.

Controllers ask :meth:`FaultRegistry.take` before an attempt that a counted fault can fail (each call is one
failed attempt) and :meth:`FaultRegistry.active` for faults that hold while they are set. Not thread-safe: the
simulator calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Iterable

from sandbox.simulator.schemas import COUNTED_FAULTS, FaultKind, FaultSpec, FaultState


class FaultRegistry:
    """Injected faults, at most one per (group, cluster, kind)."""

    def __init__(self) -> None:
        self._faults: dict[tuple[str, str | None, FaultKind], FaultState] = {}

    def add(self, spec: FaultSpec) -> FaultState:
        """Inject ``spec``, replacing a fault of the same group, cluster and kind."""
        remaining = spec.times if spec.kind in COUNTED_FAULTS else None
        state = FaultState(**spec.model_dump(), remaining=remaining)
        self._faults[(spec.group, spec.cluster, spec.kind)] = state
        return state

    def remove(self, group: str | None = None, cluster: str | None = None, kind: FaultKind | None = None) -> int:
        """Remove the faults matching every given filter (all faults when none is given); returns how many."""
        doomed = [
            key
            for key in self._faults
            if (group is None or key[0] == group)
            and (cluster is None or key[1] == cluster)
            and (kind is None or key[2] == kind)
        ]
        for key in doomed:
            del self._faults[key]
        return len(doomed)

    def entries(self) -> list[FaultState]:
        """Every fault, exhausted ones included (they show how often they fired)."""
        return list(self._faults.values())

    def _match(self, kind: FaultKind, groups: Iterable[str], cluster: str) -> FaultState | None:
        wanted = set(groups)
        for (group, fault_cluster, fault_kind), state in self._faults.items():
            if fault_kind == kind and group in wanted and fault_cluster in (None, cluster) and not state.exhausted:
                return state
        return None

    def take(self, kind: FaultKind, groups: Iterable[str], cluster: str) -> FaultState | None:
        """Fire a counted fault for one attempt: the fault after firing, or ``None`` when none applies."""
        state = self._match(kind, groups, cluster)
        if state is None:
            return None
        remaining = None if state.remaining is None else state.remaining - 1
        fired = state.model_copy(update={"fired": state.fired + 1, "remaining": remaining})
        self._faults[(state.group, state.cluster, state.kind)] = fired
        return fired

    def active(self, kind: FaultKind, groups: Iterable[str], cluster: str) -> bool:
        """Whether a fault of ``kind`` holds for any of ``groups`` on ``cluster`` (without firing it)."""
        return self._match(kind, groups, cluster) is not None
