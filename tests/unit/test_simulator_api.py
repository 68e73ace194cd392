"""Unit tier: the simulator's control API and typed client, and the CLI's flags.

A simulator that is never started (no cluster is contacted) serves the HTTP API on a free port; the client checks
every endpoint's JSON shape and the error answers (400 invalid body, 404 unknown cluster, volume or path).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from kubernetes import client as kube

from clusters.api import ClusterApi
from sandbox.simulator.__main__ import parse_args
from sandbox.simulator.client import SimulatorApiError, SimulatorClient
from sandbox.simulator.config import SimulatorConfig
from sandbox.simulator.engine import Simulator
from sandbox.simulator.model import VolumeKey
from sandbox.simulator.schemas import FaultKind
from sandbox.simulator.server import ControlServer


@pytest.fixture()
def served() -> Iterator[tuple[Simulator, SimulatorClient]]:
    apis = {name: ClusterApi(name, kube.ApiClient(kube.Configuration())) for name in ("dc1", "dc2")}
    simulator = Simulator(apis, SimulatorConfig())
    server = ControlServer(simulator)
    server.start()
    with SimulatorClient(server.url) as client:
        yield simulator, client
    server.stop()
    simulator.stop()


def test_health_before_any_tick(served: tuple[Simulator, SimulatorClient]) -> None:
    _, client = served
    health = client.health()
    assert health.status == "ok" and health.ticks == 0
    assert set(health.clusters) == {"dc1", "dc2"}
    assert not health.clusters["dc1"].reachable and health.clusters["dc1"].site_up


def test_faults_round_trip(served: tuple[Simulator, SimulatorClient]) -> None:
    _, client = served
    added = client.add_fault("pg-prod", FaultKind.FAIL_DEMOTE, cluster="dc1", times=2)
    assert (added.kind, added.cluster, added.times, added.remaining, added.fired) == ("fail-demote", "dc1", 2, 2, 0)
    client.add_fault("pg-prod", "stall-final-sync")
    assert {f.kind for f in client.faults()} == {FaultKind.FAIL_DEMOTE, FaultKind.STALL_FINAL_SYNC}
    assert client.remove_faults("pg-prod", kind="stall-final-sync") == 1
    assert client.remove_faults() == 1
    assert client.faults() == []


def test_bad_faults_are_refused(served: tuple[Simulator, SimulatorClient]) -> None:
    _, client = served
    with pytest.raises(SimulatorApiError) as unknown_cluster:
        client.add_fault("pg-prod", FaultKind.FAIL_DEMOTE, cluster="dc9")
    assert unknown_cluster.value.status == 404 and "dc9" in str(unknown_cluster.value)
    with pytest.raises(ValueError):
        client.add_fault("pg-prod", "explode")
    response = httpx.post(f"{client._http.base_url}/faults", json={"group": "pg", "kind": "explode"})
    assert response.status_code == 400 and "error" in response.json()


def test_config_changes_are_validated(served: tuple[Simulator, SimulatorClient]) -> None:
    simulator, client = served
    assert client.config() == SimulatorConfig()
    changed = client.configure(sync_interval=2.5, final_sync_latency=0.0)
    assert (changed.sync_interval, changed.final_sync_latency) == (2.5, 0.0)
    assert simulator.model.config.sync_interval == 2.5, "the model uses the new timings at once"
    with pytest.raises(SimulatorApiError) as invalid:
        client.configure(sync_interval=-1)
    assert invalid.value.status == 400
    with pytest.raises(SimulatorApiError):
        client.configure(no_such_timing=1)


def test_sites(served: tuple[Simulator, SimulatorClient]) -> None:
    simulator, client = served
    assert client.site_down("dc1").up is False
    assert client.sites() == {"dc1": False, "dc2": True}
    assert client.site_up("dc1").up is True
    assert simulator.model.site_up == {"dc1": True, "dc2": True}
    with pytest.raises(SimulatorApiError) as unknown:
        client.site_down("dc9")
    assert unknown.value.status == 404


def test_ledger_and_writes(served: tuple[Simulator, SimulatorClient]) -> None:
    simulator, client = served
    assert client.ledger().volumes == []
    with pytest.raises(SimulatorApiError) as unknown:
        client.write("pg-prod", "data", "dc1")
    assert unknown.value.status == 404
    simulator.model.ensure(VolumeKey("pg-prod", "data"), now=0.0)
    simulator.model.promote(VolumeKey("pg-prod", "data"), "dc1", now=0.0, force=False)
    assert client.write("pg-prod", "data", "dc2", 3).acknowledged == 0, "dc2 is not writable"
    result = client.write("pg-prod", "data", "dc1", 3)
    assert result.acknowledged == 3
    volume = client.volume("pg-prod", "data")
    assert volume == result.volume
    assert (volume.writable, volume.acknowledged, volume.applied_on_replica, volume.unshipped) == (["dc1"], 3, 0, 3)
    assert volume.sides["dc1"].held == 3 and volume.promotions[0].cluster == "dc1"
    assert client.ledger("other").volumes == []
    with pytest.raises(KeyError):
        client.volume("pg-prod", "wal")


def test_unknown_paths_and_an_unreachable_server(served: tuple[Simulator, SimulatorClient]) -> None:
    _, client = served
    base = str(client._http.base_url)
    assert httpx.get(f"{base}/nope").status_code == 404
    assert httpx.delete(f"{base}/ledger").status_code == 405
    assert httpx.get(f"{base}/sites/dc1/down").status_code == 405
    with SimulatorClient("http://127.0.0.1:9", timeout=0.5) as dead, pytest.raises(SimulatorApiError) as error:
        dead.health()
    assert error.value.status == 0


def test_cli_flags_cover_every_timing() -> None:
    args = parse_args(["--kubeconfig", "k", "--port", "8765", "--sync-interval", "2", "--write-bytes", "512"])
    assert (args.port, args.clusters, args.sync_interval, args.write_bytes, args.tick) == (
        8765,
        "dc1,dc2",
        2.0,
        512,
        None,
    )
    for name in SimulatorConfig.model_fields:
        assert hasattr(args, name)
