"""``orchestrate sandbox``: bring the local two-site lab up, show it, fault it, tear it down."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from orchestrate.exit_codes import ExitCode
from orchestrate.output import console, emit_json, fail
from sandbox.binaries import BinaryError
from sandbox.demo import demo_groups
from sandbox.lab import (
    DEFAULT_DEMO_GROUPS,
    DEFAULT_TEMPORAL_PORT,
    DEFAULT_TEMPORAL_UI_PORT,
    MAX_DEMO_GROUPS,
    Lab,
    LabError,
    default_root,
)
from sandbox.processes import LabProcessError
from sandbox.simulator.client import SimulatorClient
from sandbox.simulator.schemas import FaultKind

app = typer.Typer(
    help="The local lab: two real Kubernetes control planes, a Temporal dev server.", no_args_is_help=True
)

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Lab folder (state, PKI, logs, kubeconfig). Default: $ORCHESTRATE_LAB_DIR or "
        "~/.local/state/failover-orchestrator/lab.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]


@app.command()
def up(
    root: RootOption = None,
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend port.")] = DEFAULT_TEMPORAL_PORT,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port.")] = DEFAULT_TEMPORAL_UI_PORT,
    groups: Annotated[
        int,
        typer.Option(
            "--groups",
            min=1,
            max=MAX_DEMO_GROUPS,
            help=(
                "Demo groups: the five named ones (one per backend, and the single-volume redis-prod); more are "
                "app-006... in three priority tiers."
            ),
        ),
    ] = DEFAULT_DEMO_GROUPS,
    real_csi_addons: Annotated[
        bool,
        typer.Option(
            "--real-csi-addons/--simulated-csi-addons",
            help="Run the upstream csi-addons manager and sidecar on each cluster (the default; the simulator is "
            "their storage) or let the simulator write the VR/VGR status itself.",
        ),
    ] = True,
    real_dell: Annotated[
        bool,
        typer.Option(
            "--real-dell/--simulated-dell",
            help="Run the upstream Dell csm-replication controller and replicator on each cluster (the default; the "
            "simulator is their PowerStore driver) or let the simulator write the DellCSIReplicationGroup status "
            "itself.",
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Start dc1 and dc2, Temporal, the storage simulator, the demo groups and a worker (builds binaries if needed)."""
    started = time.monotonic()
    try:
        if not as_json:
            console.print("[bold]Preparing lab binaries[/] (the first run builds Kubernetes: 10-25 minutes)...")
        lab = Lab.create(
            root,
            temporal_port=temporal_port,
            temporal_ui_port=ui_port,
            with_worker=True,
            demo_groups=groups,
            real_csi_addons=real_csi_addons,
            real_dell=real_dell,
        )
        if not as_json:
            console.print(
                "[bold]Starting[/] etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok "
                f"for {', '.join(lab.clusters)} and the Temporal dev server..."
            )
        try:
            summary = lab.up()
        except BaseException:
            lab.down(purge=True)
            raise
    except (LabError, LabProcessError, BinaryError, TimeoutError) as exc:
        fail(
            str(exc),
            ExitCode.ERROR,
            as_json=as_json,
            hint="see the component logs under the lab folder; `orchestrate sandbox down` cleans up",
        )
    elapsed = time.monotonic() - started
    if as_json:
        emit_json({**lab.status(), "seconds": round(elapsed, 1)})
        return
    console.print(f"[green]Lab up[/] in {elapsed:.0f}s")
    for name, server in summary.clusters.items():
        console.print(f"  cluster {name}: {server}  (context {name})")
    console.print(f"  Temporal: {summary.temporal_address}   Web UI: {summary.temporal_ui}")
    console.print(f"  storage simulator: {summary.simulator_url}   worker log: {lab.root / 'worker' / 'worker.log'}")
    console.print(f"  kubeconfig: {summary.kubeconfig}")
    console.print(f"  configuration: {summary.config_file} (used by every command while no other is given)")
    made = demo_groups(groups)
    named = ", ".join(
        f"{g.name} ({g.backend.value}{', one volume' if g.single_volume else ''})" for g in made[:DEFAULT_DEMO_GROUPS]
    )
    more = len(made) - DEFAULT_DEMO_GROUPS
    extra = f" and {more} more (app-{DEFAULT_DEMO_GROUPS + 1:03d}...) in priority tiers 10, 20, 30" if more > 0 else ""
    console.print(f"  demo groups: {named}{extra}; Primary on dc1")
    console.print(f"\n  export KUBECONFIG={summary.kubeconfig}\n  kubectl --context dc1 get nodes")


@app.command()
def down(root: RootOption = None, as_json: JsonOption = False) -> None:
    """Stop every lab process and delete the lab's state."""
    try:
        lab = Lab.load(root)
    except (LabError, BinaryError) as exc:
        fail(str(exc), ExitCode.ERROR, as_json=as_json)
    lab.down(purge=True)
    if as_json:
        emit_json({"root": str(lab.root), "stopped": True})
    else:
        console.print(f"[green]Lab stopped[/] and {lab.root} removed")


@app.command()
def status(root: RootOption = None, as_json: JsonOption = False) -> None:
    """Show each lab process and the addresses to reach the lab."""
    try:
        lab = Lab.load(root)
    except (LabError, BinaryError) as exc:
        fail(str(exc), ExitCode.ERROR, as_json=as_json)
    report = lab.status()
    if as_json:
        emit_json(report)
        return
    console.print(f"lab folder: {report['root']}\nkubeconfig: {report['kubeconfig']}")
    for name, cluster in report["clusters"].items():
        processes = ", ".join(
            f"{c} {'[green]up[/]' if up else '[red]down[/]'}" for c, up in cluster["processes"].items()
        )
        console.print(f"  {name} {cluster['server']}: {processes}")
    if "temporal" in report:
        temporal = report["temporal"]
        state = "[green]up[/]" if temporal["running"] else "[red]down[/]"
        console.print(f"  temporal {temporal['address']} (UI {temporal['ui']}): {state}")


@app.command("stop-apiserver")
def stop_apiserver(
    cluster: Annotated[str, typer.Argument(help="Cluster whose apiserver stops (e.g. dc1).")],
    root: RootOption = None,
) -> None:
    """Make one cluster unreachable by stopping its kube-apiserver (its etcd keeps the state)."""
    _toggle_apiserver(root, cluster, start=False)


@app.command("start-apiserver")
def start_apiserver(
    cluster: Annotated[str, typer.Argument(help="Cluster whose apiserver starts again.")],
    root: RootOption = None,
) -> None:
    """Start a stopped kube-apiserver again."""
    _toggle_apiserver(root, cluster, start=True)


fault_app = typer.Typer(
    help="Inject storage faults into the lab's simulator (per group, optionally per cluster).", no_args_is_help=True
)
app.add_typer(fault_app, name="fault")

FAULT_KINDS = ", ".join(kind.value for kind in FaultKind)


def _simulator(root: Path | None) -> tuple[Lab, SimulatorClient]:
    try:
        lab = Lab.load(root)
    except (LabError, BinaryError) as exc:
        fail(str(exc), ExitCode.ERROR)
    if lab.simulator is None:
        fail("this lab runs no storage simulator", ExitCode.ERROR)
    return lab, SimulatorClient(lab.simulator.state.url)


@fault_app.command("add")
def fault_add(
    kind: Annotated[str, typer.Argument(help=f"One of: {FAULT_KINDS}.")],
    group: Annotated[str, typer.Option("--group", "-g", help="The group (its namespace, or a Dell RG name).")],
    cluster: Annotated[str | None, typer.Option(help="Only on this cluster.")] = None,
    times: Annotated[
        int | None, typer.Option(help="Fail this many times, then succeed (default: until cleared).")
    ] = None,
    permanent: Annotated[bool, typer.Option(help="Dell: fail with state Error at once instead of retrying.")] = False,
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """Inject a fault."""
    if kind not in {k.value for k in FaultKind}:
        fail(f"unknown fault {kind!r}; known faults: {FAULT_KINDS}", ExitCode.BAD_INPUT, as_json=as_json)
    _, simulator = _simulator(root)
    state = simulator.add_fault(group, kind, cluster=cluster, times=times, permanent=permanent)
    if as_json:
        emit_json(state.model_dump(mode="json"))
    else:
        console.print(f"fault added: {state.model_dump(mode='json')}")


@fault_app.command("list")
def fault_list(root: RootOption = None, as_json: JsonOption = False) -> None:
    """Show the injected faults."""
    _, simulator = _simulator(root)
    faults = [f.model_dump(mode="json") for f in simulator.faults()]
    if as_json:
        emit_json(faults)
    else:
        console.print("\n".join(str(fault) for fault in faults) or "no faults")


@fault_app.command("clear")
def fault_clear(
    group: Annotated[str | None, typer.Option("--group", "-g", help="Only this group's faults.")] = None,
    root: RootOption = None,
) -> None:
    """Remove injected faults (all, or one group's)."""
    _, simulator = _simulator(root)
    console.print(f"removed {simulator.remove_faults(group)} fault(s)")


@app.command("site-down")
def site_down(
    cluster: Annotated[str, typer.Argument(help="The site to lose (e.g. dc1).")], root: RootOption = None
) -> None:
    """Lose a site: its storage stops (no writes, no shipments) and its kube-apiserver is killed."""
    lab, simulator = _simulator(root)
    simulator.site_down(lab.cluster(cluster).name)
    _toggle_apiserver(root, cluster, start=False)


@app.command("site-up")
def site_up(cluster: Annotated[str, typer.Argument(help="The site that returns.")], root: RootOption = None) -> None:
    """Bring a lost site back: its kube-apiserver starts again and its storage resumes."""
    lab, simulator = _simulator(root)
    _toggle_apiserver(root, cluster, start=True)
    simulator.site_up(lab.cluster(cluster).name)


@app.command()
def ledger(
    group: Annotated[str | None, typer.Option("--group", "-g", help="Only this group's namespace.")] = None,
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """The simulator's write ledger: acknowledged, replicated and lost writes per volume."""
    _, simulator = _simulator(root)
    report = simulator.ledger(group)
    if as_json:
        emit_json(report.model_dump(mode="json"))
        return
    for volume in report.volumes:
        console.print(
            f"{volume.namespace}/{volume.pvc}: writable on {', '.join(volume.writable) or 'none'}; acknowledged "
            f"{volume.acknowledged}, on the replica {volume.applied_on_replica}, lost at promotion "
            f"{volume.lost_at_promotion}"
        )


def _toggle_apiserver(root: Path | None, name: str, *, start: bool) -> None:
    try:
        lab = Lab.load(root)
        target = lab.cluster(name)
        if start:
            target.start_apiserver()
        else:
            target.stop_apiserver()
        lab.save()
    except (LabError, BinaryError) as exc:
        fail(str(exc), ExitCode.BAD_INPUT if "unknown lab cluster" in str(exc) else ExitCode.ERROR)
    except LabProcessError as exc:
        fail(str(exc), ExitCode.ERROR)
    console.print(f"{name} kube-apiserver {'started' if start else 'stopped'}")


__all__ = ["app", "default_root"]
