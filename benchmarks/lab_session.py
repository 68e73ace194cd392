"""The lab both benchmarks run on: a full lab with fixed simulator timings, a Temporal client and an in-process worker.

A benchmark's figures must come from the same setup every time, so the setup lives here once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from clusters.registry import ClusterRegistry
from orchestrate.config import OrchestratorConfig, load_config
from orchestrate.temporal_client import connect
from orchestrate.worker import ConfigFile, WorkerLimits, build_worker
from sandbox.lab import DEFAULT_DEMO_GROUPS, Lab
from sandbox.simulator.client import SimulatorClient


@dataclass(frozen=True)
class BenchLab:
    """What a benchmark works with while its lab and worker run."""

    lab: Lab
    config: OrchestratorConfig
    client: Client
    registry: ClusterRegistry


@contextlib.asynccontextmanager
async def benchmark_lab(
    root: Path,
    latencies: Mapping[str, float],
    *,
    demo_groups: int = DEFAULT_DEMO_GROUPS,
    label: str = "",
    adjust_config: Callable[[Path], None] | None = None,
) -> AsyncIterator[BenchLab]:
    """A lab in ``root`` with ``demo_groups`` demo groups, the simulator set to ``latencies``, and a worker.

    Args:
        root: the lab's folder (removed afterwards).
        latencies: simulator timings (``SimulatorConfig`` fields).
        demo_groups: how many demo groups.
        label: printed before "lab up in ...".
        adjust_config: called with the configuration file before it is loaded (e.g. to drop priorities).
    """
    lab = Lab.create(root, demo_groups=demo_groups)
    try:
        started = time.monotonic()
        lab.up()
        print(f"{label}lab up in {time.monotonic() - started:.1f}s")
        assert lab.simulator is not None
        SimulatorClient(lab.simulator.state.url).configure(**latencies)
        if adjust_config is not None:
            adjust_config(lab.config_file)
        config = load_config(lab.config_file)
        client = await connect(config.temporal)
        registry = ClusterRegistry(config.clusters)
        try:
            with WorkerLimits().executor() as executor:
                async with build_worker(client, ConfigFile(config), registry, executor):
                    yield BenchLab(lab=lab, config=config, client=client, registry=registry)
        finally:
            registry.close()
    finally:
        lab.down(purge=True)
