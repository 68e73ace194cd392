"""End to end through the real CLI: the old primary is fenced even when the unplanned failover ends badly.

The scenario of the safety issue, as a new user tried it: pg-prod gets a post-hook whose URL does not answer,
``sandbox site-down dc1``, ``failover --unplanned --yes``. The operation ends "needs attention" (exit 5) after the
hook's retries, with dc2 Primary and the application running there, and names ``orchestrate resume``; but the fence
(``fence/pg-prod``) was started at the promotion and waits for dc1 regardless. ``status`` shows it pending. After
``sandbox site-up dc1`` the fence stops dc1's workloads and demotes it with resync: no second Primary stays, the
application stops on dc1, and the simulator's ledger shows dc2 as the only writable side. Then, with the hook fixed
(the variant removed), ``orchestrate resume`` finishes the post-hooks and the group is protected again.

The invariant sampler runs throughout with dc1 as the declared lost primary; the window in which the returned dc1
still served next to dc2 (before the fence reached it: the orchestrator cannot reach a site earlier than it
answers) is measured and printed, and bounded by the fence's longest probe interval plus the time to stop.
"""

from __future__ import annotations

from typing import Any

from sandbox.processes import free_port
from tests.e2e.configs import app_pods, config_variant, lab_cli, wait_for, wait_for_status
from tests.e2e.conftest import FullLab

GROUP = "pg-prod"
FENCE_BOUND = 45.0
"""Seconds a returned site may serve before it is fenced: the longest probe pause (30 s) plus stopping it."""


def test_failing_post_hook_still_fences_the_returning_site(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    dead_hook = {"post": [{"name": "dns-switch", "url": f"http://127.0.0.1:{free_port()}/switch", "timeout": "1s"}]}
    sampler = sampler_for(GROUP, allow_lost_primary="dc1")
    with config_variant(full_lab, GROUP, hooks=dead_hook), sampler:
        lab_cli(full_lab, "site-down", "dc1")
        result = full_lab.cli("failover", "--group", GROUP, "--unplanned", "--yes", "--json")
        assert result.code == 5, result.stdout + result.stderr
        document = result.json()
        assert document["outcome"] == "needs-attention"
        assert "post-hook dns-switch" in document["message"], document["message"]
        assert f"orchestrate resume --group {GROUP}" in document["message"], document["message"]
        assert document["progress"]["fence_workflow"] == f"fence/{GROUP}"
        assert document["progress"]["left_to_do"] == ["post-hooks"]

        pending = wait_for_status(
            full_lab,
            GROUP,
            lambda v: v["primary"] == "dc2" and not v["operation"]["fence"]["done"],
            "dc2 Primary and the fence pending",
        )
        assert pending["operation"]["fence"]["old_primary"] == "dc1"
        assert app_pods(full_lab, GROUP)["dc2"], "the application runs on dc2"

        lab_cli(full_lab, "site-up", "dc1")
        fenced = wait_for_status(
            full_lab,
            GROUP,
            lambda v: v["operation"]["fence"]["done"],
            "the fence done after dc1 returned",
            timeout=120,
        )
        assert fenced["operation"]["fence"]["stage"] == "fenced", fenced["operation"]["fence"]
        roles = {side["cluster"]: side["status"]["role"] for side in fenced["sides"]}
        assert roles == {"dc1": "Secondary", "dc2": "Primary"}, fenced["summary"]
        pods = wait_for(lambda: (p := app_pods(full_lab, GROUP))["dc1"] == [] and p, "no application pod on dc1")
        assert pods["dc2"], pods
        assert all(v.writable == ["dc2"] for v in full_lab.simulator.ledger(GROUP).volumes)

    window = sampler.returned_running_samples * sampler.interval
    primary_window = sampler.returned_primary_samples * sampler.interval
    print(f"\nreturned dc1 served next to dc2 for ~{window:.1f}s; reported Primary for ~{primary_window:.1f}s")
    assert window <= FENCE_BOUND and primary_window <= FENCE_BOUND

    resumed = full_lab.cli("resume", "--group", GROUP, "--yes", "--json")
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    finished = resumed.json()
    assert (finished["outcome"], finished["progress"]["phase"]) == ("succeeded", "Resumed"), finished["message"]
    assert (finished["progress"]["source"], finished["progress"]["target"]) == ("dc1", "dc2")
    protected = wait_for_status(full_lab, GROUP, lambda v: v["protected"], "protected again after resume")
    assert protected["primary"] == "dc2"
