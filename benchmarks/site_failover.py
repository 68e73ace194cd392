"""Benchmark: a planned site failover of 1, 10, 50 or 100 groups (not a test; it prints figures).

For each group count N it starts a full lab with N demo groups (the backends in turn), puts them all in one tier,
runs an in-process worker, fixes the simulator's latencies (those of benchmarks/failover_overhead.py), and runs
one planned site failover of dc1 with ``--parallel N``. Figures per N: end-to-end time (site workflow start to
result), each group's overhead (its duration minus the latencies on a csi-addons group's critical path; the other
backends' paths differ a little: Trident has no demote but its promotion waits for the snapshot, PowerStore's one
action covers demote and final sync), Kubernetes API requests per group (all the worker's requests during the
run), Temporal history events per group (the child's history plus its share of the site workflow's) and the
worker process's CPU seconds per group.

    python -m benchmarks.site_failover --groups 1,10

Target (issue "site failover"): 100 groups end to end at most 2 x one group's end-to-end time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from benchmarks.failover_overhead import INJECTED, LATENCIES, percentile, step_timeline, time_in_steps
from benchmarks.lab_session import benchmark_lab
from orchestrate.site_service import start_site_operation
from sandbox.lab import Lab
from workflows.failover import operation_id
from workflows.models import FailoverResult, Operation, Outcome, StepRecord
from workflows.site.models import SiteFailoverRequest, SiteProgress

SITE_LATENCIES = {**LATENCIES, "sync_interval": 1.0}
"""The single-group benchmark's timings, with shipments every second: a Trident group's promotion waits for its
snapshot to reach the target, which (as with SnapMirror's schedule) comes with the next periodic shipment."""


def where_the_time_goes(progress: SiteProgress, steps: dict[str, tuple[StepRecord, ...]]) -> dict[str, list[float]]:
    """Each group's time split in the parts of a site failover, in seconds (one value per group and part).

    before child: from the site workflow's start until it started the group's child (planning, then waiting for a
    slot); child start: until the child's first step began (the child workflow's start and first workflow task);
    in steps: while at least one step ran; between steps: the rest of the child's time from its first step's start
    to its last step's end (workflow tasks and activity dispatch); after: from the last step's end until the site
    workflow recorded the group's end.
    """
    parts: dict[str, list[float]] = {"before child": [], "child start": [], "in steps": [], "between steps": [],
                                     "after": []}  # fmt: skip
    for group in progress.groups:
        timed = [s for s in steps.get(group.group, ()) if s.started is not None and s.ended is not None]
        if not timed or group.started is None or group.ended is None or progress.started is None:
            continue
        first = min(s.started for s in timed if s.started is not None)
        last = max(s.ended for s in timed if s.ended is not None)
        busy = time_in_steps(timed)
        parts["before child"].append((group.started - progress.started).total_seconds())
        parts["child start"].append((first - group.started).total_seconds())
        parts["in steps"].append(busy)
        parts["between steps"].append((last - first).total_seconds() - busy)
        parts["after"].append((group.ended - last).total_seconds())
    return parts


def time_queued(history: WorkflowHistory) -> dict[str, float]:
    """Seconds a workflow's tasks waited in Temporal's queues (scheduled to started), by kind of task.

    A busy worker or server shows here; the rest of a step's time is the worker running it (a local activity runs
    inside its workflow task) and, in a wait, the lab reacting.
    """
    scheduled: dict[int, datetime] = {}
    totals = {"workflow tasks": 0.0, "activity tasks": 0.0}
    for event in history.events:
        kind = event.event_type
        if kind in (EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED):
            scheduled[event.event_id] = event.event_time.ToDatetime()
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            began = scheduled.get(event.workflow_task_started_event_attributes.scheduled_event_id)
            if began is not None:
                totals["workflow tasks"] += (event.event_time.ToDatetime() - began).total_seconds()
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            began = scheduled.get(event.activity_task_started_event_attributes.scheduled_event_id)
            if began is not None:
                totals["activity tasks"] += (event.event_time.ToDatetime() - began).total_seconds()
    return totals


def _print_breakdown(label: str, parts: dict[str, list[float]], title: str = "where the time goes") -> None:
    print(
        f"{label}{title} (median / max over groups): "
        + "; ".join(f"{name} {statistics.median(v):.2f}/{max(v):.2f}s" for name, v in parts.items() if v)
    )


def _one_tier(config_file: Path) -> None:
    """Drop every group's priority: all groups in one tier, as the benchmark measures parallelism, not tiers."""
    document = yaml.safe_load(config_file.read_text())
    for group in document["groups"]:
        group.pop("priority", None)
    config_file.write_text(yaml.safe_dump(document, sort_keys=False))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _lab_processes(lab: Lab) -> dict[str, int]:
    """The pid of every lab process, by a name that groups them (both clusters' apiservers are "kube-apiserver")."""
    pids: dict[str, int] = {}
    for cluster in lab.clusters.values():
        for component, pid in cluster.state.pids.items():
            pids[f"{cluster.name} {component}"] = pid
    if lab.temporal is not None:
        pids["temporal dev server"] = lab.temporal.state.pid
    if lab.simulator is not None:
        pids["storage simulator"] = lab.simulator.state.pid
    return pids


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _lab_cpu(lab: Lab) -> dict[str, float]:
    """CPU seconds per kind of lab process (the two clusters' components added up)."""
    totals: dict[str, float] = {}
    for name, pid in _lab_processes(lab).items():
        kind = name.split(" ", 1)[1] if name.startswith(tuple(lab.clusters)) else name
        totals[kind] = totals.get(kind, 0.0) + _process_cpu(pid)
    return totals


async def measure(count: int, root: Path) -> dict[str, float]:
    """One lab of ``count`` groups, one planned site failover; its figures."""
    label = f"[{count} groups] "
    async with benchmark_lab(root, SITE_LATENCIES, demo_groups=count, label=label, adjust_config=_one_tier) as bench:
        lab, config, client, registry = bench.lab, bench.config, bench.client, bench.registry
        apis = [registry.api(c.name) for c in config.clusters]
        requests_before, cpu_before = sum(a.request_count for a in apis), _cpu_seconds()
        lab_before = _lab_cpu(lab)
        began = time.monotonic()
        handle = await start_site_operation(
            client,
            config,
            SiteFailoverRequest(site="dc1", operation=Operation.PLANNED, parallel=count, triggered_by="benchmark"),
        )
        result = await handle.result()
        elapsed = time.monotonic() - began
        cpu = _cpu_seconds() - cpu_before
        lab_cpu = {k: v - lab_before.get(k, 0.0) for k, v in _lab_cpu(lab).items()}
        requests = sum(a.request_count for a in apis) - requests_before
        events = len((await handle.fetch_history()).events)
        steps: dict[str, tuple[StepRecord, ...]] = {}
        queued: dict[str, list[float]] = {"workflow tasks": [], "activity tasks": []}
        for group in result.progress.groups:
            child = client.get_workflow_handle(operation_id(group.group), result_type=FailoverResult)
            history = await child.fetch_history()
            events += len(history.events)
            for kind, seconds in time_queued(history).items():
                queued[kind].append(seconds)
            steps[group.group] = (await child.result()).progress.steps
        _print_breakdown(label, where_the_time_goes(result.progress, steps))
        _print_breakdown(label, queued, "of which queued in Temporal until a worker took the task")
        slowest = max(
            (g for g in result.progress.groups if g.started and g.ended),
            key=lambda g: (g.ended - g.started) if g.started and g.ended else timedelta(0),
            default=None,
        )
        if slowest is not None:
            print(f"{label}slowest group {slowest.group} ({slowest.backend}): {step_timeline(steps[slowest.group])}")
    if result.outcome is not Outcome.SUCCEEDED:
        raise SystemExit(f"[{count} groups] {result.outcome.value}: {result.message}")
    overheads = [
        (g.ended - g.started).total_seconds() - INJECTED
        for g in result.progress.groups
        if g.started is not None and g.ended is not None
    ]
    figures = {
        "groups": count,
        "end_to_end_s": elapsed,
        "overhead_median_s": statistics.median(overheads),
        "overhead_p95_s": percentile(overheads, 0.95),
        "api_requests_per_group": requests / count,
        "history_events_per_group": events / count,
        "worker_cpu_s_per_group": cpu / count,
    }
    print(
        f"[{count} groups] end to end {elapsed:.2f}s; overhead per group median {figures['overhead_median_s']:.2f}s"
        f" p95 {figures['overhead_p95_s']:.2f}s; {figures['api_requests_per_group']:.0f} API requests, "
        f"{figures['history_events_per_group']:.0f} history events, "
        f"{figures['worker_cpu_s_per_group']:.2f} worker CPU s per group"
    )
    shares = sorted(lab_cpu.items(), key=lambda item: -item[1])
    print(
        f"[{count} groups] CPU s per group elsewhere during the run: "
        + ", ".join(f"{name} {seconds / count:.2f}" for name, seconds in shares if seconds >= 0.005)
        + f"; machine: {os.cpu_count()} cores for {elapsed * (os.cpu_count() or 1):.1f} CPU s of wall time, "
        f"{cpu + sum(lab_cpu.values()):.1f} used"
    )
    return figures


async def run(counts: list[int]) -> None:
    """Measure every group count, then print the table and the ratio to one group."""
    rows = []
    for count in counts:
        with tempfile.TemporaryDirectory(prefix=f"site-bench-{count}-") as root:
            rows.append(await measure(count, Path(root)))
    print(f"\nplanned site failover, one tier, --parallel = groups; injected latencies {INJECTED:.2f}s per group")
    print(f"{'groups':>6} {'end to end':>11} {'overhead med':>13} {'p95':>6} {'API/group':>10} {'events/group':>13} "
          f"{'CPU s/group':>12}")  # fmt: skip
    for row in rows:
        print(
            f"{row['groups']:>6.0f} {row['end_to_end_s']:>10.2f}s {row['overhead_median_s']:>12.2f}s "
            f"{row['overhead_p95_s']:>5.2f}s {row['api_requests_per_group']:>10.0f} "
            f"{row['history_events_per_group']:>13.0f} {row['worker_cpu_s_per_group']:>12.2f}"
        )
    single = next((r for r in rows if r["groups"] == 1), None)
    if single is not None:
        for row in rows:
            if row["groups"] > 1:
                ratio = row["end_to_end_s"] / single["end_to_end_s"]
                print(f"{row['groups']:.0f} groups take {ratio:.1f} x one group's end-to-end time (target <= 2)")


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default="1,10,50,100", help="Comma-separated group counts.")
    args = parser.parse_args()
    asyncio.run(run([int(n) for n in args.groups.split(",")]))


if __name__ == "__main__":
    main()
