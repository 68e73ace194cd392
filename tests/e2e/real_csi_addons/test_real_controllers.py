"""End to end through the real CLI against the upstream csi-addons controllers (manager and sidecar v0.14.0).

The lab runs the csi-addons manager and the sidecar on each cluster; the storage simulator only answers the
driver socket (ceph-csi's RBD semantics), so every VolumeGroupReplication, its VolumeGroupReplicationContent and
inner VolumeReplication status here, and redis-prod's own VolumeReplication status, is written by the upstream
code. Covered:

- who writes the status: the status subresource's field manager is ``csi-addons-manager`` on both clusters (for
  pg-prod's VGR and its VR, and redis-prod's VR), and each sidecar's CSIAddonsNode is Connected (the manager
  reached it at ``pod://`` on 127.0.0.1);
- a planned failover and failback of each group, with the invariant sampler and no acknowledged write lost;
- an unplanned failover of each group with dc1 lost and its fence on return: dc1 demoted with resync by the real
  controller, the group protected again on dc2;
- finding 1 of issue 11: the VGR controller re-stamps its inner VR's old status with the VGR's generation before
  the VR has acted (the driver's demote is slowed to make the moment last); the adapter does not take that status
  as current, and does once the VR has acted;
- finding 2: a promotion whose first attempts fail on a precondition (FailedPrecondition from EnableVolumeReplication,
  which the controller answers with Validated=False/PrerequisiteNotMet and retries) completes, and leaves
  Validated=False next to Completed=True: the failover succeeds instead of giving up on a "permanent" failure;
- every connection of every lab process stays on loopback (the manager dials the stand-in driver pod's IP).
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.registry import adapter_for
from clusters.registry import ClusterRegistry
from sandbox.csi_addons import NAMESPACE
from tests.e2e.configs import wait_for
from tests.e2e.conftest import FullLab
from tests.e2e.real_csi_addons.conftest import GROUPS
from tests.e2e.real_scenarios import planned_failover_and_failback, unplanned_failover_and_fence_on_return

GROUP = "pg-prod"
REPLICATION_API = "/apis/replication.storage.openshift.io/v1alpha1"


def _status_managers(full_lab: FullLab, cluster: str, namespace: str, plural: str) -> dict[str, set[str]]:
    """The field managers of each object's status subresource, by object name."""
    listed = full_lab.lab.cluster(cluster).request("GET", f"{REPLICATION_API}/namespaces/{namespace}/{plural}").json()
    return {
        item["metadata"]["name"]: {
            entry["manager"] for entry in item["metadata"].get("managedFields", []) if entry.get("subresource")
        }
        for item in listed["items"]
    }


def test_the_upstream_controllers_write_the_replication_status(full_lab: FullLab, home: None) -> None:
    for cluster in ("dc1", "dc2"):
        for namespace, plural in (
            (GROUP, "volumegroupreplications"),
            (GROUP, "volumereplications"),
            ("redis-prod", "volumereplications"),
        ):
            managers = _status_managers(full_lab, cluster, namespace, plural)
            assert managers, f"{cluster}: no {plural} in {namespace}"
            assert all(m == {"csi-addons-manager"} for m in managers.values()), (cluster, plural, managers)
        (redis,) = (
            full_lab.lab.cluster(cluster)
            .request("GET", f"{REPLICATION_API}/namespaces/redis-prod/volumereplications")
            .json()["items"]
        )
        assert redis["spec"]["dataSource"] == {"kind": "PersistentVolumeClaim", "name": "data-redis-0"}, redis
        assert redis["status"]["state"] == ("Primary" if cluster == "dc1" else "Secondary"), redis["status"]
        nodes = full_lab.lab.cluster(cluster).request(
            "GET", f"/apis/csiaddons.openshift.io/v1alpha1/namespaces/{NAMESPACE}/csiaddonsnodes"
        )
        states = [(n["spec"]["driver"]["endpoint"], n.get("status", {}).get("state")) for n in nodes.json()["items"]]
        assert len(states) == 1 and states[0][1] == "Connected", states
        assert states[0][0].startswith("pod://csi-rbdplugin-provisioner-0.csi-addons-system:"), states
    running = full_lab.cli("sandbox", "status", "--json").json()
    for cluster in ("dc1", "dc2"):
        processes = running["clusters"][cluster]["processes"]
        assert processes["csi-addons-manager"] and processes["csi-addons-sidecar"], processes


@pytest.mark.parametrize("group", GROUPS)
def test_planned_failover_and_failback(full_lab: FullLab, home: None, sampler_for: Any, group: str) -> None:
    planned_failover_and_failback(full_lab, group, sampler_for)


@pytest.mark.parametrize("group", GROUPS)
def test_unplanned_failover_and_fence_on_return(full_lab: FullLab, home: None, sampler_for: Any, group: str) -> None:
    # The real VR controller requeues a secondary that is not yet resynced every 30 s: give it two passes.
    unplanned_failover_and_fence_on_return(full_lab, group, sampler_for, fence_timeout=150)


def test_a_group_status_restamped_before_its_volume_replication_acted_is_not_current(
    full_lab: FullLab, home: None
) -> None:
    group = full_lab.config.group(GROUP)
    registry = ClusterRegistry(full_lab.config.clusters)
    dc1, dc2 = (adapter_for(registry.api(c), group.replication_target(c)) for c in ("dc1", "dc2"))
    cluster = full_lab.lab.cluster("dc2")
    base = f"{REPLICATION_API}/namespaces/{GROUP}"
    latency = full_lab.simulator.config().demote_latency
    full_lab.simulator.configure(demote_latency=6.0)  # the VR controller's demote call now lasts 6 s
    seen: list[tuple[dict[str, Any], dict[str, Any], bool]] = []
    try:
        assert dc2.observe().current
        dc2.reprotect(resync=True, peer=dc1)  # the same role, a new request: what the fence asks of a returning side
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not seen:
            vgr = cluster.request("GET", f"{base}/volumegroupreplications/postgres").json()
            vr_name = vgr["spec"]["volumeReplicationName"]
            vr = cluster.request("GET", f"{base}/volumereplications/{vr_name}").json()
            restamped = vgr.get("status", {}).get("observedGeneration") == vgr["metadata"]["generation"]
            vr_behind = vr.get("status", {}).get("observedGeneration") != vr["metadata"]["generation"]
            if restamped and vr_behind and vr["spec"].get("autoResync") is True:
                seen.append((vgr, vr, dc2.observe().current))
            time.sleep(0.1)
        assert seen, "never saw the VGR re-stamped while its VR had not acted"
        vgr, vr, current = seen[0]
        assert vgr["status"]["state"] == "Secondary" and all(
            c["observedGeneration"] == vgr["metadata"]["generation"] for c in vgr["status"]["conditions"]
        ), vgr["status"]
        assert not current, "the adapter took the re-stamped VGR status for an answer"
        wait_for(lambda: dc2.observe().current or None, "the VR acted and the group is current", timeout=60)
    finally:
        full_lab.simulator.configure(demote_latency=latency)
        dc2.reprotect(resync=False, peer=dc1)
        registry.close()


def test_a_promotion_that_first_failed_on_a_precondition_completes(
    full_lab: FullLab, home: None, sampler_for: Any
) -> None:
    full_lab.simulator.add_fault(GROUP, "refuse-enable", cluster="dc2", times=2)
    with sampler_for(GROUP):
        moved = full_lab.cli("failover", "--group", GROUP, "--yes", "--json")
    assert moved.code == 0, moved.stdout + moved.stderr
    assert moved.json()["progress"]["phase"] == "Relocated"
    (fault,) = [f for f in full_lab.simulator.faults() if f.kind == "refuse-enable"]
    assert fault.fired == 2, fault
    vgr = (
        full_lab.lab.cluster("dc2")
        .request("GET", f"{REPLICATION_API}/namespaces/{GROUP}/volumegroupreplications/postgres")
        .json()
    )
    conditions = {c["type"]: c for c in vgr["status"]["conditions"]}
    assert (conditions["Validated"]["status"], conditions["Validated"]["reason"]) == ("False", "PrerequisiteNotMet")
    assert (conditions["Completed"]["status"], conditions["Completed"]["reason"]) == ("True", "Promoted")
    assert conditions["Validated"]["observedGeneration"] == vgr["metadata"]["generation"]
    status = full_lab.cli("status", "--group", GROUP, "--json").json()[0]
    assert status["primary"] == "dc2" and status["protected"], status["summary"]


_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")


def _remote_addresses(path: Path, inodes: set[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The remote address of each socket of ``/proc/net/tcp[6]`` whose inode is in ``inodes``."""
    found = []
    for line in path.read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] not in inodes:
            continue
        raw = fields[2].split(":")[0]
        packed = bytes.fromhex(raw)
        # /proc/net/tcp prints each 32-bit word in host (little-endian) order.
        words = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))
        found.append(ipaddress.ip_address(words))
    return found


def test_lab_processes_connect_only_within_loopback(full_lab: FullLab, home: None) -> None:
    root = str(full_lab.lab.root)
    inodes: set[str] = set()
    processes = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if root not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                continue
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        processes += 1
        inodes |= {m.group(1) for link in links if (m := re.fullmatch(r"socket:\[(\d+)\]", link))}
    assert processes >= 10, "the lab's processes were not found"
    remotes = _remote_addresses(Path("/proc/net/tcp"), inodes) + _remote_addresses(Path("/proc/net/tcp6"), inodes)
    assert remotes, "no TCP socket of the lab seen"
    outside = {
        str(address)
        for address in remotes
        if not (address.is_unspecified or address.is_loopback or _mapped_loopback(address))
    }
    assert not outside, f"lab processes connected outside loopback: {sorted(outside)}"


def _mapped_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped is not None and mapped in _LOOPBACK_V4
