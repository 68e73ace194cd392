"""End to end: a site failover started by an alert (a real Alertmanager, ``orchestrate serve``, ``amtool``).

A rule with ``site: dc1`` turns one alert into one ``site-failover/dc1``: every group of the twelve waits for
approval (their alert policy, which the worker enforces on a site failover's groups too), ``orchestrate approve
--site dc1`` lets each tier go as it comes, and every group ends relocated with no write lost; Alertmanager's
repeats join the running site failover instead of starting another. The groups are moved back by the CLI.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.alert_stack import AlertStack, alert_stack
from tests.e2e.configs import wait_for
from tests.e2e.conftest import FullLab, lost_writes
from tests.e2e.site.conftest import sampling

RULES = [
    {
        "name": "dc1-maintenance",
        "matchers": ['alertname="DatacenterMaintenance"', 'site="dc1"'],
        "site": "dc1",
        "operation": "planned",
        "cooldown": "30s",
    }
]


@pytest.fixture()
def stack(full_lab: FullLab, home: None, tmp_path: Path) -> Any:
    with alert_stack(full_lab, tmp_path / "alerting", RULES) as running:
        yield running


def _site(full_lab: FullLab) -> dict[str, Any]:
    status = full_lab.cli("status", "--site", "dc1", "--json")
    assert status.code == 0, status.stdout + status.stderr
    document: dict[str, Any] = status.json()
    return document


def test_an_alert_fails_the_site_over_once_and_each_tier_is_approved(
    full_lab: FullLab, stack: AlertStack, sampler_for: Any, groups: dict[str, int]
) -> None:
    lost_before = {g: lost_writes(full_lab, g) for g in groups}
    with sampling(sampler_for, groups):
        stack.amtool("alert", "add", "alertname=DatacenterMaintenance", "site=dc1")
        running = wait_for(lambda: _site(full_lab)["site_failover"], "the alert's site failover", timeout=60)
        assert running["triggered_by"] == "alertmanager:DatacenterMaintenance"
        assert running["alerts"][0]["rule"] == "dc1-maintenance"
        approvals = 0
        while True:
            site = _site(full_lab)["site_failover"]
            if site is None:
                break
            waiting = [g for g in site["groups"] if g["phase"] == "WaitingForApproval" and g["state"] == "running"]
            if waiting:
                approved = full_lab.cli("approve", "--site", "dc1", "--json")
                assert approved.code == 0, approved.stdout + approved.stderr
                approvals += 1
            assert approvals <= len(groups), "more approvals than groups"
            time.sleep(1)
        assert approvals >= 3  # one per tier at least: the groups of a tier start only after the previous one
        assert stack.metric("orchestrate_alert_decisions_total", action="started", kind="started") == 1
        assert stack.metric("orchestrate_alert_decisions_total", action="joined", kind="joined") >= 1
    statuses = {v["group"]: v for v in full_lab.cli("status", "--json").json()}
    assert {g: s["primary"] for g, s in statuses.items()} == dict.fromkeys(groups, "dc2")
    assert all(s["protected"] for s in statuses.values()), {g: s["summary"] for g, s in statuses.items()}
    assert {g: lost_writes(full_lab, g) for g in groups} == lost_before
    back = full_lab.cli("failover", "--site", "dc2", "--yes", "--parallel", "12", "--json")
    assert back.code == 0, back.stdout + back.stderr
