"""End to end through the real CLI: the failure scenarios of the simulated lab, against the upstream csi-addons.

The very scenarios of ``tests/e2e/test_compensation.py`` and ``tests/e2e/test_worker_crash.py`` (imported, not
copied), here on this folder's lab and for each of its groups (pg-prod's VGR, redis-prod's single VR), where the
csi-addons manager and sidecar write every VolumeGroupReplication and VolumeReplication status and the faults
are injected at the driver socket the sidecar calls (``fail-demote``, ``fail-promote``) or in the storage behind it
(``stall-final-sync``):

- a demote failing forever, a stalled final sync and a promotion failing forever are each compensated (exit 4,
  dc1 Primary again with the application, nothing lost), as is an ``abort`` during the final-sync wait;
- an undo that fails stops the compensation (exit 5) and ``resume`` finishes it on dc1;
- the worker SIGKILLed during the final-sync wait: the operation finishes on a new worker, every write step once.

The invariant sampler runs throughout each.
"""

from __future__ import annotations

from tests.e2e.test_compensation import (
    test_abort_during_final_sync_is_compensated,
    test_an_undo_that_fails_is_finished_by_resume,
    test_demote_failing_forever_is_compensated,
    test_promotion_failing_forever_is_compensated,
    test_stalled_final_sync_is_compensated,
)
from tests.e2e.test_worker_crash import test_worker_killed_during_final_sync_wait

__all__ = [
    "test_abort_during_final_sync_is_compensated",
    "test_an_undo_that_fails_is_finished_by_resume",
    "test_demote_failing_forever_is_compensated",
    "test_promotion_failing_forever_is_compensated",
    "test_stalled_final_sync_is_compensated",
    "test_worker_killed_during_final_sync_wait",
]
