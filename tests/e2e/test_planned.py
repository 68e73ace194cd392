"""End to end through the real CLI: planned failover and failback of each demo group (every backend, and one VR).

The invariant sampler watches both sides during each run (never two Primary replicas, the application never on
both sites); afterwards ``status`` shows the group protected on the new side and the simulator's ledger shows no
acknowledged write lost.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import FullLab, lost_writes

GROUPS = ["pg-prod", "pg-unified", "pg-trident", "pg-powerstore", "redis-prod"]


@pytest.mark.parametrize("group", GROUPS)
def test_planned_failover_and_failback(full_lab: FullLab, home: None, sampler_for: Any, group: str) -> None:
    # Counted from here: an earlier unplanned scenario on the same lab lost writes on purpose.
    lost_before = lost_writes(full_lab, group)
    with sampler_for(group):
        moved = full_lab.cli("failover", "--group", group, "--yes", "--json")
        assert moved.code == 0, moved.stdout + moved.stderr
        result = moved.json()
        assert result["outcome"] == "succeeded"
        assert result["progress"]["phase"] == "Relocated"
        assert (result["progress"]["source"], result["progress"]["target"]) == ("dc1", "dc2")

        status = full_lab.cli("status", "--group", group, "--json").json()[0]
        assert status["primary"] == "dc2"
        assert status["protected"], status["summary"]
        assert lost_writes(full_lab, group) == lost_before

        back = full_lab.cli("failback", "--group", group, "--yes", "--json")
        assert back.code == 0, back.stdout + back.stderr
        assert back.json()["progress"]["target"] == "dc1"

    status = full_lab.cli("status", "--group", group, "--json").json()[0]
    assert status["primary"] == "dc1" and status["protected"], status["summary"]
    assert lost_writes(full_lab, group) == lost_before
    ledger = full_lab.simulator.ledger(group)
    assert all(v.writable == ["dc1"] for v in ledger.volumes)
    history = full_lab.cli("history", "--group", group, "--json").json()
    assert [h["operation"] for h in history[:2]] == ["failback", "planned"]
    assert all(h["outcome"] == "succeeded" for h in history[:2])
