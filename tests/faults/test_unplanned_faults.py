"""Fault cases of the unplanned path, through the real CLI with the invariant sampler running.

- A failing post-hook: ``site-down dc1``, ``failover --unplanned`` ends "needs attention"; the fence still fences
  dc1 when it returns (``site-up``), and ``resume`` (hook fixed) finishes: the safety issue's reproduction.
- The source returning during approval: the group's policy wants approval for unplanned moves; dc1 is lost, the
  operation waits for approval, dc1 returns, ``approve``: the fresh preflight refuses (dc1 answers) and nothing
  changes, dc1 stays Primary with the application.
"""

from __future__ import annotations

import time
from typing import Any

from sandbox.processes import free_port
from tests.e2e.configs import config_variant, group_status, lab_cli, unchanged_facts, wait_for, wait_for_status
from tests.e2e.conftest import FullLab
from tests.faults.report import REPORT

GROUP = "pg-prod"


def _row(sampler: Any, case: str, outcome: str, status: str, began: float, *, resumed: bool = False) -> None:
    REPORT.append(
        {
            "group": GROUP,
            "backend": "csi-addons",
            "mode": "unplanned",
            "step": case,
            "fault": "site-down",
            "injected": "inside",
            "outcome": outcome,
            "resumed": resumed,
            "max_writable": sampler.max_writable,
            "both_running": sampler.both_running_samples,
            "handover_seconds": 0.0,
            "lost": 0,
            "wedged": False,
            "explained": True,
            "seconds": time.monotonic() - began,
            "status": status,
        }
    )


def test_failing_post_hook_then_fence_and_resume(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    began = time.monotonic()
    hooks = {"post": [{"name": "dns-switch", "url": f"http://127.0.0.1:{free_port()}/switch", "timeout": "1s"}]}
    sampler = sampler_for(GROUP, allow_lost_primary="dc1")
    with config_variant(full_lab, GROUP, hooks=hooks), sampler:
        lab_cli(full_lab, "site-down", "dc1")
        failed = full_lab.cli("failover", "--group", GROUP, "--unplanned", "--yes", "--json")
        assert failed.code == 5, failed.stdout + failed.stderr
        lab_cli(full_lab, "site-up", "dc1")
        wait_for_status(full_lab, GROUP, lambda v: v["operation"]["fence"]["done"], "fence done", timeout=120)
    resumed = full_lab.cli("resume", "--group", GROUP, "--yes", "--json")
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    view = wait_for_status(full_lab, GROUP, lambda v: v["protected"], "protected after resume")
    assert view["primary"] == "dc2"
    _row(sampler, "post-hook-fails", "needs-attention", view["summary"], began, resumed=True)


def test_source_returning_during_approval_is_refused(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    began = time.monotonic()
    sampler = sampler_for(GROUP, allow_lost_primary="dc1")
    with config_variant(full_lab, GROUP, approval={"unplanned": True}), sampler:
        lab_cli(full_lab, "site-down", "dc1")
        started = full_lab.cli("failover", "--group", GROUP, "--unplanned", "--yes", "--detach", "--json")
        assert started.code == 0, started.stdout + started.stderr
        wait_for_status(
            full_lab, GROUP, lambda v: v["operation"]["phase"] == "WaitingForApproval", "waiting for approval"
        )
        lab_cli(full_lab, "site-up", "dc1")
        wait_for(lambda: group_status(full_lab, GROUP)["primary"] == "dc1", "dc1 answers again as Primary")
        before = unchanged_facts(full_lab, GROUP)
        approved = full_lab.cli("approve", "--group", GROUP, "--json")
        assert approved.code == 0, approved.stdout + approved.stderr
        view = wait_for_status(
            full_lab, GROUP, lambda v: v["operation"]["status"] == "COMPLETED", "the operation ended"
        )
        assert view["operation"]["outcome"] == "refused", view["operation"]
        assert "after approval" in view["operation"]["message"] and "dc1 answers" in view["operation"]["message"]
        after = unchanged_facts(full_lab, GROUP)
        assert {k: v for k, v in after.items() if k != "operation"} == {
            k: v for k, v in before.items() if k != "operation"
        }
        assert view["primary"] == "dc1"
    _row(sampler, "source-returns-during-approval", "refused", view["summary"], began)
