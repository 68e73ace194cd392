"""``orchestrate failover``, ``failback`` and ``resume``: start a group's operation and follow it live."""

from __future__ import annotations

import asyncio
import getpass
from typing import Annotated, Any

import typer
from temporalio.client import WorkflowHandle

from orchestrate.commands.common import (
    ConfigOption,
    GroupOption,
    JsonOption,
    OptionalGroupOption,
    SilenceNotice,
    client_or_exit,
    config_or_exit,
    confirm_or_exit,
    follow_to_the_end,
    group_or_exit,
    report_detached,
    run,
)
from orchestrate.commands.site import fail_over_site
from orchestrate.exit_codes import ExitCode
from orchestrate.output import console, fail
from orchestrate.queries import NoAnswerError, ask
from orchestrate.service import (
    FencePendingError,
    GroupBusyError,
    approval_needed,
    pending_activity_details,
    start_operation,
)
from workflows.failover import GroupFailoverWorkflow
from workflows.models import FailoverRequest, FailoverResult, Operation, Progress, StepRecord, Verdict
from workflows.site.models import DEFAULT_PARALLEL

POLL_SECONDS = 0.5


def failover(
    group: OptionalGroupOption = None,
    site: Annotated[
        str | None,
        typer.Option("--site", help="Move every group whose primary is in SITE (tier by tier, by priority)."),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Cluster to move to (default: the group's other one); with --site: a site, and only groups whose "
            "other cluster is in it move.",
        ),
    ] = None,
    parallel: Annotated[
        int, typer.Option("--parallel", help="With --site: at most N groups of a tier move at once.")
    ] = DEFAULT_PARALLEL,
    unplanned: Annotated[
        bool,
        typer.Option(
            "--unplanned",
            help="The source site is lost: promote the target without it, then fence the old primary when it returns.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Proceed despite lag above RPO (planned) or a reachable source (unplanned).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Run preflight only and print the plan.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="Start and return at once (follow with `status`).")] = False,
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """Move GROUP's primary to the other cluster (planned: no acknowledged write is lost), or every group of SITE.

    With --site, the groups whose primary is observed in SITE move as one durable operation (site-failover/SITE):
    planned when the site answers, unplanned when it does not (or as --unplanned says).
    """
    if (group is None) == (site is None):
        fail("say which: --group GROUP or --site SITE (one of them)", ExitCode.BAD_INPUT, as_json=as_json)
    if site is not None:
        fail_over_site(
            site,
            operation=Operation.UNPLANNED if unplanned else None,
            to=to,
            parallel=parallel,
            force=force,
            dry_run=dry_run,
            yes=yes,
            detach=detach,
            as_json=as_json,
            config_path=config_path,
        )
    assert group is not None
    operation = Operation.UNPLANNED if unplanned else Operation.PLANNED
    _operate(group, operation, to, force, dry_run, yes, detach, as_json, config_path)


def failback(
    group: GroupOption,
    force: Annotated[bool, typer.Option("--force", help="Proceed despite lag above RPO.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Run preflight only and print the plan.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="Start and return at once.")] = False,
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """Move GROUP back to its other cluster once it replicates again (a planned failover)."""
    _operate(group, Operation.FAILBACK, None, force, dry_run, yes, detach, as_json, config_path)


def resume(
    group: GroupOption,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="Start and return at once.")] = False,
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """Finish what an operation that ended "needs attention" left on GROUP's current Primary.

    Re-observes the group (exactly one Primary is required), makes sure nothing runs on the other side, starts
    the application on the Primary, runs the post-hooks and reprotects the other side (unless a fence will).
    """
    _operate(group, Operation.RESUME, None, False, False, yes, detach, as_json, config_path)


def _operate(
    group_name: str,
    operation: Operation,
    target: str | None,
    force: bool,
    dry_run: bool,
    yes: bool,
    detach: bool,
    as_json: bool,
    config_path: Any,
) -> None:
    config = config_or_exit(config_path, as_json=as_json)
    group = group_or_exit(config, group_name, as_json=as_json)
    if target is not None and target not in group.clusters:
        fail(
            f"unknown target {target!r}: group {group.name} lives on {', '.join(group.clusters)}",
            ExitCode.BAD_INPUT,
            as_json=as_json,
        )
    what = _describe(operation, group.name, target)
    confirm_or_exit(what, f"{what.capitalize()}?", skip=yes or dry_run, as_json=as_json)
    request = FailoverRequest(
        group=group.name,
        operation=operation,
        target=target,
        force=force,
        dry_run=dry_run,
        approval_required=approval_needed(group, operation, alert=False) and not dry_run,
        triggered_by=f"cli:{getpass.getuser()}",
    )
    code = run(_start_and_follow(config, request, detach=detach, as_json=as_json))
    raise typer.Exit(int(code))


def _describe(operation: Operation, group: str, target: str | None) -> str:
    if operation is Operation.RESUME:
        return f"resume of {group}"
    return f"{operation.value} failover of {group}" + (f" to {target}" if target else "")


async def _start_and_follow(config: Any, request: FailoverRequest, *, detach: bool, as_json: bool) -> ExitCode:
    client = await client_or_exit(config, as_json=as_json)
    try:
        handle = await start_operation(client, config, request)
    except (GroupBusyError, FencePendingError) as busy:
        fail(str(busy), ExitCode.REFUSED, as_json=as_json)
    except NoAnswerError as silent:  # the fence runs but would not say whether the old primary is fenced
        fail(
            f"group {request.group} is not safe to move until its fence says whether its old primary is fenced: "
            f"{silent}",
            ExitCode.REFUSED,
            as_json=as_json,
            hint=f"start the worker, then `orchestrate status --group {request.group}` shows the fence",
        )
    status_command = f"orchestrate status --group {request.group}"
    if detach:
        return report_detached(handle.id, handle.result_run_id, status_command, as_json=as_json)
    if not as_json:
        console.print(
            f"[bold]{_describe(request.operation, request.group, request.target)}[/] started as "
            f"workflow [cyan]{handle.id}[/]"
        )
    return await follow_to_the_end(
        handle.id,
        _follow(handle, quiet=as_json),
        render_result,
        subject="the operation",
        status_command=status_command,
        abort_command=f"orchestrate abort --group {request.group}",
        as_json=as_json,
    )


async def _follow(handle: WorkflowHandle[GroupFailoverWorkflow, FailoverResult], *, quiet: bool) -> FailoverResult:
    """Print progress as it changes until the workflow ends."""
    view = ProgressPrinter(quiet=quiet)
    notice = SilenceNotice(quiet=quiet)
    result_task = asyncio.ensure_future(handle.result())
    while not result_task.done():
        try:
            progress = await ask(handle, GroupFailoverWorkflow.progress)
            details = await pending_activity_details(handle)
            notice.answered()
        except NoAnswerError as silent:
            notice.no_answer(silent)
            progress, details = None, []
        except Exception:  # Temporal itself unreachable for a moment: the result wait says if it lasts
            progress, details = None, []
        if progress is not None:
            view.update(progress, details)
        await asyncio.wait([result_task], timeout=POLL_SECONDS)
    result = result_task.result()
    view.update(result.progress, [])
    return result


class ProgressPrinter:
    """Line-oriented live progress: phase changes, steps starting and ending, retries, what a wait waits for."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.phase: str | None = None
        self.seen: dict[int, tuple[str, int]] = {}
        self.detail: str | None = None
        self.approval_hinted = False

    def update(self, progress: Progress, details: list[str]) -> None:
        """Print what changed since the last call."""
        if self.quiet:
            return
        if progress.phase.value != self.phase:
            self.phase = progress.phase.value
            console.print(f"[bold magenta]== {progress.phase.value}[/]: {progress.message}")
            if progress.findings and progress.phase.value in ("Refused", "DryRunComplete"):
                render_findings(progress)
        if progress.approval_pending and not self.approval_hinted:
            self.approval_hinted = True
            console.print(
                f"   waiting for approval: `orchestrate approve --group {progress.group}` "
                f"(or `orchestrate abort --group {progress.group}`)"
            )
        for index, step in enumerate(progress.steps):
            self._step(index, step)
        detail = details[-1] if details else None
        if detail and detail != self.detail:
            console.print(f"   [dim]… {detail}[/]")
        self.detail = detail

    def _step(self, index: int, step: StepRecord) -> None:
        key = (step.outcome, step.attempts)
        if self.seen.get(index) == key:
            return
        self.seen[index] = key
        where = f" on {step.cluster}" if step.cluster else ""
        if step.outcome == "running" and step.attempts <= 1:
            console.print(f" → {step.name}{where}")
        elif step.outcome == "running":
            console.print(f" [yellow]↻ {step.name}{where}: attempt {step.attempts}[/] (last error: {step.last_error})")
        elif step.outcome == "done":
            took = f" ({step.duration.total_seconds():.1f}s)" if step.duration else ""
            console.print(f" [green]✓ {step.name}{where}[/]{took}")
        else:
            console.print(f" [red]✗ {step.name}{where} {step.outcome}[/]: {step.last_error}")


def render_findings(progress: Progress) -> None:
    """Print preflight findings as a checklist."""
    marks = {Verdict.PASS: "[green]✓[/]", Verdict.WARN: "[yellow]![/]", Verdict.FAIL: "[red]✗[/]"}
    for finding in progress.findings:
        remedy = f"  → {finding.remedy}" if finding.remedy and finding.verdict is not Verdict.PASS else ""
        console.print(f"   {marks[finding.verdict]} {finding.check}: {finding.observed}{remedy}")


def render_result(result: FailoverResult) -> None:
    """Print how the operation ended."""
    progress = result.progress
    colour = {"succeeded": "green", "dry-run": "green", "refused": "yellow"}.get(result.outcome.value, "red")
    console.print(f"[bold {colour}]{result.outcome.value}[/]: {result.message}")
    if progress.lag_seconds is not None:
        rpo = f" (RPO {progress.rpo_seconds:.0f}s)" if progress.rpo_seconds is not None else ""
        console.print(f"   lag before the operation: {progress.lag_seconds:.1f}s{rpo}")
    if progress.data_loss_window_seconds is not None:
        since = f" at {progress.last_sync_seen.isoformat()}" if progress.last_sync_seen else ""
        source = f"; that time is {progress.last_sync_source}" if progress.last_sync_source else ""
        console.print(
            f"   data-loss window: {progress.data_loss_window_seconds:.1f}s "
            f"(since the last completed sync{since}{source})"
        )
    if progress.compensated:
        console.print(f"   undone: {', '.join(progress.compensated)}")
    if progress.left_to_do:
        console.print(f"   left to do: {', '.join(progress.left_to_do)}")
    if progress.fence_workflow:
        console.print(
            f"   fence: {progress.fence_workflow} demotes {progress.source} with resync when it answers again "
            f"(`orchestrate status --group {progress.group}` shows it)"
        )
