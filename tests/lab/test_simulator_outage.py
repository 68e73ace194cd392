"""Lab tier: the simulator survives an API server outage.

With dc2's API server stopped, the simulator reports dc2 unreachable, keeps reconciling dc1 (a demote and its
final sync complete: the storage of dc2's site is still up) and, once dc2 answers again, reconciles dc2 too.
"""

from __future__ import annotations

from clusters.api import JsonObject
from sandbox.cluster import LabCluster
from sandbox.simulator.kube import CSI_VGR
from sandbox.simulator.server import SimulatorService
from sandbox.simulator.testing import (
    conditions_summary,
    create_pvc,
    csi_vgr,
    observed,
    set_spec,
    wait_for,
    wait_until_known,
)

LABELS = {"app": "pg"}


def test_survives_an_api_server_outage(simulator: SimulatorService, dc2: LabCluster, namespace: str) -> None:
    client = simulator.client()
    api1, api2 = simulator.simulator.api("dc1"), simulator.simulator.api("dc2")
    for api in (api1, api2):
        create_pvc(api, namespace, "data", LABELS)
    api1.create(CSI_VGR, csi_vgr("pg", LABELS, "primary"), namespace)
    api2.create(CSI_VGR, csi_vgr("pg", LABELS, "secondary"), namespace)
    wait_for(lambda: _state(api2.get(CSI_VGR, "pg", namespace)) == "Secondary", "dc2 secondary")
    wait_until_known(client, namespace, "data")
    client.write(namespace, "data", "dc1", 12)

    dc2.stop_apiserver()
    try:
        wait_for(lambda: not client.health().clusters["dc2"].reachable, "dc2 reported unreachable")
        ticks = client.health().ticks
        set_spec(api1, CSI_VGR, "pg", {"replicationState": "secondary"}, namespace)

        def demoted() -> bool:
            obj = api1.get(CSI_VGR, "pg", namespace)
            summary = conditions_summary(obj)
            return observed(obj) and summary.get("Degraded") == "False/Healthy" and _state(obj) == "Secondary"

        wait_for(demoted, "dc1 demoted and synced while dc2's API is down")
        assert client.health().ticks > ticks, "the loop keeps ticking"
        assert client.volume(namespace, "data").sides["dc2"].held == 12, "dc2's storage still received the sync"
    finally:
        dc2.start_apiserver()

    wait_for(lambda: client.health().clusters["dc2"].reachable, "dc2 reachable again", 30)
    set_spec(api2, CSI_VGR, "pg", {"replicationState": "primary"}, namespace)
    wait_for(lambda: _state(api2.get(CSI_VGR, "pg", namespace)) == "Primary", "dc2 promoted after the outage", 15)
    assert client.volume(namespace, "data").lost_at_promotion == 0


def _state(obj: JsonObject) -> str:
    return str(obj.get("status", {}).get("state", "")) if observed(obj) else ""
