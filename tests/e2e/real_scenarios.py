"""The failover scenarios every real-controller e2e package runs on its group (csi-addons, Dell).

Each asserts through the real CLI with the invariant sampler running; the packages add what is particular to their
controllers (who writes the status, their findings).
"""

from __future__ import annotations

from typing import Any

from tests.e2e.configs import lab_cli, wait_for_status
from tests.e2e.conftest import FullLab, lost_writes


def planned_failover_and_failback(full_lab: FullLab, group: str, sampler_for: Any) -> None:
    """Fail ``group`` over to dc2 and back, losing no acknowledged write, dc1 the only writer at the end."""
    lost_before = lost_writes(full_lab, group)
    with sampler_for(group):
        moved = full_lab.cli("failover", "--group", group, "--yes", "--json")
        assert moved.code == 0, moved.stdout + moved.stderr
        assert moved.json()["progress"]["phase"] == "Relocated"
        status = full_lab.cli("status", "--group", group, "--json").json()[0]
        assert status["primary"] == "dc2" and status["protected"], status["summary"]
        assert lost_writes(full_lab, group) == lost_before
        back = full_lab.cli("failback", "--group", group, "--yes", "--json")
        assert back.code == 0, back.stdout + back.stderr
    status = full_lab.cli("status", "--group", group, "--json").json()[0]
    assert status["primary"] == "dc1" and status["protected"], status["summary"]
    assert lost_writes(full_lab, group) == lost_before
    assert all(v.writable == ["dc1"] for v in full_lab.simulator.ledger(group).volumes)


def unplanned_failover_and_fence_on_return(
    full_lab: FullLab, group: str, sampler_for: Any, fence_timeout: float = 150
) -> None:
    """Lose dc1, fail ``group`` over unplanned, bring dc1 back: it is fenced and resynced, dc2 the only writer."""
    with sampler_for(group, allow_lost_primary="dc1"):
        assert lab_cli(full_lab, "site-down", "dc1").code == 0
        moved = full_lab.cli("failover", "--group", group, "--unplanned", "--yes", "--json")
        assert moved.code == 0, moved.stdout + moved.stderr
        assert moved.json()["progress"]["phase"] == "FailedOver"
        assert lab_cli(full_lab, "site-up", "dc1").code == 0
        view = wait_for_status(
            full_lab,
            group,
            lambda v: v["primary"] == "dc2" and v["protected"] and v["operation"]["fence"]["done"],
            "dc1 fenced and resynced",
            fence_timeout,
        )
    assert view["operation"]["fence"]["stage"] == "fenced", view["operation"]["fence"]
    volumes = full_lab.simulator.ledger(group).volumes
    assert all(v.writable == ["dc2"] for v in volumes), [v.writable for v in volumes]
