"""Models of a site failover that cross the Temporal boundary: its input, its plan, its progress and its result.

Like every boundary model (:mod:`workflows.models`) they are frozen, tolerate unknown fields and name groups rather
than carrying their configuration: the worker resolves each group from its own configuration.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from workflows.models import AlertNote, Finding, Frozen, Operation, Outcome, Phase

DEFAULT_PARALLEL = 10
"""Groups moved at once within a tier when the operator does not say."""


class SiteFailoverRequest(Frozen):
    """The input of a site failover (``site-failover/<site>``).

    Attributes:
        site: the site whose groups move away (every group whose primary is observed on one of its clusters).
        operation: planned or unplanned; ``None`` lets the site's state decide (planned when it answers).
        to_site: only groups whose other cluster is in this site move (``None``: every group, each to its other
            cluster); the others are skipped with the reason.
        parallel: at most this many groups of a tier move at once.
        force: passed to every group (lag above RPO, or a source that answers in an unplanned move).
        dry_run: plan and run every group's preflight, change nothing.
        triggered_by: who started it (``cli:<user>``, ``alertmanager:<alert>``).
        approval_required: every group waits for ``approve`` before changing anything (the groups' own policies
            apply as well).
        alert: the alert that started it (``orchestrate serve``), if one did; every group's operation carries it.
    """

    site: str
    operation: Operation | None = None
    to_site: str | None = None
    parallel: int = DEFAULT_PARALLEL
    force: bool = False
    dry_run: bool = False
    triggered_by: str = "cli"
    approval_required: bool = False
    alert: AlertNote | None = None


class SiteInput(Frozen):
    """The plan activity's input (``to_site``: see :class:`SiteFailoverRequest`)."""

    site: str
    to_site: str | None = None


class GroupsInput(Frozen):
    """Groups to look up in Temporal."""

    groups: tuple[str, ...]


class OperationsReport(Frozen):
    """Per group: an operation runs on it, its fence still waits, the last sync its monitor saw."""

    busy: tuple[str, ...] = ()
    fence_pending: tuple[str, ...] = ()
    last_sync_seen: dict[str, datetime] = Field(default_factory=dict)
    """The newest completed sync each group's monitor saw (an unplanned move measures its data-loss window from
    it when the lost primary was the only side reporting sync times)."""


class JoinInput(Frozen):
    """The group whose running operation to wait for."""

    group: str


class PlannedGroup(Frozen):
    """A group whose primary the plan observed in the site.

    Attributes:
        group: its name.
        backend: its backend (for the progress table).
        priority: its tier (lower first).
        source: its Primary's cluster (in the site).
        target: the cluster it moves to.
        source_answers: whether ``source`` answered the plan's observation.
        busy: an operation already runs on it (the site failover joins that one instead of starting another).
        fence_pending: its old primary still waits for a fence (it must not be moved again before that ends).
    """

    group: str
    backend: str
    priority: int
    source: str
    target: str
    source_answers: bool
    busy: bool = False
    fence_pending: bool = False


class SkippedGroup(Frozen):
    """A configured group of the site that the site failover leaves where it is, and why.

    Attributes:
        group: its name.
        reason: why it stays.
        attention: its state is unclear (e.g. two Primaries, or neither side readable): an operator must look.
    """

    group: str
    reason: str
    attention: bool = False


class SitePlan(Frozen):
    """What the plan activity observed: the site's groups, which to move, and whether the site answers.

    Attributes:
        site: the site.
        clusters: the site's clusters in the worker's configuration.
        site_answers: at least one of the site's clusters answered.
        groups: the groups to move.
        skipped: the site's other groups, each with the reason.
    """

    site: str
    clusters: tuple[str, ...]
    site_answers: bool
    groups: tuple[PlannedGroup, ...] = ()
    skipped: tuple[SkippedGroup, ...] = ()


class GroupState(StrEnum):
    """Where a group of a site failover is."""

    WAITING = "waiting"
    RUNNING = "running"
    JOINED = "joined"
    """An operation that was already running on the group; the site failover waits for it."""
    ENDED = "ended"
    NOT_STARTED = "not-started"
    """Aborted, or refused before it started (a pending fence)."""


class SiteGroupProgress(Frozen):
    """One group in the site failover's progress."""

    group: str
    backend: str
    tier: int
    source: str
    target: str
    state: GroupState = GroupState.WAITING
    phase: Phase | None = None
    message: str = ""
    application_started: bool = False
    started: datetime | None = None
    ended: datetime | None = None
    outcome: Outcome | None = None
    data_loss_window_seconds: float | None = None
    findings: tuple[Finding, ...] = ()
    workflow_id: str = ""


class SitePhase(StrEnum):
    """Where the site failover is."""

    PLANNING = "Planning"
    MOVING = "Moving"
    ENDED = "Ended"


class SiteProgress(Frozen):
    """The answer of the site failover's ``progress`` query: the whole site in one answer."""

    site: str
    phase: SitePhase
    message: str
    operation: Operation | None = None
    parallel: int = DEFAULT_PARALLEL
    tiers: tuple[int, ...] = ()
    current_tier: int | None = None
    groups: tuple[SiteGroupProgress, ...] = ()
    skipped: tuple[SkippedGroup, ...] = ()
    aborted_by: str | None = None
    started: datetime | None = None
    triggered_by: str = ""
    alerts: tuple[AlertNote, ...] = ()
    """The alert that started the site failover (first), then those that joined it or resolved while it ran."""

    def counts(self) -> dict[str, int]:
        """Groups per outcome (ended ones) or state (the others)."""
        tally: dict[str, int] = {}
        for group in self.groups:
            key = group.outcome.value if group.outcome is not None else group.state.value
            tally[key] = tally.get(key, 0) + 1
        return tally


class SiteFailoverResult(Frozen):
    """How a site failover ended: the site's outcome (the worst of its groups'), a message, the final progress."""

    outcome: Outcome
    message: str
    progress: SiteProgress
