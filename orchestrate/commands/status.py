"""``orchestrate status``, ``groups`` and ``history``: what each group looks like now, and what happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.table import Table
from temporalio.client import Client
from temporalio.service import RPCError

from orchestrate.commands.common import (
    ConfigOption,
    JsonOption,
    client_or_exit,
    config_or_exit,
    group_or_exit,
    run,
)
from orchestrate.commands.site import site_or_exit, site_table
from orchestrate.config import OrchestratorConfig
from orchestrate.exit_codes import ExitCode
from orchestrate.output import console, emit_json, error_console
from orchestrate.queries import NoAnswerError, describe
from orchestrate.service import GroupView, fence_state, observe_groups, operation_state, workflow_id
from orchestrate.site_service import running_site_progress
from orchestrate.temporal_client import connect
from workflows import visibility
from workflows.models import FailoverResult, Progress
from workflows.site.models import SiteProgress


def status(
    group: Annotated[str | None, typer.Option("--group", "-g", help="Only this group.")] = None,
    site: Annotated[
        str | None, typer.Option("--site", help="The groups living in SITE, and its running site failover.")
    ] = None,
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """Both sides of each group (role, health, lag against RPO) and its running or last operation."""
    config = config_or_exit(config_path, as_json=as_json)
    groups = [group_or_exit(config, group, as_json=as_json)] if group else list(config.groups)
    if site is not None:
        site_or_exit(config, site, as_json=as_json)
        in_site = {c.name for c in config.clusters if c.site == site}
        groups = [g for g in groups if in_site & set(g.clusters)]
    found = run(_collect(config, [g.name for g in groups], site))
    documents = [{**view.model_dump(mode="json"), "operation": found.operations[view.group]} for view in found.views]
    if as_json:
        if site is None:
            emit_json(documents)
        else:
            running = found.site_progress.model_dump(mode="json") if found.site_progress else None
            emit_json({"site": site, "site_failover": running, "site_problem": found.site_problem, "groups": documents})
    else:
        if site is not None:
            if found.site_problem is not None:
                console.print(f"[bold yellow]site failover of {site}: unknown[/]: {found.site_problem}\n")
            elif found.site_progress is None:
                console.print(f"no site failover of {site} is running\n")
            else:
                console.print(site_table(found.site_progress))
                console.print()
        for view in found.views:
            _render(view, found.operations[view.group])
    if found.temporal_problem is not None:  # the clusters were shown; what Temporal knows was not
        error_console.print(f"error: {found.temporal_problem}")
        raise typer.Exit(int(ExitCode.ERROR))


@dataclass(frozen=True)
class _Collected:
    views: list[GroupView]
    operations: dict[str, dict[str, Any] | None]
    site_progress: SiteProgress | None
    site_problem: str | None
    temporal_problem: str | None


async def _collect(config: OrchestratorConfig, names: list[str], site: str | None) -> _Collected:
    """The clusters' view of each group, then what Temporal knows of its operations (and of the site's failover).

    The clusters come first and do not depend on Temporal: with Temporal unreachable, each operation is shown as
    unknown and the reason is returned (``status`` then exits 1).
    """
    views = await observe_groups(config, [config.group(n) for n in names])
    try:
        client = await connect(config.temporal)
    except Exception as exc:
        problem = f"cannot reach Temporal at {config.temporal.address}: {exc}"
        return _Collected(views, {n: _unknown(problem) for n in names}, None, problem if site else None, problem)
    operations: dict[str, dict[str, Any] | None] = {}
    temporal_problem: str | None = None
    for name in names:
        try:
            operations[name] = await _operation_entry(client, name)
        except RPCError as error:
            temporal_problem = f"Temporal at {config.temporal.address} did not answer: {error.message}"
            operations[name] = _unknown(temporal_problem)
    site_progress, site_problem = None, None
    if site is not None:
        try:
            site_progress = await running_site_progress(client, site)
        except NoAnswerError as silent:
            site_problem = str(silent)
        except RPCError as error:
            temporal_problem = site_problem = f"Temporal at {config.temporal.address} did not answer: {error.message}"
    return _Collected(views, operations, site_progress, site_problem, temporal_problem)


def _unknown(problem: str) -> dict[str, Any]:
    return {"workflow_id": None, "status": "UNKNOWN", "answered": False, "message": problem}


async def _operation_entry(client: Client, group: str) -> dict[str, Any] | None:
    """The group's newest operation and its fence as ``status --json`` shows them (``None``: neither ever ran).

    A workflow whose worker does not answer still gets an entry: what Temporal knows (status, start, the phase it
    last published) and, as its message, why its own answer is missing.
    """
    try:
        fence: dict[str, Any] | None = _dump(await fence_state(client, group))
    except NoAnswerError as silent:
        fence = {"done": False, "answered": False, "message": str(silent)}
    description = await describe(client.get_workflow_handle(workflow_id(group)))
    if description is None:
        return {"workflow_id": None, "status": "NONE", "fence": fence} if fence else None
    entry: dict[str, Any] = {
        "workflow_id": description.id,
        "status": description.status.name if description.status else "UNKNOWN",
        "started": description.start_time.isoformat() if description.start_time else None,
        "closed": description.close_time.isoformat() if description.close_time else None,
    }
    try:
        state = await operation_state(client, description)
    except NoAnswerError as silent:
        entry.update(phase=silent.phase, message=str(silent), answered=False)
        state = None
    if isinstance(state, Progress):
        entry.update(phase=state.phase.value, message=state.message, **_trigger(state))
    elif isinstance(state, FailoverResult):
        entry.update(
            outcome=state.outcome.value,
            phase=state.progress.phase.value,
            message=state.message,
            **_trigger(state.progress),
        )
    elif state is not None:
        entry.update(message=str(state))
    if fence is not None:
        entry["fence"] = fence
    return entry


def _trigger(progress: Progress) -> dict[str, Any]:
    """Who started the operation, and the alerts that started it, joined it or resolved while it ran."""
    return {
        "triggered_by": progress.triggered_by,
        "alerts": [a.model_dump(mode="json", exclude_none=True) for a in progress.alerts],
    }


def _alerts_line(triggered_by: str, alerts: list[dict[str, Any]]) -> str:
    started_by_alert = "alertmanager:" in triggered_by  # also a site failover's group: "site-failover/dc1 (alertm..."
    later = alerts[1:] if started_by_alert else alerts
    joined = sum(1 for a in later if a["status"] == "firing")
    resolved = sum(1 for a in later if a["status"] == "resolved")
    tally = f"{joined} alert(s) joined, {resolved} resolved (a resolved alert stops nothing)"
    if not started_by_alert:
        return f"  started by {triggered_by}; {tally}"
    first = alerts[0]
    return (
        f"  started by alert {first['alertname']} ({first['fingerprint']}, rule {first.get('rule') or '-'}); "
        f"since then {tally}"
    )


def _dump(model: BaseModel | None) -> dict[str, Any] | None:
    return model.model_dump(mode="json") if model is not None else None


def _render(view: GroupView, operation: dict[str, Any] | None) -> None:
    colour = "green" if view.protected else "red"
    console.print(f"[bold]{view.group}[/] ({view.backend}): [{colour}]{view.summary}[/]")
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    for column in ("cluster", "site", "role", "health", "last sync", "detail"):
        table.add_column(column)
    for side in view.sides:
        if side.status is None:
            table.add_row(
                side.cluster, side.site, "?", "unreachable" if not side.reachable else "error", "-", side.error or ""
            )
            continue
        status = side.status
        if status.failure:
            health = "failed"
        elif status.replication_stopped:
            health = "not replicating"  # healthy objects, but nothing flows until someone reprotects
        else:
            health = "healthy" if status.healthy else "degraded"
        last = status.last_sync_time.strftime("%H:%M:%S") if status.last_sync_time else "-"
        # The adapters' messages start with the object ("VolumeGroupReplication ns/name: ..."): the table says
        # which group it is already, so keep the part an operator reads.
        detail = status.message.split(": ", 1)[-1] if status.message[:1].isupper() else status.message
        table.add_row(side.cluster, side.site, status.role.value, health, last, detail)
    console.print(table)
    if view.lag_seconds is not None:
        within = "within" if view.lag_seconds <= view.rpo_seconds else "ABOVE"
        console.print(f"  lag {view.lag_seconds:.1f}s, {within} RPO {view.rpo_seconds:.0f}s")
        if view.lag_source:
            console.print(f"    as of {view.lag_source}")
    if operation and operation["status"] == "UNKNOWN":
        console.print(f"  [bold yellow]operation unknown[/]: {operation['message']}")
    elif operation and operation.get("workflow_id"):
        what = operation.get("outcome") or operation["status"].removeprefix("WORKFLOW_EXECUTION_STATUS_").lower()
        console.print(
            f"  operation {operation['workflow_id']}: {what}, phase {operation.get('phase') or '-'}: "
            f"{operation.get('message', '')}"
        )
        if operation.get("alerts"):
            console.print(_alerts_line(operation.get("triggered_by", ""), operation["alerts"]), highlight=False)
    fence = (operation or {}).get("fence")
    if fence:
        _render_fence(view.group, fence)
    console.print()


def _render_fence(group: str, fence: dict[str, Any]) -> None:
    """The fence line: pending (since when, next probe, last error), how it ended, or why it did not say."""
    if fence.get("answered") is False:
        console.print(f"  [bold yellow]fence fence/{group} state unknown[/]: {fence['message']}")
        return
    if fence["done"]:
        console.print(f"  fence fence/{group}: done: {fence['message']}")
        return
    since = (fence.get("waiting_since") or "?")[:19]
    upcoming = (fence.get("next_probe_at") or "")[11:19]
    console.print(
        f"  [bold yellow]fence fence/{group} PENDING[/]: {fence['old_primary']} is not fenced yet (waiting since "
        f"{since}, {fence['probes']} probe(s){', next at ' + upcoming if upcoming else ''}): {fence['message']}"
    )
    if fence.get("last_error"):
        console.print(f"    last error: {fence['last_error']}")


def groups(as_json: JsonOption = False, config_path: ConfigOption = None) -> None:
    """List the configured protection groups."""
    config = config_or_exit(config_path, as_json=as_json)
    if as_json:
        emit_json(
            [
                {
                    "name": g.name,
                    "namespace": g.namespace,
                    "backend": g.backend.value,
                    "clusters": list(g.clusters),
                    "workloads": [f"{w.kind}/{w.name}" for w in g.workloads],
                    "rpo_seconds": g.rpo.total_seconds(),
                    "priority": g.priority,
                }
                for g in config.groups
            ]
        )
        return
    table = Table("group", "namespace", "backend", "clusters", "workloads", "RPO", "priority", box=None)
    for g in config.groups:
        workloads = ", ".join(f"{w.kind}/{w.name}" for w in g.workloads)
        rpo = f"{g.rpo.total_seconds():.0f}s"
        table.add_row(g.name, g.namespace, g.backend.value, ", ".join(g.clusters), workloads, rpo, str(g.priority))
    console.print(table)


def history(
    group: Annotated[str, typer.Option("--group", "-g", help="Protection group name.")],
    limit: Annotated[int, typer.Option(help="At most this many operations, newest first.")] = 20,
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """Past operations of GROUP with their outcome and duration (from Temporal visibility)."""
    config = config_or_exit(config_path, as_json=as_json)
    chosen = group_or_exit(config, group, as_json=as_json)
    rows = run(_history(config, chosen.name, limit, as_json=as_json))
    if as_json:
        emit_json(rows)
        return
    table = Table("started", "operation", "status", "outcome", "duration", "triggered by", box=None)
    for row in rows:
        duration = f"{row['duration_seconds']:.1f}s" if row["duration_seconds"] is not None else "running"
        table.add_row(
            row["started"] or "-",
            row["operation"] or "-",
            row["status"],
            row["outcome"] or "-",
            duration,
            row["triggered_by"] or "-",
        )
    console.print(table if rows else f"no operations recorded for {chosen.name}")


async def _history(config: OrchestratorConfig, group: str, limit: int, *, as_json: bool) -> list[dict[str, Any]]:
    client = await client_or_exit(config, as_json=as_json)
    rows: list[dict[str, Any]] = []
    async for execution in client.list_workflows(f'{visibility.GROUP.name} = "{group}"', limit=limit):
        attributes = execution.typed_search_attributes
        outcome = None
        status_name = execution.status.name if execution.status else "UNKNOWN"
        if status_name == "COMPLETED":
            result = await client.get_workflow_handle(
                execution.id, run_id=execution.run_id, result_type=FailoverResult
            ).result()
            outcome = result.outcome.value
        duration = (execution.close_time - execution.start_time).total_seconds() if execution.close_time else None
        rows.append(
            {
                "workflow_id": execution.id,
                "run_id": execution.run_id,
                "started": execution.start_time.isoformat(timespec="seconds") if execution.start_time else None,
                "operation": attributes.get(visibility.OPERATION),
                "status": status_name,
                "outcome": outcome,
                "phase": attributes.get(visibility.PHASE),
                "duration_seconds": duration,
                "triggered_by": attributes.get(visibility.TRIGGERED_BY),
            }
        )
    return rows
