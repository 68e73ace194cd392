"""One fault case: start a planned failover through the real CLI, inject a fault when a step runs, and judge the end.

A case starts ``orchestrate failover --detach``, follows the workflow's ``progress`` query until the chosen step
runs, injects the fault (worker SIGKILL and restart, Temporal dev server SIGKILL and restart on its database,
an apiserver stopped for a while, or a storage fault), waits for the operation to end (a workflow still running
after :data:`END_TIMEOUT` is "wedged"), finishes a "needs attention" with ``orchestrate resume`` once the fault is
gone, and records: the outcome, whether ``status`` explains it, the sampler's figures (most writable sides of a
volume while their sites are up, samples with the application on both sites, Trident's handover window) and the
writes lost (planned: must be 0).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio.client import WorkflowExecutionStatus

from orchestrate.service import workflow_id
from orchestrate.temporal_client import connect
from sandbox.processes import stop_process
from tests.e2e.configs import config_variant, group_status, lost_per_volume, refresh_lab_state
from tests.e2e.conftest import FullLab, InvariantSampler
from workflows.failover import GroupFailoverWorkflow
from workflows.models import FailoverResult, Progress

END_TIMEOUT = 240.0
"""Seconds after which an operation that has not ended counts as wedged."""
OUTAGE = 6.0
"""Seconds an apiserver stays down."""

STEPS = {
    "quiesce": "wait for volumes released",
    "final-sync": "wait for final sync",
    "promotion": "wait for promotion",
    "start": "start workloads",
    "reprotect": "wait for resync",
}
"""Injection points of the planned path: the step that must be running (or just done) when the fault hits."""

STORAGE_FAULTS = {
    "quiesce": ("fail-demote", "source", 2),
    "final-sync": ("fail-demote", "source", None),
    "promotion": ("fail-promote", "target", 2),
    "start": ("fail-resync", "source", 2),
    "reprotect": ("fail-resync", "source", None),
}
"""The storage fault per injection point: kind, side, times (None: until cleared). The permanent ones drive the
operation into compensation (final sync) or "needs attention" then ``resume`` (reprotect)."""

TRIDENT_STORAGE_FAULT = ("stall-final-sync", 5.0)
"""Trident keeps a failed TridentMirrorRelationship failed until an operator changes its spec (the adapter says so),
so an injected demote/promote/resync failure is never transient there: its storage fault is a stall of the
snapshot transfer (TridentActionMirrorUpdate) for a few seconds, then cleared."""

TIMEOUTS = {
    "quiesce": "30s",
    "demote": "30s",
    "final_sync": "20s",
    "promote": "30s",
    "start": "30s",
    "reprotect": "20s",
}
"""Step timeouts of the matrix: a permanent storage fault ends its wait in seconds, not the lab's minutes."""

FAULTS = ("worker-kill", "temporal-restart", "source-apiserver", "target-apiserver", "storage")

LATENCIES = {
    "detach_delay": 1.0,
    "demote_latency": 1.0,
    "final_sync_latency": 1.0,
    "promote_latency": 1.0,
    "resync_latency": 2.0,
    "action_latency": 1.0,
}
"""Simulator latencies for the matrix: every step lasts long enough for a fault to land inside it."""


@dataclass
class CaseResult:
    """What a case ended in."""

    outcome: str
    message: str
    seconds: float
    wedged: bool
    resumed: bool
    status: str
    explained: bool
    injected: str


def _query(full_lab: FullLab, group: str) -> tuple[str | None, Progress | None]:
    async def ask() -> tuple[str | None, Progress | None]:
        client = await connect(full_lab.config.temporal)
        handle = client.get_workflow_handle_for(GroupFailoverWorkflow.run, workflow_id(group))
        description = await handle.describe()
        status = description.status.name if description.status else None
        if description.status is WorkflowExecutionStatus.RUNNING:
            return status, await handle.query(GroupFailoverWorkflow.progress)
        return status, None

    try:
        return asyncio.run(ask())
    except Exception:  # Temporal restarting, or the query racing the workflow's end
        return None, None


def _result(full_lab: FullLab, group: str) -> FailoverResult:
    async def fetch() -> FailoverResult:
        client = await connect(full_lab.config.temporal)
        return await client.get_workflow_handle_for(GroupFailoverWorkflow.run, workflow_id(group)).result()

    return asyncio.run(fetch())


def _wait_for_step(full_lab: FullLab, group: str, step: str, started_after: float) -> str:
    """Poll the progress query until ``step`` runs (``inside``) or is already done (``late``)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status, progress = _query(full_lab, group)
        if progress is not None:
            for record in progress.steps:
                if record.name == step and record.started and record.started.timestamp() >= started_after - 1:
                    return "inside" if record.outcome == "running" else "late"
        elif status == "COMPLETED":
            return "after-end"
        time.sleep(0.1)
    return "never"


def inject(full_lab: FullLab, fault: str, point: str, group: str, source: str, target: str) -> Callable[[], None]:
    """Inject ``fault``; return what ends it (the temporary ones end by themselves before returning)."""
    lab = full_lab.lab
    if fault == "worker-kill":
        full_lab.kill_worker()
        time.sleep(1.0)
        full_lab.start_worker()
    elif fault == "temporal-restart":
        assert lab.temporal is not None
        stop_process(lab.temporal.pid_holder.pid, graceful=False)
        lab.temporal.pid_holder.pid = 0
        time.sleep(1.0)
        lab.temporal.start()
        lab.save()
    elif fault in ("source-apiserver", "target-apiserver"):
        down = lab.clusters[source if fault == "source-apiserver" else target]
        down.stop_apiserver()
        lab.save()
        time.sleep(OUTAGE)
        down.start_apiserver()
        lab.save()
    elif fault == "storage" and group == "pg-trident":
        kind, hold = TRIDENT_STORAGE_FAULT
        full_lab.simulator.add_fault(group, kind)
        time.sleep(hold)
        full_lab.simulator.remove_faults()
    elif fault == "storage":
        kind, side, times = STORAGE_FAULTS[point]
        full_lab.simulator.add_fault(group, kind, cluster=source if side == "source" else target, times=times)
    else:
        raise ValueError(fault)

    def clear() -> None:
        full_lab.simulator.remove_faults()

    return clear


def run_planned_case(
    full_lab: FullLab, sampler: InvariantSampler, group: str, point: str, fault: str
) -> tuple[CaseResult, int]:
    """Run one planned case from dc1 to dc2; return its result and the writes it lost."""
    lost_before = lost_per_volume(full_lab, group)
    began = time.monotonic()
    with config_variant(full_lab, group, **TIMEOUTS), sampler:
        started = full_lab.cli("failover", "--group", group, "--yes", "--detach", "--json")
        assert started.code == 0, started.stdout + started.stderr
        injected = _wait_for_step(full_lab, group, STEPS[point], time.time())
        clear = inject(full_lab, fault, point, group, "dc1", "dc2")
        refresh_lab_state(full_lab)
        ended = _wait_until_ended(full_lab, group)
        clear()
        if not ended:
            return _judge(full_lab, group, began, wedged=True, resumed=False, injected=injected), 0
        result = _result(full_lab, group)
        resumed = False
        if result.outcome.value == "needs-attention":
            finished = full_lab.cli("resume", "--group", group, "--yes", "--json")
            resumed = finished.code == 0
        outcome = _judge(full_lab, group, began, wedged=False, resumed=resumed, injected=injected, first=result)
    lost_after = lost_per_volume(full_lab, group)
    lost = sum(lost_after[p] - lost_before.get(p, 0) for p in lost_after)
    return outcome, lost


def _wait_until_ended(full_lab: FullLab, group: str) -> bool:
    deadline = time.monotonic() + END_TIMEOUT
    while time.monotonic() < deadline:
        status, _ = _query(full_lab, group)
        if status is not None and status != "RUNNING":
            return True
        time.sleep(0.5)
    return False


def _judge(
    full_lab: FullLab,
    group: str,
    began: float,
    *,
    wedged: bool,
    resumed: bool,
    injected: str,
    first: FailoverResult | None = None,
) -> CaseResult:
    """The case's outcome and whether ``status`` explains the group's state afterwards."""
    view: dict[str, Any] = group_status(full_lab, group)
    operation = view.get("operation") or {}
    explained = bool(
        operation.get("status") == "COMPLETED" and operation.get("message") and view["summary"] and not wedged
    )
    outcome = first.outcome.value if first else ("wedged" if wedged else "unknown")
    return CaseResult(
        outcome=outcome,
        message=first.message if first else "",
        seconds=time.monotonic() - began,
        wedged=wedged,
        resumed=resumed,
        status=f"{view['summary']} | {operation.get('phase')}: {operation.get('message', '')}",
        explained=explained,
        injected=injected,
    )
