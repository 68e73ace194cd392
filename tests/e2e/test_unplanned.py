"""End to end through the real CLI: unplanned failover of pg-prod after losing site dc1, then fence-on-return.

``orchestrate sandbox site-down dc1`` stops dc1's storage and kills its apiserver; ``failover --unplanned
--detach`` promotes dc2 and starts the application there; the operation ends FailedOver and leaves ``fence/pg-prod``
waiting for dc1. Checked meanwhile: ``status`` (Primary dc2, the fence pending, in JSON and for a person), a
failback refused while dc1 is not fenced, the application's pods, and the data-loss window the workflow reports
against the simulator's ledger:

- ``last_sync_seen`` (the workflow's progress, read through the Temporal client: ``status`` does not show it)
  equals each volume's last shipment to the second (``lastSyncTime`` has one-second precision);
- ``data_loss_window_seconds`` is the promotion time minus that, up to the few seconds between the workflow
  deciding to promote and the storage promoting;
- each volume lost at the promotion exactly the writes dc1 acknowledged after its last shipment (what dc1 held at
  the outage minus ``last_shipped_count``).

The group monitor observes every second, so the last shipment before the outage may not have been seen yet when
the site dies. The test therefore stretches the shipment interval for the moment of the outage (the last shipment
then stays the last one for minutes), waits until the monitor reports that shipment, and only then kills the
site; after the outage it checks that no shipment happened in between. ``sandbox site-up dc1`` then lets the
fence stop dc1's workloads and demote it with resync: ``status`` shows the fence done and the group protected with
Primary dc2. The invariant sampler runs throughout, with dc1 declared as
the lost primary (its stale Primary is the documented exception until fenced).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.e2e.configs import (
    app_pods,
    desired_replicas,
    lab_cli,
    monitor_seen,
    slow_shipments,
    wait_for,
    wait_for_status,
    workflow_progress,
    workflow_result,
)
from tests.e2e.conftest import FullLab

GROUP = "pg-prod"
PROMOTION_LATENCY = 5.0
"""Seconds the storage may take to promote after the workflow measured the window (activity + controller)."""


def _whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _kill_site_once_monitor_saw_last_shipment(full_lab: FullLab) -> datetime:
    """Lose dc1 (through the CLI) right after the monitor has seen its last shipment; return that shipment's time."""
    with slow_shipments(full_lab, seconds=600):
        shipments = {v.last_shipment for v in full_lab.simulator.ledger(GROUP).volumes}
        assert len(shipments) == 1 and None not in shipments, shipments
        (last_shipment,) = shipments
        assert last_shipment is not None

        def monitor_caught_up() -> bool:
            seen = monitor_seen(full_lab, GROUP)
            return seen is not None and seen.last_sync_seen == _whole_second(last_shipment)

        wait_for(monitor_caught_up, "the group monitor reports the last shipment", timeout=30)
        lab_cli(full_lab, "site-down", "dc1")
    return last_shipment


def test_unplanned_failover_then_fence_on_return(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    before = {v.pvc: v for v in full_lab.simulator.ledger(GROUP).volumes}
    with sampler_for(GROUP, allow_lost_primary="dc1"):
        last_shipment = _kill_site_once_monitor_saw_last_shipment(full_lab)
        at_outage = {v.pvc: v for v in full_lab.simulator.ledger(GROUP).volumes}
        assert all(v.last_shipment == last_shipment for v in at_outage.values()), "a shipment slipped in"
        assert all(not v.sides["dc1"].site_up for v in at_outage.values())

        started = full_lab.cli("failover", "--group", GROUP, "--unplanned", "--yes", "--detach", "--json")
        assert started.code == 0, started.stdout + started.stderr
        assert started.json()["detached"] is True

        failed_over = wait_for_status(
            full_lab,
            GROUP,
            lambda v: v["operation"]["status"] == "COMPLETED" and v["primary"] == "dc2",
            "unplanned failover done, with Primary dc2 and the fence pending",
        )
        assert failed_over["operation"]["outcome"] == "succeeded"
        fence = failed_over["operation"]["fence"]
        assert (fence["stage"], fence["done"], fence["old_primary"]) == ("waiting", False, "dc1"), fence
        assert fence["waiting_since"] is not None and fence["probes"] >= 1
        dc1 = next(side for side in failed_over["sides"] if side["cluster"] == "dc1")
        assert not dc1["reachable"]
        human = full_lab.cli("status", "--group", GROUP)
        assert "fence fence/pg-prod PENDING: dc1 is not fenced yet" in " ".join(human.stdout.split()), human.stdout
        busy = full_lab.cli("failback", "--group", GROUP, "--yes", "--json")
        assert busy.code == 3 and "not fenced yet" in busy.json()["error"]["message"], busy.stdout + busy.stderr
        pods = wait_for(lambda: (p := app_pods(full_lab, GROUP))["dc2"] and p, "the application running on dc2")
        assert pods["dc1"] is None  # dc1 does not answer; the sampler checked dc2 was alone while both answered

        # The data-loss window the workflow reports, against the storage's ledger.
        progress = workflow_progress(full_lab, GROUP)
        assert progress.last_sync_seen is not None and progress.data_loss_window_seconds is not None
        assert progress.last_sync_seen == _whole_second(last_shipment)
        for volume in at_outage.values():
            assert volume.last_shipment is not None
            assert _whole_second(volume.last_shipment) == progress.last_sync_seen, volume.pvc
        promoted = {v.pvc: v for v in full_lab.simulator.ledger(GROUP).volumes}
        for pvc, volume in promoted.items():
            promotion = volume.promotions[-1]
            assert (promotion.cluster, promotion.forced, promotion.peer_up) == ("dc2", True, False), promotion
            measured = (promotion.time - progress.last_sync_seen).total_seconds()
            assert 0 <= measured - progress.data_loss_window_seconds <= PROMOTION_LATENCY, (
                measured,
                progress.data_loss_window_seconds,
            )
            # Exactly the writes dc1 acknowledged after its last shipment were lost.
            expected = at_outage[pvc].sides["dc1"].held - at_outage[pvc].last_shipped_count
            assert expected > 0, "the application wrote nothing between the last shipment and the outage"
            assert promotion.held == at_outage[pvc].last_shipped_count
            assert promotion.peer_held == at_outage[pvc].sides["dc1"].held
            assert promotion.lost == expected, (pvc, promotion)
            assert volume.lost_at_promotion - before[pvc].lost_at_promotion == expected

        # The site returns: fence-on-return stops dc1's workloads and demotes it with resync.
        lab_cli(full_lab, "site-up", "dc1")
        done = wait_for_status(
            full_lab,
            GROUP,
            lambda v: v["operation"]["fence"]["done"] and v["protected"],
            "the fence done and the group protected again",
            timeout=120,
        )

    assert done["primary"] == "dc2", done["summary"]
    assert done["summary"] == "protected: Primary on dc2, replicating to dc1"
    assert done["operation"]["outcome"] == "succeeded"
    assert done["operation"]["phase"] == "FailedOver"
    window = f"data-loss window {progress.data_loss_window_seconds:.1f}s"
    assert done["operation"]["message"] == (
        f"{GROUP} failed over from dc1 to dc2; {window}; fence/{GROUP} demotes dc1 with resync when it answers again"
    )
    assert done["operation"]["fence"]["stage"] == "fenced", done["operation"]["fence"]
    roles = {side["cluster"]: side["status"]["role"] for side in done["sides"]}
    assert roles == {"dc1": "Secondary", "dc2": "Primary"}

    result = workflow_result(full_lab, GROUP)
    assert (result.outcome.value, result.progress.phase.value) == ("succeeded", "FailedOver")
    assert result.progress.last_sync_seen == progress.last_sync_seen
    assert result.progress.data_loss_window_seconds == progress.data_loss_window_seconds
    assert result.progress.fence_workflow == f"fence/{GROUP}"
    fenced = [(s["name"], s["cluster"], s["outcome"]) for s in done["operation"]["fence"]["steps"]]
    assert ("stop workloads on returning site", "dc1", "done") in fenced
    assert ("reprotect with resync", "dc1", "done") in fenced and ("wait for resync", "dc1", "done") in fenced

    assert desired_replicas(full_lab, GROUP)["dc1"] == {"postgres": 0}
    pods = app_pods(full_lab, GROUP)
    assert pods["dc1"] == [] and pods["dc2"], pods
    after = full_lab.simulator.ledger(GROUP)
    for volume in after.volumes:
        assert volume.writable == ["dc2"], volume
        # The resync dropped from dc1 what dc2 never had: the lost writes, plus any write dc1's application made
        # between its storage returning and the fence stopping it.
        lost = volume.promotions[-1].lost if volume.promotions[-1].cluster == "dc2" else None
        discarded = volume.discarded_at_resync - before[volume.pvc].discarded_at_resync
        split_brain = volume.split_brain_writes - before[volume.pvc].split_brain_writes
        assert lost is not None and discarded == lost + split_brain, (volume.pvc, lost, discarded, split_brain)
    history = full_lab.cli("history", "--group", GROUP, "--json").json()
    assert (history[0]["operation"], history[0]["outcome"]) == ("unplanned", "succeeded")
