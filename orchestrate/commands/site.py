"""``orchestrate failover --site``, ``abort --site`` and ``approve --site``: a whole site, followed live.

The live view asks the site workflow for its progress once per refresh (one query, whatever the number of groups):
a table redrawn in place on a terminal, one line per change otherwise (logs, CI), one JSON document with
``--json``. The summary lists every group's outcome, duration and data-loss window, and what needs attention.
"""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime
from typing import Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from orchestrate.commands.common import (
    SilenceNotice,
    client_or_exit,
    config_or_exit,
    confirm_or_exit,
    follow_to_the_end,
    report_detached,
    run,
)
from orchestrate.config import OrchestratorConfig
from orchestrate.exit_codes import ExitCode
from orchestrate.output import console, emit_json, fail
from orchestrate.queries import NoAnswerError, ask
from orchestrate.site_service import (
    NoSiteOperationError,
    SiteBusyError,
    SiteHandle,
    abort_site,
    approve_site,
    known_sites,
    start_site_operation,
)
from workflows.models import Operation, Outcome, Verdict
from workflows.site import SiteFailoverWorkflow
from workflows.site.models import SiteFailoverRequest, SiteFailoverResult, SiteGroupProgress, SiteProgress

REFRESH_SECONDS = 0.5


def site_or_exit(config: OrchestratorConfig, site: str, *, as_json: bool) -> str:
    """The site if a configured cluster is in it, else exit with BAD_INPUT listing the known sites."""
    sites = known_sites(config)
    if site not in sites:
        fail(f"unknown site {site!r}; known sites: {', '.join(sites)}", ExitCode.BAD_INPUT, as_json=as_json)
    return site


def fail_over_site(
    site: str,
    *,
    operation: Operation | None,
    to: str | None,
    parallel: int,
    force: bool,
    dry_run: bool,
    yes: bool,
    detach: bool,
    as_json: bool,
    config_path: Any,
) -> None:
    """Start (and follow) the failover of every group whose primary is in ``site``."""
    config = config_or_exit(config_path, as_json=as_json)
    site_or_exit(config, site, as_json=as_json)
    if to is not None:
        site_or_exit(config, to, as_json=as_json)
        if to == site:
            fail(f"--to {to}: the groups move away from {site}, not to it", ExitCode.BAD_INPUT, as_json=as_json)
    if parallel < 1:
        fail(f"--parallel {parallel}: at least 1 group at a time", ExitCode.BAD_INPUT, as_json=as_json)
    what = f"{operation.value if operation else 'the'} failover of every group whose primary is in {site}"
    confirm_or_exit(what, f"Start the {what}?", skip=yes or dry_run, as_json=as_json)
    request = SiteFailoverRequest(
        site=site,
        operation=operation,
        to_site=to,
        parallel=parallel,
        force=force,
        dry_run=dry_run,
        triggered_by=f"cli:{getpass.getuser()}",
    )
    code = run(_start_and_follow(config, request, detach=detach, as_json=as_json))
    raise typer.Exit(int(code))


async def _start_and_follow(
    config: OrchestratorConfig, request: SiteFailoverRequest, *, detach: bool, as_json: bool
) -> ExitCode:
    client = await client_or_exit(config, as_json=as_json)
    try:
        handle = await start_site_operation(client, config, request)
    except SiteBusyError as busy:
        fail(str(busy), ExitCode.REFUSED, as_json=as_json)
    status_command = f"orchestrate status --site {request.site}"
    if detach:
        return report_detached(handle.id, handle.result_run_id, status_command, as_json=as_json)
    if not as_json:
        console.print(f"[bold]site failover of {request.site}[/] started as workflow [cyan]{handle.id}[/]")
    return await follow_to_the_end(
        handle.id,
        follow_site(handle, quiet=as_json),
        render_site_result,
        subject="the site failover",
        status_command=status_command,
        abort_command=f"orchestrate abort --site {request.site}",
        as_json=as_json,
    )


async def follow_site(handle: SiteHandle, *, quiet: bool) -> SiteFailoverResult:
    """Show the site's progress (one query per refresh) until its workflow ends."""
    result_task = asyncio.ensure_future(handle.result())
    live = Live(console=console, auto_refresh=False) if console.is_terminal and not quiet else None
    printer = SiteChangePrinter(quiet=quiet or live is not None)
    notice = SilenceNotice(quiet=quiet)
    try:
        if live is not None:
            live.start()
        while not result_task.done():
            progress: SiteProgress | None = None
            try:
                progress = await ask(handle, SiteFailoverWorkflow.progress)
                notice.answered()
            except NoAnswerError as silent:
                notice.no_answer(silent)
            except Exception:  # Temporal itself unreachable for a moment: the result wait says if it lasts
                pass
            if progress is not None:
                printer.update(progress)
                if live is not None:
                    live.update(site_table(progress), refresh=True)
            await asyncio.wait([result_task], timeout=REFRESH_SECONDS)
    finally:
        if live is not None:
            live.stop()
    result = result_task.result()
    printer.update(result.progress)
    return result


class SiteChangePrinter:
    """One line per change of a group's state, phase or outcome (for output that is not a terminal)."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.seen: dict[str, tuple[Any, ...]] = {}
        self.tier: int | None = None

    def update(self, progress: SiteProgress) -> None:
        """Print what changed since the last call."""
        if self.quiet:
            return
        if progress.current_tier is not None and progress.current_tier != self.tier:
            self.tier = progress.current_tier
            console.print(f"[bold magenta]== tier {self.tier}[/] (at most {progress.parallel} groups at once)")
        for group in progress.groups:
            key = (group.state, group.phase, group.outcome)
            if self.seen.get(group.group) == key:
                continue
            self.seen[group.group] = key
            where = group.outcome.value if group.outcome else group.phase.value if group.phase else group.state.value
            console.print(f"   {group.group} ({group.backend}, tier {group.tier}) {where}: {escape(group.message)}")


def _elapsed(group: SiteGroupProgress, now: datetime | None = None) -> str:
    if group.started is None:
        return ""
    end = group.ended or now
    return f"{(end - group.started).total_seconds():.1f}s" if end else "…"


def site_table(progress: SiteProgress) -> Table:
    """The whole site: one row per group, and the counts."""
    counts = ", ".join(f"{n} {k}" for k, n in sorted(progress.counts().items()))
    tier = f", tier {progress.current_tier}" if progress.current_tier is not None else ""
    table = Table(
        "group", "backend", "tier", "state", "phase", "elapsed", "message",
        title=f"site failover of {progress.site}: {progress.phase.value}{tier} — {counts}",
        box=None,
    )  # fmt: skip
    for group in progress.groups:
        state = group.outcome.value if group.outcome else group.state.value
        phase = group.phase.value if group.phase else ""
        took = _elapsed(group, datetime.now(UTC))
        table.add_row(group.group, group.backend, str(group.tier), state, phase, took, escape(group.message))
    return table


def render_site_result(result: SiteFailoverResult) -> None:
    """Print the summary: the outcome, each group's outcome, duration and data-loss window, what was skipped."""
    colour = {"succeeded": "green", "dry-run": "green", "refused": "yellow"}.get(result.outcome.value, "red")
    console.print(f"[bold {colour}]{result.outcome.value}[/]: {result.message}")
    progress = result.progress
    if progress.groups:
        table = Table("group", "tier", "outcome", "took", "data-loss window", "message", box=None)
        unplanned = progress.operation is Operation.UNPLANNED
        for group in progress.groups:
            window = group.data_loss_window_seconds
            table.add_row(
                group.group,
                str(group.tier),
                group.outcome.value if group.outcome else group.state.value,
                _elapsed(group),
                f"{window:.1f}s" if window is not None else ("unknown" if unplanned else ""),
                escape(group.message),
            )
        console.print(table)
    for group in progress.groups:
        for finding in group.findings:
            if finding.verdict is not Verdict.PASS:
                remedy = f" → {finding.remedy}" if finding.remedy else ""
                console.print(f"   {group.group}: {finding.verdict.value}: {finding.check}: {finding.observed}{remedy}")
    for skipped in progress.skipped:
        mark = "[red]needs attention[/]" if skipped.attention else "stays"
        console.print(f"   {skipped.group}: {mark}: {escape(skipped.reason)}")
    attention = [g.group for g in progress.groups if g.outcome is Outcome.NEEDS_ATTENTION]
    if attention:
        console.print(
            "   needs attention: " + ", ".join(attention) + " (`orchestrate status --group G` says what is left; "
            "`orchestrate resume --group G` finishes it)"
        )


def answer_site(site: str, verb: str, who: str, only_group: str | None, as_json: bool, config_path: Any) -> None:
    """``abort --site`` or ``approve --site``: answer the site failover and its moving groups."""
    config = config_or_exit(config_path, as_json=as_json)
    site_or_exit(config, site, as_json=as_json)

    async def send() -> tuple[str, list[Any]]:
        client = await client_or_exit(config, as_json=as_json)
        try:
            if verb == "abort":
                return await abort_site(client, site, who)
            return f"approvals for the site failover of {site}", await approve_site(client, site, who, only_group)
        except NoSiteOperationError as none:
            fail(
                str(none), ExitCode.REFUSED, as_json=as_json, hint=f"`orchestrate status --site {site}` shows the site"
            )
        except NoAnswerError as silent:
            fail(
                f"nothing was {'approved' if verb == 'approve' else 'aborted'}: {silent}",
                ExitCode.REFUSED,
                as_json=as_json,
                hint=f"`orchestrate status --site {site}` shows what Temporal knows",
            )

    message, answers = run(send())
    if as_json:
        emit_json(
            {
                "site": site,
                "action": verb,
                "answer": message,
                "groups": [{"group": a.group, "accepted": a.accepted, "answer": a.answer} for a in answers],
            }
        )
        return
    console.print(message)
    for answer in answers:
        mark = "[green]✓[/]" if answer.accepted else "[yellow]✗[/]"
        console.print(f"   {mark} {answer.group}: {answer.answer}")
