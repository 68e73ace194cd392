"""Benchmark: orchestration overhead of a planned failover (not a test; it prints figures).

Starts a full lab (two control planes, Temporal, the storage simulator, the demo groups) and an in-process worker,
then runs N planned failovers of one group back and forth. For each run it measures the end-to-end time (workflow
start to result) and subtracts the latencies the simulator was told to inject on the critical path (detach,
demote, final sync, promote); what is left is the orchestrator's overhead plus the lab's reaction times (kwok
and the simulator, which react to watched changes). It also counts the Kubernetes API requests the worker sent
per failover.

    python -m benchmarks.failover_overhead --runs 20 --group pg-prod

Target (issue "site failover"): median overhead at most 0.2 s, p95 at most 0.4 s, at most 30 Kubernetes API
requests per failover.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.lab_session import benchmark_lab
from orchestrate.service import start_operation
from workflows.models import FailoverRequest, Operation, Outcome, StepRecord

LATENCIES = {
    "tick": 0.2,
    "detach_delay": 0.2,
    "demote_latency": 0.2,
    "final_sync_latency": 0.3,
    "promote_latency": 0.2,
    "resync_latency": 0.3,
    "sync_interval": 30.0,
}
"""Simulator timings during the benchmark. The tick is the simulator's default period: it reacts to watched
changes and to its own due times, so the period does not add to the figures. Periodic shipments are 30 s apart
(well within the demo groups' 5-minute RPO), so that every failover has writes for its final sync to ship."""

CRITICAL_PATH = ("detach_delay", "demote_latency", "final_sync_latency", "promote_latency")
"""The latencies a planned failover waits for one after the other: volumes released, demote, final sync,
promotion. The resync is not on it: after the final sync the old source already is a current Secondary."""

INJECTED = sum(LATENCIES[name] for name in CRITICAL_PATH)


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile by nearest rank: the smallest value with at least ``fraction`` of all at or below it.

    (Not ``round(x + 0.5)``: Python rounds halves to even, which made the p95 of 20 runs their maximum.)
    """
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered) - 1e-9) - 1))
    return ordered[index]


def step_timeline(steps: Sequence[StepRecord]) -> str:
    """Each step's start (seconds after the first one's), duration, and the gap before it.

    A gap is the orchestration's own time between two steps: workflow tasks and activity dispatch.
    """
    timed = [(s.name, s.started, s.ended) for s in steps if s.started is not None and s.ended is not None]
    if not timed:
        return "(no steps)"
    origin = previous_end = timed[0][1]
    parts: list[str] = []
    for name, started, ended in timed:
        gap = (started - previous_end).total_seconds()
        start, duration = (started - origin).total_seconds(), (ended - started).total_seconds()
        parts.append(f"{name}@{start:.2f} {duration:.2f}" + (f" (gap {gap:.3f})" if gap > 0.0005 else ""))
        previous_end = max(previous_end, ended)
    return ", ".join(parts)


def time_waiting(steps: Sequence[StepRecord]) -> float:
    """Seconds during which at least one wait ran (the union of the waits' intervals).

    The rest of a failover's time is the orchestration's own: workflow tasks, the short steps, starting the
    workflow and reading its result. Inside the waits are the injected latencies and the lab's reaction to the
    writes (kube-controller-manager and kwok for the pods, the simulator for the storage), plus the moment a watch
    takes to deliver the change.
    """
    return time_in_steps([s for s in steps if s.name.startswith("wait for")])


def time_in_steps(steps: Sequence[StepRecord]) -> float:
    """Seconds during which at least one of ``steps`` ran (the union of their intervals; unfinished ones left out)."""
    intervals = sorted((s.started, s.ended) for s in steps if s.started is not None and s.ended is not None)
    total = 0.0
    covered_until = None
    for started, ended in intervals:
        if covered_until is not None and started < covered_until:
            if ended > covered_until:
                total += (ended - covered_until).total_seconds()
                covered_until = ended
            continue
        total += (ended - started).total_seconds()
        covered_until = ended
    return total


async def run(runs: int, group_name: str, root: Path, verbose: bool = False) -> None:
    """Bring the lab up, run the failovers, print the figures."""
    async with benchmark_lab(root, LATENCIES) as bench:
        client, config, registry = bench.client, bench.config, bench.registry
        group = config.group(group_name)
        overheads: list[float] = []
        outside_waits: list[float] = []
        requests: list[int] = []
        for index in range(runs):
            apis = [registry.api(c) for c in group.clusters]
            before = sum(api.request_count for api in apis)
            began = time.monotonic()
            handle = await start_operation(
                client,
                config,
                FailoverRequest(group=group.name, operation=Operation.PLANNED, triggered_by="benchmark"),
            )
            result = await handle.result()
            elapsed = time.monotonic() - began
            if result.outcome is not Outcome.SUCCEEDED:
                raise SystemExit(f"run {index}: {result.outcome.value}: {result.message}")
            overheads.append(elapsed - INJECTED)
            outside_waits.append(elapsed - time_waiting(result.progress.steps))
            requests.append(sum(api.request_count for api in apis) - before)
            print(
                f"run {index + 1:3d}: {result.progress.source} -> {result.progress.target} "
                f"{elapsed:.2f}s end to end, overhead {elapsed - INJECTED:.2f}s "
                f"({outside_waits[-1]:.2f}s outside the waits), {requests[-1]} API requests"
            )
            if verbose:
                print("      " + step_timeline(result.progress.steps))
    print(
        f"\n{runs} planned failovers of {group_name} ({group.backend.value}); injected latencies "
        f"{INJECTED:.2f}s per failover ({', '.join(f'{k}={v}' for k, v in LATENCIES.items())})"
    )
    print(
        f"overhead median {statistics.median(overheads):.3f}s, p95 {percentile(overheads, 0.95):.3f}s, "
        f"min {min(overheads):.3f}s, max {max(overheads):.3f}s"
    )
    in_waits = [total - outside for total, outside in zip(overheads, outside_waits, strict=True)]
    print(
        f"  of which outside the waits (workflow tasks, short steps, start and result): median "
        f"{statistics.median(outside_waits):.3f}s, p95 {percentile(outside_waits, 0.95):.3f}s"
    )
    print(
        f"  of which inside the waits beyond the injected latencies (the lab's pods and storage reacting, watch "
        f"delivery): median {statistics.median(in_waits):.3f}s, p95 {percentile(in_waits, 0.95):.3f}s"
    )
    print(f"Kubernetes API requests per failover: median {statistics.median(requests):.0f}, max {max(requests)}")


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--group", default="pg-prod")
    parser.add_argument("--steps", action="store_true", help="Print each step's duration.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="failover-bench-") as root:
        asyncio.run(run(args.runs, args.group, Path(root), args.steps))


if __name__ == "__main__":
    main()
