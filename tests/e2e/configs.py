"""Helpers the failover scenarios share: variants of the lab's ``orchestrate.yaml``, and small probes of the lab.

Config variants: :func:`config_variant` rewrites the lab's configuration with one group's RPO, step timeouts or
hooks changed, for one scenario, and puts the original back afterwards. The worker acts only on its own file (the
workflow input names the group) and re-reads it when it changes, so the variant reaches the worker and the CLI
alike (the compensation tests verify it: a 5 s timeout in the variant fails the step after 5 s although the lab's
file says minutes).

Probes: ``status --json`` through the real CLI, the workflow's ``progress`` query and result and the group
monitor's memory through the Temporal client (``status`` does not show ``last_sync_seen`` nor the data-loss window
of a running operation), the application's pods on each side, and a snapshot of everything a refused command must
leave unchanged.

Lab plumbing: :func:`lab_cli` runs an ``orchestrate sandbox`` command that starts or stops an apiserver in another
process, then reloads the pids it recorded into the fixture's in-memory lab, so that the ``home`` fixture's restore
(and the final ``lab.down``) act on the live processes. :func:`slow_shipments` stretches the simulator's shipment
interval: with the default 1 s the replica catches up while the source quiesces, so a planned demote has nothing
left for a final sync and ``stall-final-sync`` cannot stall anything.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from activities.site import monitor_state
from adapters.base import Backend
from clusters.errors import OrchestratorError
from clusters.registry import ClusterRegistry
from clusters.workloads import WorkloadRef, read_workload, running_pods
from orchestrate.service import workflow_id
from orchestrate.temporal_client import connect
from tests.e2e.conftest import CliResult, FullLab
from workflows.failover import GroupFailoverWorkflow
from workflows.models import FailoverResult, Progress
from workflows.monitor import MonitorState

T = TypeVar("T")


# ------------------------------------------------------------------------------------------------ config variants


@contextmanager
def config_variant(
    full_lab: FullLab,
    group: str,
    *,
    rpo: str | None = None,
    hooks: dict[str, Any] | None = None,
    approval: dict[str, Any] | None = None,
    priority: int | None = None,
    **timeouts: str,
) -> Iterator[Path]:
    """Rewrite the lab's configuration with ``group`` changed for the duration of the block; yield its path.

    Args:
        full_lab: the lab whose ``orchestrate.yaml`` (the worker's and the CLI's) is changed.
        group: the group to change.
        rpo: its new RPO (``"2s"``).
        hooks: its new ``hooks`` section.
        approval: its new ``approval`` section.
        priority: its new site-failover tier.
        timeouts: new step timeouts by field of ``StepTimeouts`` (``final_sync="5s"``).
    """
    path = full_lab.lab.config_file
    original = path.read_text()
    document = yaml.safe_load(original)
    (entry,) = [g for g in document["groups"] if g["name"] == group]
    if rpo is not None:
        entry["rpo"] = rpo
    if hooks is not None:
        entry["hooks"] = hooks
    if approval is not None:
        entry["approval"] = approval
    if priority is not None:
        entry["priority"] = priority
    entry.setdefault("timeouts", {}).update(timeouts)
    path.write_text(f"# Variant of the lab's configuration for one scenario ({group}).\n" + yaml.safe_dump(document))
    try:
        yield path
    finally:
        path.write_text(original)


def write_malformed(full_lab: FullLab, path: Path, group: str, field: str, value: str) -> tuple[Path, int]:
    """Write the lab's configuration with ``group``'s ``field`` set to an invalid ``value``; return its line."""
    document = yaml.safe_load(full_lab.lab.config_file.read_text())
    (entry,) = [g for g in document["groups"] if g["name"] == group]
    entry[field] = value
    text = yaml.safe_dump(document, sort_keys=False)
    path.write_text(text)
    lines = [number for number, line in enumerate(text.splitlines(), 1) if line.strip() == f"{field}: {value}"]
    assert len(lines) == 1, lines
    return path, lines[0]


# ------------------------------------------------------------------------------------------------ waiting


def stalled_sync_step(full_lab: FullLab, group: str) -> tuple[str, str]:
    """The step, and its cluster, in which ``stall-final-sync`` holds a planned failover of ``group`` off dc1.

    Trident's final sync is the mirror update that carries the sync point's snapshots to dc2 (the target waits for
    it); every other backend waits on dc1 for its last sync.
    """
    if full_lab.config.group(group).backend is Backend.TRIDENT:
        return "transfer sync point", "dc2"
    return "wait for final sync", "dc1"


def fault_before_promotion(full_lab: FullLab, group: str) -> tuple[str, str | None]:
    """A fault (kind, cluster) that fails a planned failover of ``group`` before its promotion, at a step timeout.

    ``fail-demote`` on dc1; Trident has no demote (the promotion at the sync point's snapshots is the handover), so
    there ``stall-final-sync`` holds back the transfer of those snapshots to dc2.
    """
    if full_lab.config.group(group).backend is Backend.TRIDENT:
        return "stall-final-sync", None
    return "fail-demote", "dc1"


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 60.0, interval: float = 0.3) -> T:
    """Call ``probe`` until it returns something truthy and return that; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached within {timeout:.0f}s (last probe: {last!r})")


# ------------------------------------------------------------------------------------------------ the CLI


def group_status(full_lab: FullLab, group: str, config: Path | None = None) -> dict[str, Any]:
    """``orchestrate status --group GROUP --json`` (with ``--config`` when given)."""
    extra = ("--config", str(config)) if config else ()
    result = full_lab.cli("status", "--group", group, "--json", *extra)
    assert result.code == 0, result.stdout + result.stderr
    view: dict[str, Any] = result.json()[0]
    return view


def wait_for_status(
    full_lab: FullLab, group: str, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 90.0
) -> dict[str, Any]:
    """Poll ``status --json`` until ``check`` holds for the group's view; return that view."""

    def probe() -> dict[str, Any] | None:
        view = group_status(full_lab, group)
        return view if check(view) else None

    return wait_for(probe, what, timeout, interval=0.2)


def operation_phase(view: dict[str, Any]) -> str | None:
    """The phase of the group's running or last operation in a ``status --json`` view."""
    operation = view["operation"]
    return None if operation is None else operation.get("phase")


def lab_cli(full_lab: FullLab, *args: str) -> CliResult:
    """Run ``orchestrate sandbox ARGS`` (site-down, start-apiserver...), then reload the pids it recorded."""
    result = full_lab.cli("sandbox", *args)
    refresh_lab_state(full_lab)
    assert result.code == 0, result.stdout + result.stderr
    return result


def refresh_lab_state(full_lab: FullLab) -> None:
    """Copy the component pids another process recorded in ``state.json`` into the fixture's lab."""
    recorded = json.loads((full_lab.lab.root / "state.json").read_text())
    for cluster in recorded["clusters"]:
        full_lab.lab.clusters[cluster["name"]].state.pids = {k: int(v) for k, v in cluster["pids"].items()}


# ------------------------------------------------------------------------------------------------ Temporal


def workflow_progress(full_lab: FullLab, group: str) -> Progress:
    """The ``progress`` query of the group's running (or last) operation."""

    async def query() -> Progress:
        client = await connect(full_lab.config.temporal)
        handle = client.get_workflow_handle_for(GroupFailoverWorkflow.run, workflow_id(group))
        return await handle.query(GroupFailoverWorkflow.progress)

    return asyncio.run(query())


def workflow_result(full_lab: FullLab, group: str) -> FailoverResult:
    """The result of the group's last operation (waits for it to end)."""

    async def result() -> FailoverResult:
        client = await connect(full_lab.config.temporal)
        handle = client.get_workflow_handle_for(GroupFailoverWorkflow.run, workflow_id(group))
        return await handle.result()

    return asyncio.run(result())


def monitor_seen(full_lab: FullLab, group: str) -> MonitorState | None:
    """What the group's monitor workflow remembers (its ``seen`` query)."""

    async def query() -> MonitorState | None:
        client = await connect(full_lab.config.temporal)
        return await monitor_state(client, group)

    return asyncio.run(query())


# ------------------------------------------------------------------------------------------------ the sites


def app_pods(full_lab: FullLab, group: str) -> dict[str, list[str] | None]:
    """Running pods of the group's workloads on each cluster (``None`` for a cluster that does not answer)."""
    config = full_lab.config.group(group)
    registry = ClusterRegistry(full_lab.config.clusters)
    try:
        pods: dict[str, list[str] | None] = {}
        for cluster in config.clusters:
            try:
                api = registry.api(cluster)
                pods[cluster] = [
                    pod
                    for w in config.workloads
                    for pod in running_pods(api, config.namespace, WorkloadRef(kind=w.kind, name=w.name))
                ]
            except OrchestratorError:
                pods[cluster] = None
        return pods
    finally:
        registry.close()


def desired_replicas(full_lab: FullLab, group: str) -> dict[str, dict[str, int]]:
    """Each workload's desired replicas on each cluster."""
    config = full_lab.config.group(group)
    registry = ClusterRegistry(full_lab.config.clusters)
    try:
        return {
            cluster: {
                w.name: read_workload(
                    registry.api(cluster), config.namespace, WorkloadRef(kind=w.kind, name=w.name)
                ).desired
                for w in config.workloads
            }
            for cluster in config.clusters
        }
    finally:
        registry.close()


def lost_per_volume(full_lab: FullLab, group: str) -> dict[str, int]:
    """``lost_at_promotion`` of each of the group's volumes (cumulative over the lab's life)."""
    return {v.pvc: v.lost_at_promotion for v in full_lab.simulator.ledger(group).volumes}


def unchanged_facts(full_lab: FullLab, group: str) -> dict[str, Any]:
    """Everything a refused command must leave as it was: roles and spec generations of both sides, the storage's
    writable sides and promotions, where the application runs, and the group's last operation."""
    view = group_status(full_lab, group)
    sides = {
        side["cluster"]: (side["reachable"], side["status"]["role"], side["status"]["generations"])
        for side in view["sides"]
    }
    volumes = {
        v.pvc: (v.writable, len(v.promotions), v.lost_at_promotion, v.discarded_at_resync)
        for v in full_lab.simulator.ledger(group).volumes
    }
    operation = view["operation"]
    last = None if operation is None else (operation["workflow_id"], operation["started"], operation["status"])
    return {
        "primary": view["primary"],
        "sides": sides,
        "volumes": volumes,
        "pods": app_pods(full_lab, group),
        "replicas": desired_replicas(full_lab, group),
        "operation": last,
    }


class BackgroundFailover:
    """A ``failover --json`` the CLI runs in the background (see :func:`failover_in_background`).

    Attributes:
        view: the group's ``status --json`` entry once the operation reached the phase waited for.
    """

    def __init__(self, process: subprocess.Popen[str], view: dict[str, Any]) -> None:
        self.process = process
        self.view = view

    def result(self, timeout: float) -> CliResult:
        """Wait up to ``timeout`` seconds for the CLI to exit; its exit code and output."""
        stdout, stderr = self.process.communicate(timeout=timeout)
        return CliResult(self.process.returncode, stdout, stderr)


@contextmanager
def failover_in_background(
    full_lab: FullLab, group: str, *options: str, phase: str = "WaitingForFinalSync", waiting_for: str = ""
) -> Iterator[BackgroundFailover]:
    """A planned failover of ``group`` followed by the CLI in the background, from the moment it reaches ``phase``.

    For scenarios that act while the operation runs (abort it, kill the worker). ``options`` go to the command
    (``--config`` of a variant, say). The CLI is killed if the block leaves while it still runs.
    """
    running = full_lab.cli_background("failover", "--group", group, "--yes", "--json", *options)
    try:
        view = wait_for_status(
            full_lab, group, lambda v: operation_phase(v) == phase, waiting_for or f"the failover reaching {phase}"
        )
        yield BackgroundFailover(running, view)
    finally:
        if running.poll() is None:
            running.kill()


@contextmanager
def slow_shipments(full_lab: FullLab, seconds: float = 600.0) -> Iterator[None]:
    """Ship the primary's writes to the replica only every ``seconds`` while the block runs (then as before).

    The last shipment happened at most the previous interval before the block starts, and the next one comes
    ``seconds`` after it: the writes the application makes meanwhile are what a planned demote's final sync must
    ship, and the last shipment stays the last one.
    """
    before = full_lab.simulator.config().sync_interval
    full_lab.simulator.configure(sync_interval=seconds)
    try:
        yield
    finally:
        full_lab.simulator.configure(sync_interval=before)
