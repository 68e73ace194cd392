"""End-to-end fixtures: a full lab (dc1, dc2, Temporal, storage simulator, the demo groups), a worker process, the
real ``orchestrate`` CLI, and an invariant sampler that runs beside every scenario.

The lab lives for the whole tests/e2e package; each test starts from the demo groups protected with dc1 Primary
(a fixture fails any group that a previous test left elsewhere back to dc1 first).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapters.base import Role
from adapters.registry import adapter_for
from clusters.api import ClusterApi
from clusters.errors import OrchestratorError
from clusters.registry import ClusterRegistry
from clusters.workloads import WorkloadRef, read_workload, running_pods
from orchestrate.config import OrchestratorConfig, load_config
from orchestrate.telemetry import TRACES_FILE_ENV
from sandbox.cluster import LabCluster
from sandbox.lab import DEFAULT_DEMO_GROUPS, Lab
from sandbox.processes import LabProcessError, free_port, wait_until
from sandbox.simulator.client import SimulatorClient
from tests.e2e.diagnosis import keep_logs, lab_diagnosis

ORCHESTRATE = str(Path(sys.executable).parent / "orchestrate")


@dataclass
class CliResult:
    """One run of the real CLI."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class FullLab:
    """The lab, its configuration and a way to run the CLI and the worker against it."""

    lab: Lab
    config: OrchestratorConfig
    simulator: SimulatorClient
    env: dict[str, str]
    worker_log: Path
    worker: subprocess.Popen[bytes] | None = None
    worker_metrics: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    """Where the worker serves its Prometheus metrics (``--metrics-address``)."""

    def cli(self, *args: str, timeout: float = 240) -> CliResult:
        """Run ``orchestrate ARGS`` and return its exit code and output."""
        done = subprocess.run(
            [ORCHESTRATE, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def cli_on_terminal(self, *args: str, timeout: float = 240, columns: int = 200) -> CliResult:
        """Run ``orchestrate ARGS`` on a pseudo-terminal, as an operator would; everything it wrote is ``stdout``."""
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 60, columns, 0, 0))
        env = {**self.env, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "60"}
        env.pop("NO_COLOR", None)
        process = subprocess.Popen(
            [ORCHESTRATE, *args], env=env, stdin=follower, stdout=follower, stderr=follower, close_fds=True
        )
        os.close(follower)
        output = bytearray()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([leader], [], [], 0.2)
                if not ready:
                    if process.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the program ended and closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if process.poll() is None:
                process.kill()
            os.close(leader)
        return CliResult(code, output.decode(errors="replace"), "")

    def cli_background(self, *args: str) -> subprocess.Popen[str]:
        """Start ``orchestrate ARGS`` without waiting."""
        return subprocess.Popen(
            [ORCHESTRATE, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def start_worker(self) -> None:
        """Start ``orchestrate worker`` (if not running) and wait until it is ready."""
        if self.worker is not None and self.worker.poll() is None:
            return
        log = self.worker_log.open("ab")
        self.worker = subprocess.Popen(
            [ORCHESTRATE, "worker", "--metrics-address", self.worker_metrics],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(
            lambda: "worker ready" in self.worker_log.read_text(errors="replace").split("=== start")[-1],
            "orchestrate worker ready",
            timeout=60,
            pid=self.worker.pid,
            log_file=self.worker_log,
        )

    def kill_worker(self) -> None:
        """SIGKILL the worker process, as a crash would."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=10)
        with self.worker_log.open("a") as log:
            log.write("\n=== start (after SIGKILL)\n")


def running_full_lab(
    root: Path,
    demo_groups: int = DEFAULT_DEMO_GROUPS,
    real_csi_addons: bool = False,
    real_dell: bool = False,
    demo_only: tuple[str, ...] = (),
) -> Iterator[FullLab]:
    """A full lab in ``root`` with ``demo_groups`` demo groups (or ``demo_only``) and a worker, while it runs."""
    lab = Lab.create(
        root, demo_groups=demo_groups, real_csi_addons=real_csi_addons, real_dell=real_dell, demo_only=demo_only
    )
    try:
        lab.up()
        env = {
            **os.environ,
            "ORCHESTRATE_CONFIG": str(lab.config_file),
            "ORCHESTRATE_LAB_DIR": str(root),
            "COLUMNS": "200",
            "NO_COLOR": "1",
            TRACES_FILE_ENV: str(root / "traces.jsonl"),  # every process's spans (tests/e2e/test_alerts.py reads them)
        }
        assert lab.simulator is not None
        full = FullLab(
            lab=lab,
            config=load_config(lab.config_file),
            simulator=SimulatorClient(lab.simulator.state.url),
            env=env,
            worker_log=root / "worker.log",
        )
        full.worker_log.write_text("=== start\n")
        full.start_worker()
        yield full
        if full.worker is not None and full.worker.poll() is None:
            os.killpg(full.worker.pid, signal.SIGTERM)
            full.worker.wait(timeout=30)
    finally:
        keep_logs(root)  # for whoever reads a failure
        # Reload: CLI calls may have restarted processes under new pids.
        (Lab.load(root) if (root / "state.json").exists() else lab).down(purge=True)


@pytest.fixture(scope="package")
def full_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullLab]:
    """The five named demo groups (one per backend, and the single-volume redis-prod), Primary on dc1."""
    yield from running_full_lab(tmp_path_factory.mktemp("e2e-lab"))


@dataclass
class InvariantSampler:
    """Samples the safety invariants of one group every ``interval`` seconds while a scenario runs.

    Violations: two sides reporting Primary while both answer (outside the unplanned failover's documented
    exception, which the test declares with ``allow_lost_primary``), and the application running on both sites.
    Trident's planned handover promotes the target before the old source can be reestablished; that moment is
    allowed only while the application runs nowhere (the workflow reestablishes the source before starting it).

    The declared lost primary is measured rather than excused blindly: ``returned_primary_samples`` counts the
    samples in which it answered again while still Primary next to another Primary (the window between its return
    and its fence), and ``returned_running_samples`` those in which its application ran next to the other site's.
    """

    lab: FullLab
    group: str
    interval: float = 0.2
    allow_lost_primary: str | None = None
    violations: list[str] = field(default_factory=list)
    samples: int = 0
    returned_primary_samples: int = 0
    returned_running_samples: int = 0
    max_writable: int = 0
    """Most sides of one volume writable at once in the simulator's ledger, among sites that are up (Trident's
    quiesced handover and the declared lost primary excluded: they are measured on their own)."""
    handover_samples: int = 0
    """Samples in Trident's planned handover: both sides promoted while the application runs nowhere."""
    both_running_samples: int = 0
    torn_samples: int = 0
    """Samples whose first read showed two Primaries and were read again in the reverse order."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> InvariantSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)

    def _run(self) -> None:
        config = self.lab.config
        group = config.group(self.group)
        registry = ClusterRegistry(config.clusters)
        try:
            while not self._stop.is_set():
                self._sample(registry, group)
                self._stop.wait(self.interval)
        finally:
            registry.close()

    def _roles(self, registry: ClusterRegistry, group: Any, clusters: list[str]) -> dict[str, Role]:
        """Each answering side's role, read back to back in the order given."""
        roles: dict[str, Role] = {}
        for cluster in clusters:
            try:
                roles[cluster] = adapter_for(registry.api(cluster), group.replication_target(cluster)).observe().role
            except OrchestratorError:
                continue  # an unreachable side is not a second primary the orchestrator could see
        return roles

    def _primaries(self, roles: dict[str, Role]) -> list[str]:
        return sorted(c for c, r in roles.items() if r is Role.PRIMARY and c != self.allow_lost_primary)

    def _sample(self, registry: ClusterRegistry, group: Any) -> None:
        clusters = list(group.clusters)
        # Pods before roles: the application starts only after a handover ends, so pods seen running and then two
        # Primaries is a real overlap, never an artefact of the order of the reads.
        running: dict[str, list[str]] = {}
        for cluster in clusters:
            try:
                api = registry.api(cluster)
                running[cluster] = [
                    pod
                    for w in group.workloads
                    for pod in running_pods(api, group.namespace, WorkloadRef(kind=w.kind, name=w.name))
                ]
            except OrchestratorError:
                continue
        roles = self._roles(registry, group, clusters)
        if len(self._primaries(roles)) > 1:
            # Two reads are never one instant: reading dc1 (still Primary) and then dc2 (just promoted) straddles a
            # handover that swaps both sides in one storage action (PowerStore's FAILOVER_REMOTE). Read again in
            # the reverse order: a side seen Primary first and the other still Primary after it is two Primaries
            # at once, whichever way the handover goes.
            self.torn_samples += 1
            roles = self._roles(registry, group, clusters[::-1])
        self.samples += 1
        primaries = self._primaries(roles)
        both_running = [c for c, pods in running.items() if pods and c != self.allow_lost_primary]
        lost = self.allow_lost_primary
        if lost is not None and roles.get(lost) is Role.PRIMARY and primaries:
            self.returned_primary_samples += 1
        if lost is not None and running.get(lost) and both_running:
            self.returned_running_samples += 1
        stamp = time.strftime("%H:%M:%S")
        quiesced_handover = group.backend.old_source_primary_until_reprotect and not any(running.values())
        if len(primaries) > 1 and not quiesced_handover:
            self.violations.append(f"{stamp} two Primary replicas: {primaries}")
        if len(primaries) > 1 and quiesced_handover:
            self.handover_samples += 1
        if len(both_running) > 1:
            self.both_running_samples += 1
            self.violations.append(f"{stamp} workloads running on both sites: {running}")
        self._sample_ledger(quiesced_handover, stamp)

    def _sample_ledger(self, quiesced_handover: bool, stamp: str) -> None:
        try:
            volumes = self.lab.simulator.ledger(self.group).volumes
        except Exception:  # the simulator is restarted by no fault; a failed read is just a missed sample
            return
        for volume in volumes:
            writable = [
                name
                for name, side in volume.sides.items()
                if side.writable and side.site_up and name != self.allow_lost_primary
            ]
            if len(writable) > 1 and quiesced_handover:
                continue
            self.max_writable = max(self.max_writable, len(writable))
            if len(writable) > 1:
                self.violations.append(f"{stamp} {volume.pvc}: writable on {sorted(writable)} (simulator ledger)")


@pytest.fixture()
def sampler_for(full_lab: FullLab) -> Iterator[Any]:
    """Make an invariant sampler for a group; every one made is checked at the end of the test."""
    made: list[InvariantSampler] = []

    def make(group: str, allow_lost_primary: str | None = None, interval: float = 0.2) -> InvariantSampler:
        sampler = InvariantSampler(full_lab, group, interval=interval, allow_lost_primary=allow_lost_primary)
        made.append(sampler)
        return sampler

    yield make
    for sampler in made:
        assert sampler.samples > 0
        assert sampler.violations == [], sampler.violations


def lost_writes(full_lab: FullLab, group: str) -> int:
    """Writes lost at promotion for the group's volumes, per the simulator's ledger."""
    return sum(v.lost_at_promotion for v in full_lab.simulator.ledger(group).volumes)


@pytest.fixture()
def scenario_group() -> str:
    """The group the shared failure scenarios (compensation, abort, worker crash) run on; a package may override it."""
    return "pg-prod"


@pytest.fixture()
def home(full_lab: FullLab) -> Iterator[None]:
    """Before and after a test: every demo group protected with dc1 Primary, no faults, both sites up."""
    _restore(full_lab)
    yield
    _restore(full_lab)


def _restore(full_lab: FullLab) -> None:
    # CLI calls (sandbox site-down/up) record new pids in state.json: start from what is recorded.
    full_lab.lab = Lab.load(full_lab.lab.root)
    full_lab.simulator.remove_faults()
    for cluster in full_lab.lab.clusters.values():
        dead = [c for c, alive in cluster.running_components().items() if not alive]
        if "kube-apiserver" in dead:
            cluster.start_apiserver()
        elif dead:
            # No scenario stops these: one that died is a lab failure, said loudly, and the next test gets a lab.
            print(f"lab: {cluster.name}: {', '.join(dead)} had died; restarting", file=sys.stderr)
            for component in dead:
                cluster.start_component(component)
    for site, up in full_lab.simulator.sites().items():
        if not up:
            full_lab.simulator.site_up(site)
    full_lab.lab.save()
    full_lab.start_worker()
    wait_until(functools.partial(_all_settled, full_lab), "no operation running", timeout=120)
    away = [v for v in _statuses(full_lab) if v["primary"] == "dc2"]
    if len(away) > 1:
        # Several groups away (a site scenario): move them back as one site failover, then any left one by one.
        full_lab.cli("failover", "--site", "dc2", "--yes", "--json")
    for view in _statuses(full_lab):
        if view["primary"] != "dc1":
            result = full_lab.cli("failover", "--group", view["group"], "--to", "dc1", "--yes", "--json")
            assert result.code == 0, result.stdout + result.stderr + lab_diagnosis(full_lab, view["group"])
    wait_until(lambda: all(v["protected"] for v in _statuses(full_lab)), "every group protected", timeout=120)
    _ensure_workloads_settle(full_lab)


def _workloads_settled(full_lab: FullLab, api: ClusterApi) -> bool:
    """Every demo group's workloads on ``api``'s cluster have their desired replicas ready (and no more)."""
    try:
        return all(
            read_workload(api, group.namespace, WorkloadRef(kind=w.kind, name=w.name)).settled
            for group in full_lab.config.groups
            if api.cluster in group.clusters
            for w in group.workloads
        )
    except OrchestratorError:
        return False


def _ensure_workloads_settle(full_lab: FullLab) -> None:
    """Each cluster's pods follow their workloads; a lab whose pod lifecycle is stuck is restarted, loudly.

    Starting and stopping pods is the lab's job (controller manager, scheduler, kwok), not the orchestrator's: a
    test must not inherit a cluster on which they stopped working. A restart is a warning in the session's summary,
    and the lab's state before it goes to stderr (shown with the test if it fails).
    """
    registry = ClusterRegistry(full_lab.config.clusters)
    try:
        for name, cluster in full_lab.lab.clusters.items():
            _settle_or_restart(full_lab, name, cluster, registry.api(name))
    finally:
        registry.close()


def _settle_or_restart(full_lab: FullLab, name: str, cluster: LabCluster, api: ClusterApi) -> None:
    settled = functools.partial(_workloads_settled, full_lab, api)
    try:
        wait_until(settled, f"{name}: workloads settled", timeout=60)
        return
    except LabProcessError:
        pass
    groups = [g.name for g in full_lab.config.groups]
    said = f"lab: {name}: workloads did not settle in 60 s; restarting its pod lifecycle"
    print(f"{said}\n{lab_diagnosis(full_lab, *groups)}", file=sys.stderr)
    warnings.warn(said, stacklevel=1)  # in the session's warnings summary even when every test passes
    cluster.restart_pod_lifecycle()
    full_lab.lab.save()
    wait_until(settled, f"{name}: workloads settled after a restart", timeout=60)


def _statuses(full_lab: FullLab) -> list[dict[str, Any]]:
    """``orchestrate status --json`` for every group (one CLI run)."""
    views: list[dict[str, Any]] = full_lab.cli("status", "--json").json()
    return views


def _all_settled(full_lab: FullLab) -> bool:
    """No operation runs on any group and no fence is pending."""

    def settled(operation: dict[str, Any] | None) -> bool:
        if operation is None:
            return True
        fence = operation.get("fence")
        return operation["status"] != "RUNNING" and (fence is None or fence["done"])

    return all(settled(v["operation"]) for v in _statuses(full_lab))
