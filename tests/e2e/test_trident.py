"""End to end through the real CLI: every failover scenario on pg-trident, against the corrected Trident simulator.

Trident's TridentMirrorRelationship controller lives inside Trident and needs ONTAP, so pg-trident stays with the
storage simulator, which follows the upstream code: a promotion whose snapshot has not reached the destination
fails the relationship for good, so the adapter first has a mirror update carry the sync point's snapshot and
promotes only once it has arrived. The scenarios every real-controller package runs, here on pg-trident:

- a planned failover and failback, nothing lost, dc1 the only writer at the end;
- an unplanned failover with dc1 lost and its fence on return (demoted with resync, dc2 the only writer);
- the compensation faults of ``tests/e2e/test_compensation.py`` (imported, not copied): a promotion failing
  forever (Trident fails the TMR for good; the undo rewrites it to follow dc1 again, and the wait for that must
  not end on the promotion's failure, which is history once the spec changed), an ``abort`` during the
  final-sync wait (held in the snapshot transfer to dc2), an undo that fails and is finished by ``resume``. The
  stalled snapshot transfer is that module's own Trident test; a demote failing has no Trident counterpart
  (Trident has no demote: the promotion at the sync point's snapshots is the handover);
- the worker SIGKILLed during the final-sync wait (``tests/e2e/test_worker_crash.py``, imported).

The invariant sampler runs throughout each.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import FullLab
from tests.e2e.real_scenarios import planned_failover_and_failback, unplanned_failover_and_fence_on_return
from tests.e2e.test_compensation import (
    test_abort_during_final_sync_is_compensated,
    test_an_undo_that_fails_is_finished_by_resume,
    test_promotion_failing_forever_is_compensated,
)
from tests.e2e.test_worker_crash import test_worker_killed_during_final_sync_wait

__all__ = [
    "test_abort_during_final_sync_is_compensated",
    "test_an_undo_that_fails_is_finished_by_resume",
    "test_promotion_failing_forever_is_compensated",
    "test_worker_killed_during_final_sync_wait",
]

GROUP = "pg-trident"


@pytest.fixture()
def scenario_group() -> str:
    """The imported scenarios run on pg-trident in this module."""
    return GROUP


def test_planned_failover_and_failback(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    planned_failover_and_failback(full_lab, GROUP, sampler_for)


def test_unplanned_failover_and_fence_on_return(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    unplanned_failover_and_fence_on_return(full_lab, GROUP, sampler_for)
