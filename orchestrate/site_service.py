"""Starting, following and answering a site failover: what the CLI (and later the webhook) share for a site.

One site failover per site at a time: the workflow id is ``site-failover/<site>``. ``abort`` and ``approve`` for a
site reach the groups through their own validated updates, so each group answers as it would alone (an abort is
refused once its promotion is sent; an approval only where one is awaited).
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from orchestrate.config import OrchestratorConfig
from orchestrate.queries import NoAnswerError, ask, describe, or_no_answer, tell
from orchestrate.service import EXECUTION_TIMEOUT, alert_details
from workflows import visibility
from workflows.failover import GroupFailoverWorkflow, operation_id
from workflows.models import Operation, Phase
from workflows.site import SiteFailoverWorkflow, site_operation_id
from workflows.site.models import (
    GroupState,
    SiteFailoverRequest,
    SiteFailoverResult,
    SiteGroupProgress,
    SitePhase,
    SiteProgress,
)

SiteHandle = WorkflowHandle[SiteFailoverWorkflow, SiteFailoverResult]


class SiteBusyError(Exception):
    """A site failover already runs for the site."""

    def __init__(self, site: str, progress: SiteProgress | NoAnswerError | None) -> None:
        self.site = site
        self.progress = progress if isinstance(progress, SiteProgress) else None
        running = f" ({progress.message})" if isinstance(progress, SiteProgress) else ""
        if isinstance(progress, NoAnswerError):
            running = f" (it did not say what it does: {progress})"
        super().__init__(
            f"a site failover of {site} is already running{running}; follow it with "
            f"`orchestrate status --site {site}` or stop it with `orchestrate abort --site {site}`"
        )


class NoSiteOperationError(Exception):
    """No site failover runs for the site."""


def known_sites(config: OrchestratorConfig) -> list[str]:
    """The sites of the configured clusters."""
    return sorted({c.site for c in config.clusters})


async def start_site_operation(client: Client, config: OrchestratorConfig, request: SiteFailoverRequest) -> SiteHandle:
    """Start the site's failover.

    Raises:
        SiteBusyError: one already runs for the site.
    """
    operation = request.operation.value if request.operation else "auto"
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(visibility.SITE, request.site),
            SearchAttributePair(visibility.OPERATION, Operation.SITE.value),
            SearchAttributePair(visibility.TRIGGERED_BY, request.triggered_by),
        ]
    )
    try:
        return await client.start_workflow(
            SiteFailoverWorkflow.run,
            request,
            id=site_operation_id(request.site),
            task_queue=config.temporal.task_queue,
            execution_timeout=EXECUTION_TIMEOUT,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=attributes,
            static_summary=f"site failover of {request.site} ({operation}{', dry run' if request.dry_run else ''})",
            static_details=f"triggered by {request.triggered_by}{alert_details(request.alert)}; at most "
            f"{request.parallel} groups at once per tier",
        )
    except WorkflowAlreadyStartedError:
        pass
    except RPCError as error:
        if error.status is not RPCStatusCode.ALREADY_EXISTS:
            raise
    raise SiteBusyError(request.site, await or_no_answer(running_site_progress(client, request.site)))


async def running_site_progress(client: Client, site: str) -> SiteProgress | None:
    """The progress of the site's running failover, or ``None`` when none runs.

    Raises:
        NoAnswerError: the site failover runs and its worker did not answer in time.
    """
    handle = client.get_workflow_handle_for(SiteFailoverWorkflow.run, site_operation_id(site))
    description = await describe(handle)
    if description is None or description.status is not WorkflowExecutionStatus.RUNNING:
        return None
    run = client.get_workflow_handle_for(SiteFailoverWorkflow.run, description.id, run_id=description.run_id)
    try:
        progress = await ask(run, SiteFailoverWorkflow.progress)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return progress if progress.phase is not SitePhase.ENDED else None


@dataclass(frozen=True)
class GroupAnswer:
    """What one group answered to a site-wide ``abort`` or ``approve``."""

    group: str
    accepted: bool
    answer: str


async def abort_site(client: Client, site: str, requester: str) -> tuple[str, list[GroupAnswer]]:
    """Stop the site failover from starting groups, then ask each group still moving to abort.

    Raises:
        NoSiteOperationError: no site failover runs for the site (or it refused: already aborted or ended).
        NoAnswerError: the site failover did not take the abort in time (it may still take effect).
    """
    handle = client.get_workflow_handle_for(SiteFailoverWorkflow.run, site_operation_id(site))
    try:
        running = await tell(handle, SiteFailoverWorkflow.abort, requester)
    except WorkflowUpdateFailedError as refused:
        raise NoSiteOperationError(f"abort refused: {_reason(refused)}") from None
    except RPCError as error:
        raise NoSiteOperationError(f"no site failover of {site} is running ({error.message})") from None
    answers = [await _answer_group(client, group, "abort", requester) for group in running]
    return f"site failover of {site}: no more groups start (aborted by {requester})", answers


async def approve_site(client: Client, site: str, requester: str, only: str | None = None) -> list[GroupAnswer]:
    """Approve every group of the site's running failover that waits for approval (or only the group ``only``).

    Raises:
        NoSiteOperationError: no site failover runs for the site.
        NoAnswerError: it runs but did not say which groups wait (nothing is approved).
    """
    progress = await running_site_progress(client, site)
    if progress is None:
        raise NoSiteOperationError(f"no site failover of {site} is running")

    def wanted(group: SiteGroupProgress) -> bool:
        if only is not None:
            return group.group == only
        return group.phase is Phase.WAITING_FOR_APPROVAL

    names = [g.group for g in progress.groups if g.state is GroupState.RUNNING and wanted(g)]
    if only is not None and not names:
        known = ", ".join(g.group for g in progress.groups) or "none"
        raise NoSiteOperationError(f"group {only} is not moving in the site failover of {site} (its groups: {known})")
    if not names:
        raise NoSiteOperationError(f"no group of the site failover of {site} waits for approval")
    return [await _answer_group(client, group, "approve", requester) for group in names]


async def _answer_group(client: Client, group: str, verb: str, requester: str) -> GroupAnswer:
    handle = client.get_workflow_handle_for(GroupFailoverWorkflow.run, operation_id(group))
    update = GroupFailoverWorkflow.approve if verb == "approve" else GroupFailoverWorkflow.abort
    try:
        return GroupAnswer(group, True, await tell(handle, update, requester))
    except NoAnswerError as silent:
        return GroupAnswer(group, False, f"{verb} not confirmed (it may still take effect): {silent}")
    except WorkflowUpdateFailedError as refused:
        return GroupAnswer(group, False, f"{verb} refused: {_reason(refused)}")
    except RPCError as error:
        return GroupAnswer(group, False, f"no running operation ({error.message})")


def _reason(refused: WorkflowUpdateFailedError) -> str:
    cause = refused.cause
    return str(getattr(cause, "message", None) or cause or refused)
