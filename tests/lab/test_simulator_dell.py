"""Lab tier: the simulator plays Dell CSM replication (PowerStore) for DellCSIReplicationGroups on dc1 and dc2.

Covers a pair's idle status (Ready, source, link, remote state, last successful update), the action lifecycle
(``<ACTION>_IN_PROGRESS`` -> ``Ready``, ``spec.action`` reset to ``""``, ``lastAction`` and history) for a planned
FAILOVER_REMOTE and REPROTECT_LOCAL, a retryable error (still in progress, ``errorMessage`` and ``firstFailure``)
that then succeeds, a permanent error and a retry window that runs out (both ``Error``), an unsupported action
(reset with a Warning event), and an unplanned failover with the source site down, its loss accounting and the
re-protection that discards the old source's unshipped writes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from clusters.api import ClusterApi, JsonObject, Resource
from sandbox.simulator.kube import DELL_RG, nested
from sandbox.simulator.server import SimulatorService
from sandbox.simulator.testing import StatusHistory, create_pvc, dell_rg, set_spec, wait_for, wait_until_known

GROUP_LABEL = "replication.storage.dell.com/replicationGroupName"
EVENTS = Resource("", "v1", "events", "Event")


@pytest.fixture()
def rg(simulator: SimulatorService, namespace: str) -> Iterator[str]:
    """An RG pair named after the namespace over PVCs ``data`` and ``wal``; dc1 is the source. Deleted afterwards."""
    name = f"rg-{namespace}"
    for api, remote in ((simulator.simulator.api("dc1"), "dc2"), (simulator.simulator.api("dc2"), "dc1")):
        for pvc in ("data", "wal"):
            create_pvc(api, namespace, pvc, {GROUP_LABEL: name})
        api.create(DELL_RG, dell_rg(name, remote))
    yield name
    for cluster in ("dc1", "dc2"):
        simulator.simulator.api(cluster).delete(DELL_RG, name)


def status(api: ClusterApi, name: str) -> JsonObject:
    return dict(api.get(DELL_RG, name).get("status") or {})


def last_update(api: ClusterApi, name: str) -> str | None:
    update: str | None = nested(status(api, name), "replicationLinkState", "lastSuccessfulUpdate")
    return update


def wait_status(api: ClusterApi, name: str, what: str, check: dict[str, object], timeout: float = 30) -> JsonObject:
    """Wait until every dotted path of ``check`` has its value in the RG (``spec.action`` and status paths)."""

    def reached() -> JsonObject | None:
        obj = api.get(DELL_RG, name)
        return obj if all(nested(obj, *path.split(".")) == value for path, value in check.items()) else None

    return wait_for(reached, f"{api.cluster} RG {what}", timeout)


def request(api: ClusterApi, name: str, action: str) -> None:
    set_spec(api, DELL_RG, name, {"action": action})


def test_idle_pair_reports_source_and_link(simulator: SimulatorService, namespace: str, rg: str) -> None:
    dc1, dc2 = simulator.simulator.api("dc1"), simulator.simulator.api("dc2")
    source = wait_status(
        dc1,
        rg,
        "synchronized source",
        {
            "status.state": "Ready",
            "status.replicationLinkState.isSource": True,
            "status.replicationLinkState.state": "SYNCHRONIZED",
        },
    )
    wait_status(dc2, rg, "target", {"status.state": "Ready", "status.replicationLinkState.isSource": False})
    assert "lastAction" not in source["status"]
    assert "remoteState" not in source["status"], "csm-replication never writes remoteState"
    for api in (dc1, dc2):
        wait_for(functools.partial(last_update, api, rg), f"{api.cluster} lastSuccessfulUpdate")
    assert [v.writable for v in simulator.client().ledger(namespace).volumes] == [["dc1"], ["dc1"]]


def test_failover_remote_then_reprotect(simulator: SimulatorService, namespace: str, rg: str) -> None:
    client = simulator.client()
    dc1, dc2 = simulator.simulator.api("dc1"), simulator.simulator.api("dc2")
    wait_status(dc2, rg, "ready", {"status.state": "Ready", "status.replicationLinkState.isSource": False})
    wait_until_known(client, namespace, "data")
    client.write(namespace, "data", "dc1", 30)

    with StatusHistory(dc1, DELL_RG, rg) as history:
        request(dc1, rg, "FAILOVER_REMOTE")
        done = wait_status(
            dc1,
            rg,
            "failed over",
            {
                "spec.action": "",
                "status.state": "Ready",
                "status.lastAction.condition": "Action FAILOVER_REMOTE succeeded",
            },
        )
        history.caught_up()
    states = [s.get("state") for s in history.statuses()]
    assert states.index("FAILOVER_REMOTE_IN_PROGRESS") < len(states) - 1 and states[-1] == "Ready", states
    assert done["status"]["conditions"][0]["condition"] == "Action FAILOVER_REMOTE succeeded"
    assert done["status"]["replicationLinkState"]["isSource"] is False
    assert done["status"]["replicationLinkState"]["state"] == "FAILEDOVER"
    wait_status(dc2, rg, "new source", {"status.replicationLinkState.isSource": True})
    data = client.volume(namespace, "data")
    assert data.writable == ["dc2"] and data.lost_at_promotion == 0 and data.sides["dc2"].held == 30

    request(dc2, rg, "REPROTECT_LOCAL")
    wait_status(
        dc2,
        rg,
        "reprotected",
        {"spec.action": "", "status.state": "Ready", "status.lastAction.condition": "Action REPROTECT_LOCAL succeeded"},
    )
    wait_status(dc1, rg, "following", {"status.replicationLinkState.state": "SYNCHRONIZED"})
    assert client.volume(namespace, "data").discarded_at_resync == 0


def test_retryable_error_stays_in_progress_then_succeeds(simulator: SimulatorService, rg: str) -> None:
    client = simulator.client()
    dc1 = simulator.simulator.api("dc1")
    wait_status(dc1, rg, "ready", {"status.state": "Ready"})
    client.add_fault(rg, "fail-demote", cluster="dc1", times=2)  # the RG name is a fault group too

    with StatusHistory(dc1, DELL_RG, rg) as history:
        request(dc1, rg, "FAILOVER_REMOTE")
        wait_status(dc1, rg, "done", {"spec.action": "", "status.state": "Ready"})
        history.caught_up()
    retrying = [s for s in history.statuses() if nested(s, "lastAction", "errorMessage")]
    assert retrying, "the failed attempts were reported"
    assert retrying[0]["state"] == "FAILOVER_REMOTE_IN_PROGRESS", "retrying, not failed"
    assert retrying[0]["lastAction"]["condition"].startswith("Action FAILOVER_REMOTE failed with error")
    assert retrying[0]["lastAction"]["firstFailure"]
    assert status(dc1, rg)["lastAction"]["condition"] == "Action FAILOVER_REMOTE succeeded"
    assert client.faults()[0].fired == 2


def test_permanent_error(simulator: SimulatorService, rg: str) -> None:
    client = simulator.client()
    dc2 = simulator.simulator.api("dc2")
    wait_status(dc2, rg, "ready", {"status.state": "Ready"})
    client.add_fault(rg, "fail-promote", cluster="dc2", permanent=True)

    request(dc2, rg, "UNPLANNED_FAILOVER_LOCAL")
    failed = wait_status(dc2, rg, "error", {"spec.action": "", "status.state": "Error"})
    last = failed["status"]["lastAction"]
    assert last["condition"].startswith("Action UNPLANNED_FAILOVER_LOCAL failed with error injected fail-promote")
    assert failed["status"]["conditions"][0] == last
    assert failed["status"]["replicationLinkState"]["isSource"] is False


def test_retrying_past_the_window_becomes_an_error(simulator: SimulatorService, rg: str) -> None:
    client = simulator.client()
    client.configure(dell_error_after=1.0)
    dc1 = simulator.simulator.api("dc1")
    wait_status(dc1, rg, "source", {"status.state": "Ready", "status.replicationLinkState.isSource": True})
    client.add_fault(rg, "fail-resync", cluster="dc1")

    request(dc1, rg, "REPROTECT_LOCAL")
    wait_status(dc1, rg, "retrying", {"status.state": "REPROTECT_LOCAL_IN_PROGRESS"})
    failed = wait_status(dc1, rg, "error", {"spec.action": "", "status.state": "Error"})
    assert failed["status"]["lastAction"]["firstFailure"]
    assert client.faults()[0].fired >= 2


def test_unsupported_action_is_reset_with_a_warning(simulator: SimulatorService, rg: str) -> None:
    dc1 = simulator.simulator.api("dc1")
    wait_status(dc1, rg, "ready", {"status.state": "Ready"})
    request(dc1, rg, "FAILOVER_LOCAL")
    reset = wait_status(dc1, rg, "reset", {"spec.action": ""})
    assert reset["status"]["state"] == "Ready" and "lastAction" not in reset["status"]
    warnings = wait_for(
        lambda: [
            e for e in dc1.list(EVENTS, "default") if e["involvedObject"]["name"] == rg and e["reason"] == "Unsupported"
        ],
        "Warning event",
    )
    assert warnings[0]["type"] == "Warning" and "FAILOVER_LOCAL" in warnings[0]["message"]


def test_unplanned_failover_then_reprotect_discards_unshipped_writes(
    simulator: SimulatorService, namespace: str, rg: str
) -> None:
    client = simulator.client()
    dc1, dc2 = simulator.simulator.api("dc1"), simulator.simulator.api("dc2")
    wait_status(dc2, rg, "ready", {"status.state": "Ready", "status.replicationLinkState.isSource": False})
    wait_until_known(client, namespace, "data")
    client.write(namespace, "data", "dc1", 20)
    wait_for(lambda: client.volume(namespace, "data").applied_on_replica == 20, "shipment")
    client.configure(sync_interval=3600)
    client.write(namespace, "data", "dc1", 7)
    client.site_down("dc1")

    request(dc2, rg, "UNPLANNED_FAILOVER_LOCAL")
    promoted = wait_status(dc2, rg, "source", {"spec.action": "", "status.state": "Ready"})
    assert promoted["status"]["replicationLinkState"]["isSource"] is True
    assert promoted["status"]["replicationLinkState"]["state"] == "UNKNOWN", "the peer site is down"
    data = client.volume(namespace, "data")
    assert data.lost_at_promotion == 7 and data.writable == ["dc1", "dc2"]

    client.site_up("dc1")
    wait_status(dc1, rg, "split", {"status.replicationLinkState.isSource": True})
    request(dc2, rg, "REPROTECT_LOCAL")
    wait_status(
        dc2, rg, "reprotected", {"spec.action": "", "status.lastAction.condition": "Action REPROTECT_LOCAL succeeded"}
    )
    wait_status(dc1, rg, "fenced", {"status.replicationLinkState.isSource": False})
    data = client.volume(namespace, "data")
    assert data.writable == ["dc2"] and data.discarded_at_resync == 7
    assert data.sides["dc1"].held == data.sides["dc2"].held == 20
