"""Models that cross the Temporal boundary: workflow inputs, activity inputs and results, progress and outcomes.

All are frozen pydantic models (the client, worker and replayer use ``pydantic_data_converter``). They carry small
summaries (names, states, timestamps), never Kubernetes objects, and never a group's configuration: inputs name the
group and the worker resolves it from its own configuration, so a client cannot make the worker act on namespaces,
workloads or URLs it chose. Unknown fields are ignored, so that an older worker can read what a newer client sent
(and an older CLI a newer worker's result) while both are deployed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import ReplicationStatus, SyncPoint


class Frozen(BaseModel):
    """Base of every boundary model: immutable, and tolerant of fields a newer peer adds."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Operation(StrEnum):
    """What a workflow does (the ``FailoverOperation`` search attribute)."""

    PLANNED = "planned"
    UNPLANNED = "unplanned"
    FAILBACK = "failback"
    RESUME = "resume"
    FENCE = "fence"
    SITE = "site"


class Phase(StrEnum):
    """Where an operation is (Ramen-like names operators recognise; the ``FailoverPhase`` search attribute)."""

    PREFLIGHT = "Preflight"
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    PRE_HOOKS = "PreHooks"
    QUIESCING = "Quiescing"
    DEMOTING = "Demoting"
    WAITING_FOR_FINAL_SYNC = "WaitingForFinalSync"
    PROMOTING = "Promoting"
    STARTING = "StartingApplication"
    POST_HOOKS = "PostHooks"
    REPROTECTING = "Reprotecting"
    FENCING_ON_RETURN = "FencingOnReturn"
    FENCED = "Fenced"
    COMPENSATING = "Compensating"
    RELOCATED = "Relocated"
    FAILED_OVER = "FailedOver"
    RESUMED = "Resumed"
    DRY_RUN = "DryRunComplete"
    REFUSED = "Refused"
    FAILED_COMPENSATED = "FailedCompensated"
    NEEDS_ATTENTION = "NeedsAttention"
    ABORTED = "Aborted"


class Verdict(StrEnum):
    """The result of one preflight check."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class Finding(Frozen):
    """One preflight check: what was checked, what was observed, the verdict, and what would make it pass."""

    check: str
    observed: str
    verdict: Verdict
    remedy: str | None = None


class AlertNote(Frozen):
    """An Alertmanager alert that started an operation, joined it, or resolved while it ran.

    Attributes:
        alertname: the alert's ``alertname`` label.
        fingerprint: Alertmanager's identity of the alert.
        status: ``firing`` or ``resolved`` (a resolved alert is recorded, it never stops anything).
        group_key: the notification's ``groupKey`` (one route and one set of group labels).
        receiver: the Alertmanager receiver that sent it.
        external_url: the sending Alertmanager's ``externalURL``.
        starts_at: when the alert started firing.
        rule: the orchestrator's rule that matched it.
        received_at: when the orchestrator received the notification.
    """

    alertname: str
    fingerprint: str
    status: str
    group_key: str = ""
    receiver: str = ""
    external_url: str = ""
    starts_at: datetime | None = None
    rule: str = ""
    received_at: datetime | None = None


ALERT_SIGNAL = "alert"
"""The signal by which the webhook tells a running operation about an alert that joined it or resolved."""


class FailoverRequest(Frozen):
    """The input of a group failover workflow.

    Attributes:
        group: the group's name; the worker resolves it from its own configuration (an unknown one is refused).
        operation: planned, unplanned, failback or resume.
        target: the cluster that becomes primary; ``None`` means "the group's other cluster".
        force: proceed despite lag above RPO (planned) or a reachable source (unplanned).
        dry_run: stop after preflight and report the plan.
        approval_required: wait for ``approve`` before changing anything.
        triggered_by: who started it (``cli:<user>``, ``alertmanager:<alert>``).
        fence_poll_initial: first wait between fence-on-return probes (doubles up to ``fence_poll_max``).
        fence_poll_max: longest wait between fence-on-return probes (a returning site is fenced at most this long
            after it answers again; a probe is one cheap request).
        last_sync_seen: the newest completed sync the group's monitor saw (the data-loss window of an unplanned
            failover is measured from it when the lost primary was the only side reporting sync times).
        fence_pending: resume only: a fence workflow still waits for the old primary (resume leaves it to it).
        expected_primary: resume only: the cluster the unfinished operation promoted (the fence's new primary, or
            the last operation's target); resume refuses when another side is the one observed Primary.
        alert: the alert that started it (``orchestrate serve``), if one did.
    """

    group: str
    operation: Operation
    target: str | None = None
    force: bool = False
    dry_run: bool = False
    approval_required: bool = False
    triggered_by: str = "cli"
    fence_poll_initial: timedelta = timedelta(seconds=5)
    fence_poll_max: timedelta = timedelta(seconds=30)
    last_sync_seen: datetime | None = None
    fence_pending: bool = False
    expected_primary: str | None = None
    alert: AlertNote | None = None


class StepRecord(Frozen):
    """One step of an operation as the progress query reports it."""

    name: str
    cluster: str | None = None
    started: datetime | None = None
    ended: datetime | None = None
    attempts: int = 0
    outcome: str = "pending"
    detail: str = ""
    last_error: str | None = None

    @property
    def duration(self) -> timedelta | None:
        """How long the step took (or has taken so far)."""
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


class Progress(Frozen):
    """The answer of the ``progress`` query: everything ``orchestrate status`` and the CLI's live view show."""

    group: str
    operation: Operation
    source: str | None
    target: str | None
    phase: Phase
    message: str
    steps: tuple[StepRecord, ...] = ()
    findings: tuple[Finding, ...] = ()
    lag_seconds: float | None = None
    rpo_seconds: float | None = None
    data_loss_window_seconds: float | None = None
    last_sync_seen: datetime | None = None
    last_sync_source: str = ""
    approval_pending: bool = False
    approved_by: str | None = None
    aborted_by: str | None = None
    compensated: tuple[str, ...] = ()
    fence_workflow: str | None = None
    left_to_do: tuple[str, ...] = ()
    leaves_primary_on: str | None = None
    """Where the group's Primary belongs if the operation ends now: the source until the promotion is requested,
    then the target; ``None`` once a compensation undoes a requested promotion (either side may hold it)."""
    triggered_by: str = ""
    alerts: tuple[AlertNote, ...] = ()
    """The alert that started the operation (first), then those that joined it or resolved while it ran."""


class Outcome(StrEnum):
    """How an operation ended (mapped to the CLI's exit codes)."""

    SUCCEEDED = "succeeded"
    DRY_RUN = "dry-run"
    REFUSED = "refused"
    FAILED_COMPENSATED = "failed-compensated"
    NEEDS_ATTENTION = "needs-attention"


class FailoverResult(Frozen):
    """The workflow's result."""

    outcome: Outcome
    message: str
    progress: Progress


GROUP_REPORT_SIGNAL = "group_report"
"""The signal by which a group operation started by a site failover reports its phase to it."""


class GroupReport(Frozen):
    """What a group operation started by a site failover tells its parent (a signal) as it goes."""

    group: str
    phase: Phase
    message: str
    application_started: bool = False


# --- activity inputs and results ------------------------------------------------------------------------------


class GroupOnCluster(Frozen):
    """An activity's subject: a group on one cluster."""

    group: str
    cluster: str


class PairInput(Frozen):
    """An activity that needs both sides: ``cluster`` acts, ``peer`` is the other side."""

    group: str
    cluster: str
    peer: str


class WaitInput(Frozen):
    """A heartbeating wait on one side with its own deadline (fixed at the first attempt: retries keep it)."""

    group: str
    cluster: str
    timeout: timedelta
    deadline: datetime | None = None


class PromoteInput(Frozen):
    """Promote ``cluster``: forced for an unplanned failover; ``sync_point`` from the source when planned."""

    group: str
    cluster: str
    peer: str
    force: bool
    sync_point: SyncPoint | None = None


class TransferInput(WaitInput):
    """A wait on the target until the source's sync point has reached it (before its planned promotion)."""

    sync_point: SyncPoint


class ReprotectInput(Frozen):
    """Make ``cluster`` follow ``peer``; ``resync`` only when the old primary returns after an unplanned failover."""

    group: str
    cluster: str
    peer: str
    resync: bool


class ScaleInput(Frozen):
    """Scale the group's workloads on ``cluster``; ``replicas`` by workload name (absent: the configured count)."""

    group: str
    cluster: str
    replicas: dict[str, int] = Field(default_factory=dict)


class PreflightInput(Frozen):
    """Preflight of an operation moving ``group`` from ``source`` to ``target``."""

    group: str
    operation: Operation
    source: str
    target: str
    force: bool


class PreflightReport(Frozen):
    """Structured findings and the observations they came from."""

    findings: tuple[Finding, ...]
    source_status: ReplicationStatus | None
    target_status: ReplicationStatus | None
    lag_seconds: float | None
    source_reachable: bool
    """The source's API answers usably (a forced unplanned failover stops and demotes it first); one that answers
    with 401/403, a TLS failure or 5xx cannot be acted on and is treated as lost (the fence waits for it)."""

    @property
    def refused(self) -> bool:
        """Whether any check failed."""
        return any(f.verdict is Verdict.FAIL for f in self.findings)


class RolesInput(Frozen):
    """Which side is primary now (read from the clusters, never from config).

    Attributes:
        group: the group.
        skip_silent: a cluster that gave no answer to this worker within the last few seconds is reported
            unreachable without asking it again (the monitors: a dead site must not hold one worker thread per
            group with a probe that times out).
    """

    group: str
    skip_silent: bool = False


class RolesReport(Frozen):
    """The observed role of each side that answered.

    Attributes:
        statuses: the replication status of each side that answered and could be read.
        unreachable: sides that did not answer at all (connection failures and timeouts only).
        errors: sides that answered but could not be read (401/403, TLS, 5xx, a missing object), with the reason.
    """

    statuses: dict[str, ReplicationStatus]
    unreachable: tuple[str, ...] = ()
    errors: dict[str, str] = Field(default_factory=dict)

    def primaries(self) -> list[str]:
        """Clusters reporting Primary."""
        return sorted(c for c, s in self.statuses.items() if s.role.value == "Primary")


class WorkloadsSnapshot(Frozen):
    """Replicas of each workload before it was stopped (to restore them on compensation)."""

    replicas: dict[str, int]


class HookInput(Frozen):
    """One HTTP hook call; ``idempotency_key`` is the same for every attempt of the same step."""

    group: str
    hook_name: str
    stage: str
    source: str
    target: str
    idempotency_key: str = ""


class ProbeReport(Frozen):
    """One reachability probe of a cluster: ``answers`` is true only when its API answered and can be used."""

    cluster: str
    answers: bool
    verdict: str
    detail: str = ""


class ResolveInput(Frozen):
    """The group a workflow is about, by name."""

    group: str


class FenceRequest(Frozen):
    """The input of a fence workflow (and what it carries across continue-as-new).

    Attributes:
        group: the group's name.
        old_primary: the lost cluster to fence when it answers again.
        new_primary: the cluster promoted in its place (the old one resyncs from it).
        operation: the workflow id and run id of the unplanned failover that promoted ``new_primary``.
        stage: where a continued fence resumes: ``waiting``, ``stopping`` or ``reprotecting``.
        waiting_since: when the fence started waiting.
        probes: probes made so far (across runs).
        poll_initial: first pause between probes (doubles up to ``poll_max``).
        poll_max: longest pause between probes.
        delay: the next pause (carried across continue-as-new).
        promotion_abandoned: the failover signalled that it gave up promoting ``new_primary``.
    """

    group: str
    old_primary: str
    new_primary: str
    operation: str = ""
    stage: str = "waiting"
    waiting_since: datetime | None = None
    probes: int = 0
    poll_initial: timedelta = timedelta(seconds=5)
    poll_max: timedelta = timedelta(seconds=30)
    delay: timedelta | None = None
    promotion_abandoned: bool = False


class FenceState(Frozen):
    """The answer of a fence's ``state`` query, and its result."""

    group: str
    old_primary: str
    new_primary: str
    stage: str
    message: str
    waiting_since: datetime | None = None
    next_probe_at: datetime | None = None
    probes: int = 0
    last_error: str | None = None
    steps: tuple[StepRecord, ...] = ()
    done: bool = False
