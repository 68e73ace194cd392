"""End to end through the real CLI against the upstream Dell csm-replication v1.14.0 controller and replicator.

Each cluster runs dell-replication-controller and dell-csi-replicator; the storage simulator only answers the
replicator's ``replication.v1.Replication`` calls (csi-powerstore's semantics), so pg-powerstore's
DellCSIReplicationGroups are made, labelled and kept by the upstream code. Covered:

- who makes what: the replicator names the RG ``rg-<uuid>`` from the volumes and writes its status on both
  clusters, the controller makes the peer's RG (same name) and the peer's PVs; on the peer only the PVs carry the
  RG label, yet no volume is reported unreplicated;
- a planned failover and failback (FAILOVER_REMOTE, then REPROTECT_LOCAL on the new source, each run by the
  replicator), with the invariant sampler and no acknowledged write lost;
- an unplanned failover with dc1 lost (UNPLANNED_FAILOVER_LOCAL on dc2) and its fence on return.
"""

from __future__ import annotations

import re
from typing import Any

from tests.e2e.conftest import FullLab
from tests.e2e.real_scenarios import planned_failover_and_failback, unplanned_failover_and_fence_on_return

GROUP = "pg-powerstore"
RGS = "/apis/replication.storage.dell.com/v1/dellcsireplicationgroups"
GROUP_LABEL = "replication.storage.dell.com/replicationGroupName"


def _managers(document: dict[str, Any], subresource: str | None) -> set[str]:
    return {
        entry["manager"]
        for entry in document["metadata"].get("managedFields", [])
        if entry.get("subresource") == subresource
    }


def test_the_upstream_controllers_make_and_keep_the_replication_group(full_lab: FullLab, home: None) -> None:
    (rg_name,) = {full_lab.config.group(GROUP).replication_target(c).name for c in ("dc1", "dc2")}
    assert rg_name is not None and re.fullmatch(r"rg-[0-9a-f-]{36}", rg_name), rg_name
    for cluster in ("dc1", "dc2"):
        api = full_lab.lab.cluster(cluster)
        rg = api.request("GET", f"{RGS}/{rg_name}").json()
        assert _managers(rg, "status") == {"dell-csi-replicator"}, rg["metadata"]["managedFields"]
        assert rg["status"]["replicationLinkState"]["isSource"] is (cluster == "dc1"), rg["status"]
        volumes = api.request("GET", f"/api/v1/persistentvolumes?labelSelector={GROUP_LABEL}%3D{rg_name}")
        claims = sorted(pv["spec"]["claimRef"]["name"] for pv in volumes.json()["items"])
        assert claims == sorted(full_lab.config.group(GROUP).replication.pvcs), claims
        if cluster == "dc2":  # the peer's PVs are the replication controller's
            assert all("dell-replication-controller" in _managers(pv, None) for pv in volumes.json()["items"])
    status = full_lab.cli("status", "--group", GROUP, "--json").json()[0]
    assert status["protected"], status["summary"]
    assert all(not side["status"]["missing_volumes"] for side in status["sides"]), status["sides"]
    running = full_lab.cli("sandbox", "status", "--json").json()
    for cluster in ("dc1", "dc2"):
        processes = running["clusters"][cluster]["processes"]
        assert processes["dell-replication-controller"] and processes["dell-csi-replicator"], processes


def test_planned_failover_and_failback(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    planned_failover_and_failback(full_lab, GROUP, sampler_for)


def test_unplanned_failover_and_fence_on_return(full_lab: FullLab, home: None, sampler_for: Any) -> None:
    unplanned_failover_and_fence_on_return(full_lab, GROUP, sampler_for)
