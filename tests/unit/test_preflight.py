"""Unit tier: ``activities.preflight.Preflight`` deciding "source lost" for an unplanned failover.

The source is a real endpoint on 127.0.0.1 (tests/unit/local_servers.py): an API server answering ``/version``
with 403, or a closed port. The target is the in-memory fake of tests/unit/fake_cluster.py (with a ``ping``)
holding the group's VolumeGroupReplication as a current Secondary.

Covers: source answering 403 -> FAIL "<source> lost" mentioning forbidden (one probe: an answer decides), and a
WARN with ``force``; source refusing connections for every probe (LossDetection probes=2, window=0.2s) -> PASS
"<source> lost" with "no answer to 2 of 2", the operation not refused and the source reported unreachable. And
the role observation of the monitors skipping a cluster that gave no answer moments ago (an operation's own
observation always asks). And a planned handover refused while the source reports its replication stopped (a
Dell link left FAILEDOVER, on RGs recorded from the real controllers), naming ``resume`` as the way out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from datetime import timedelta
from typing import cast

import httpx
import pytest

from activities.failover import FailoverActivities
from activities.groups import static_lookup
from activities.preflight import Preflight
from adapters.base import Backend
from clusters.api import ClusterApi
from clusters.registry import ClusterRegistry
from tests.unit.fake_cluster import FakeClusterApi, load_recorded
from tests.unit.local_servers import Answer, closed_port, cluster_api, http_server
from tests.unit.test_powerstore_real_recordings import site
from workflows.groups import GroupConfig, LossDetection, ReplicationConfig
from workflows.models import Finding, Operation, PreflightInput, PreflightReport, RolesInput, Verdict

FORBIDDEN = (
    b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"forbidden","reason":"Forbidden","code":403}'
)

GROUP = GroupConfig(
    name="pg-prod",
    namespace="pg-prod",
    backend=Backend.CSI_ADDONS,
    clusters=("dc1", "dc2"),
    replication=ReplicationConfig(name="postgres"),
    loss_detection=LossDetection(probes=2, window=timedelta(seconds=0.2)),
)


class TargetApi(FakeClusterApi):
    """The fake cluster, answering probes."""

    def ping(self, timeout: float = 2.0) -> None:
        return None


class Registry(ClusterRegistry):
    """A registry of ready-made API objects."""

    def __init__(self, apis: Mapping[str, ClusterApi | FakeClusterApi]) -> None:
        super().__init__([])
        self.apis = dict(apis)

    def api(self, name: str) -> ClusterApi:
        return cast(ClusterApi, self.apis[name])


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as exits:
        yield exits


def target() -> TargetApi:
    return TargetApi("dc2", load_recorded("csi-addons/secondary-final-sync-complete.yaml"))


def run_preflight(source: ClusterApi, *, force: bool = False) -> PreflightReport:
    activities = FailoverActivities(
        registry=Registry({"dc1": source, "dc2": target()}), groups=static_lookup([GROUP]), http=httpx.Client()
    )
    request = PreflightInput(group=GROUP.name, operation=Operation.UNPLANNED, source="dc1", target="dc2", force=force)
    return Preflight(activities, GROUP, request).run()


def finding(report: PreflightReport, check: str) -> Finding:
    found = [f for f in report.findings if f.check == check]
    assert len(found) == 1, report.findings
    return found[0]


def test_target_side_is_ready(stack: ExitStack) -> None:
    source = stack.enter_context(cluster_api(f"http://127.0.0.1:{closed_port()}", cluster="dc1"))
    report = run_preflight(source)
    assert finding(report, "dc2 reachable").verdict is Verdict.PASS
    assert finding(report, "dc2 is Secondary").verdict is Verdict.PASS, report.findings
    assert report.target_status is not None and report.target_status.cluster == "dc2"


def test_source_answering_403_is_not_lost(stack: ExitStack) -> None:
    server = stack.enter_context(http_server(Answer(status=403, body=FORBIDDEN)))
    source = stack.enter_context(cluster_api(server.url, cluster="dc1"))
    report = run_preflight(source)

    lost = finding(report, "dc1 lost")
    assert lost.verdict is Verdict.FAIL
    assert "forbidden" in lost.observed.lower()
    assert lost.remedy is not None and "--force" in lost.remedy
    assert report.refused
    assert not report.source_reachable  # it answered, but cannot be acted on: a forced failover fences it
    assert report.source_status is None
    assert server.answer.paths == ["/version"]  # one probe: an answer ends the assessment


def test_source_answering_403_forced_is_a_warning(stack: ExitStack) -> None:
    server = stack.enter_context(http_server(Answer(status=403, body=FORBIDDEN)))
    source = stack.enter_context(cluster_api(server.url, cluster="dc1"))
    report = run_preflight(source, force=True)

    lost = finding(report, "dc1 lost")
    assert lost.verdict is Verdict.WARN
    assert "forbidden" in lost.observed.lower() and "forced" in lost.observed
    assert not report.refused


def test_source_refusing_every_probe_is_lost(stack: ExitStack) -> None:
    source = stack.enter_context(cluster_api(f"http://127.0.0.1:{closed_port()}", cluster="dc1"))
    report = run_preflight(source)

    lost = finding(report, "dc1 lost")
    assert lost.verdict is Verdict.PASS, lost
    assert "no answer to 2 of 2" in lost.observed
    assert not report.source_reachable
    assert report.source_status is None
    assert not report.refused, report.findings


def test_monitors_skip_a_cluster_that_was_silent_moments_ago(stack: ExitStack) -> None:
    silent = stack.enter_context(cluster_api(f"http://127.0.0.1:{closed_port()}", cluster="dc1"))
    answering = target()
    activities = FailoverActivities(
        registry=Registry({"dc1": silent, "dc2": answering}), groups=static_lookup([GROUP]), http=httpx.Client()
    )
    first = activities.observe_roles(RolesInput(group=GROUP.name, skip_silent=True))
    assert first.unreachable == ("dc1",) and "dc2" in first.statuses
    asked = silent.request_count
    again = activities.observe_roles(RolesInput(group=GROUP.name, skip_silent=True))
    assert again.unreachable == ("dc1",)
    assert silent.request_count == asked  # not asked again: a dead site costs a monitor no probe
    # An operation's own observation always asks.
    activities.observe_roles(RolesInput(group=GROUP.name))
    assert silent.request_count > asked


@pytest.mark.parametrize(
    ("moment", "refused"), [("dc2_reprotect_in_progress", True), ("dc2_reprotect_succeeded", False)]
)
def test_a_planned_handover_from_a_source_whose_replication_stopped_is_refused(moment: str, refused: bool) -> None:
    dell = GROUP.model_copy(update={"name": "pg-powerstore", "backend": Backend.POWERSTORE})
    apis = {cluster: TargetApi(cluster) for cluster in dell.clusters}
    activities = FailoverActivities(registry=Registry(apis), groups=static_lookup([dell]), http=httpx.Client())
    request = PreflightInput(group=dell.name, operation=Operation.FAILBACK, source="dc2", target="dc1", force=False)
    preflight = Preflight(activities, dell, request)
    preflight._source_role("dc2", site("dc2", moment)[0].observe())
    stopped = [f for f in preflight.findings if f.check == "dc2 replicating"]
    if refused:
        (finding,) = stopped
        assert finding.verdict is Verdict.FAIL and "link FAILEDOVER" in finding.observed
        assert (
            finding.remedy is not None and "`orchestrate resume --group pg-powerstore` reprotects dc1" in finding.remedy
        )
    else:
        assert stopped == []
