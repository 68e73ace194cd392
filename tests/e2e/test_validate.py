"""End to end through the real CLI: `orchestrate validate` on the lab, healthy and with a site down."""

from __future__ import annotations

from tests.e2e.conftest import FullLab


def test_validate_reports_every_group_and_a_lost_site(full_lab: FullLab, home: None) -> None:
    healthy = full_lab.cli("validate", "--json")
    assert healthy.code == 0, healthy.stdout + healthy.stderr
    report = healthy.json()
    assert report["valid"] is True and report["problems"] == []
    assert {(c["group"], c["cluster"]) for c in report["checks"]} == {
        (g.name, c) for g in full_lab.config.groups for c in g.clusters
    }

    full_lab.lab.cluster("dc1").stop_apiserver()
    try:
        broken = full_lab.cli("validate", "--json")
    finally:
        full_lab.lab.cluster("dc1").start_apiserver()
        full_lab.lab.save()
    assert broken.code == 1, broken.stdout + broken.stderr
    report = broken.json()
    assert report["valid"] is False
    assert len(report["problems"]) == len(full_lab.config.groups)
    assert all("on dc1" in problem for problem in report["problems"])
    assert all(not c["reachable"] for c in report["checks"] if c["cluster"] == "dc1")
