"""Preflight: every check an operation needs before it changes anything, each recorded as a finding.

A finding says what was checked, what was observed, the verdict, and what would make it pass. "Lost" is decided
here for an unplanned failover: the source counts as lost only when several probes spread over the group's
window all got no answer; a side that answers with 401/403, a TLS failure or 5xx is not lost, and an unplanned
failover does not pass without ``--force`` then.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from activities.groups import workload_ref as _ref
from adapters.base import ReplicationStatus, Role
from clusters.errors import OrchestratorError
from clusters.reachability import Reachability, assess, probe_by_reading
from clusters.reachability import Verdict as Reach
from clusters.workloads import read_workload
from workflows.groups import GroupConfig
from workflows.models import Finding, Operation, PreflightInput, PreflightReport, Verdict

if TYPE_CHECKING:
    from activities.failover import FailoverActivities


class Preflight:
    """The checks before one operation.

    Args:
        owner: the activities (cluster registry and adapters).
        group: the group, from the worker's configuration.
        request: what the operation is about to do.
    """

    def __init__(self, owner: FailoverActivities, group: GroupConfig, request: PreflightInput) -> None:
        self.owner = owner
        self.group = group
        self.request = request
        self.findings: list[Finding] = []
        # Every check reads the cluster as one moment: an object read by two checks is asked for once.
        self.reads = {cluster: owner.api(group, cluster).remembering() for cluster in group.clusters}

    def add(self, check: str, observed: str, verdict: Verdict, remedy: str | None = None) -> None:
        """Record one check."""
        self.findings.append(Finding(check=check, observed=observed, verdict=verdict, remedy=remedy))

    def reach_and_observe(self, cluster: str, *, decide_lost: bool) -> tuple[Reachability, ReplicationStatus | None]:
        """Probe ``cluster`` and read the group's replication status there (``None`` when it cannot be read).

        Deciding that a source is lost takes several pings over the group's window; otherwise reading the
        replication objects is the probe (with a ping's timeout). A read that fails although the cluster answers
        is a finding.
        """
        api = self.owner.api(self.group, cluster)
        status: ReplicationStatus | None = None
        failure: str | None = None
        if decide_lost:
            detection = self.group.loss_detection
            reach = assess(api, probes=detection.probes, window=detection.window.total_seconds())
            if reach.verdict is Reach.ANSWERS:
                try:
                    status = self.owner.adapter(self.group, cluster, api=self.reads[cluster]).observe()
                except OrchestratorError as exc:
                    failure = exc.describe()
        else:
            reach, status, failure = probe_by_reading(
                api, lambda quick: self.owner.adapter(self.group, cluster, api=quick).observe()
            )
        if failure is not None:
            self.add(
                f"replication objects on {cluster}",
                failure,
                Verdict.FAIL,
                "create the group's replication objects or fix the group's configuration",
            )
        return reach, status

    def run(self) -> PreflightReport:
        """Run every check for the request's operation."""
        request = self.request
        source, target = request.source, request.target
        unplanned = request.operation is Operation.UNPLANNED
        target_reach, target_status = self.reach_and_observe(target, decide_lost=False)
        source_reach, source_status = self.reach_and_observe(source, decide_lost=unplanned)
        self._target_reachable(target, target_reach)
        if unplanned:
            self._source_lost(source, source_reach)
        else:
            self._source_reachable(source, source_reach)
        if target_status is not None:
            self._target_role(target, target_status)
        if source_status is not None and not unplanned:
            self._source_role(source, source_status)
            self._volumes(source, source_status)
        lag = self._lag(source_status)
        if target_reach.verdict is Reach.ANSWERS:
            self._workloads(target, expect_running=False)
        if source_reach.verdict is Reach.ANSWERS and not unplanned:
            self._workloads(source, expect_running=True)
        return PreflightReport(
            findings=tuple(self.findings),
            source_status=source_status,
            target_status=target_status,
            lag_seconds=lag,
            source_reachable=source_reach.verdict is Reach.ANSWERS,
        )

    def _target_reachable(self, target: str, reach: Reachability) -> None:
        if reach.verdict is Reach.ANSWERS:
            self.add(f"{target} reachable", "answers", Verdict.PASS)
        else:
            self.add(
                f"{target} reachable",
                f"{reach.verdict.value}: {reach.detail}",
                Verdict.FAIL,
                f"the target must answer: restore access to {target}",
            )

    def _source_reachable(self, source: str, reach: Reachability) -> None:
        if reach.verdict is Reach.ANSWERS:
            self.add(f"{source} reachable", "answers", Verdict.PASS)
        elif reach.verdict is Reach.UNREACHABLE:
            self.add(
                f"{source} reachable",
                f"no answer: {reach.detail}",
                Verdict.FAIL,
                "a planned failover needs both sites; if the site is lost use --unplanned",
            )
        else:
            self.add(
                f"{source} reachable",
                f"{reach.verdict.value}: {reach.detail}",
                Verdict.FAIL,
                f"{source} answers but cannot be used: fix credentials, certificates or the API server first",
            )

    def _source_lost(self, source: str, reach: Reachability) -> None:
        group = self.group.name
        if reach.verdict is Reach.UNREACHABLE:
            self.add(
                f"{source} lost",
                f"no answer to {reach.failed_probes} of {reach.probes} probe(s): {reach.detail}",
                Verdict.PASS,
            )
            return
        if self.request.force:
            self.add(f"{source} lost", f"{source} {reach.verdict.value}: {reach.detail}; forced", Verdict.WARN)
            return
        if reach.verdict is Reach.ANSWERS:
            observed = f"{source} answers: the source site is not lost"
            remedy = (
                f"use a planned failover (orchestrate failover --group {group}) which loses no data, or --force "
                "if the source must be abandoned anyway"
            )
        else:
            observed = (
                f"{source} answers ({reach.verdict.value}: {reach.detail}): it is not known to be lost, only "
                "not usable from here"
            )
            remedy = (
                "fix the orchestrator's credentials or certificates for it; --force only if you know the site is "
                "down (its workloads cannot be stopped from here)"
            )
        self.add(f"{source} lost", observed, Verdict.FAIL, remedy)

    def _target_role(self, target: str, status: ReplicationStatus) -> None:
        if status.role is Role.SECONDARY and status.current:
            self.add(f"{target} is Secondary", status.message, Verdict.PASS)
        else:
            self.add(
                f"{target} is Secondary",
                status.message or status.role.value,
                Verdict.FAIL,
                f"{target} must be a current Secondary before it can be promoted",
            )
        if status.failure:
            self.add(f"{target} not degraded", status.failure, Verdict.FAIL, "fix the replication error first")

    def _source_role(self, source: str, status: ReplicationStatus) -> None:
        if status.role is Role.PRIMARY and status.current:
            self.add(f"{source} is Primary", status.message, Verdict.PASS)
        else:
            self.add(
                f"{source} is Primary",
                status.message or status.role.value,
                Verdict.FAIL,
                f"the group's primary is not {source}: check `orchestrate status --group {self.group.name}`",
            )
        if status.failure or not status.healthy:
            self.add(
                f"{source} healthy", status.failure or status.message, Verdict.FAIL, "fix the replication error first"
            )
        else:
            self.add(f"{source} healthy", "not degraded", Verdict.PASS)
        if status.replication_stopped:
            # A Dell link left FAILEDOVER: the peer has none of the writes made since, and a planned handover
            # would wait for a final sync that never comes (or hand over stale data).
            self.add(
                f"{source} replicating",
                status.message,
                Verdict.FAIL,
                f"nothing has reprotected the group since its last failover: `orchestrate resume --group "
                f"{self.group.name}` reprotects {self.request.target} from {source}",
            )

    def _volumes(self, source: str, status: ReplicationStatus) -> None:
        """Planned: every volume the group uses is replicated and healthy (else writes on it would be lost)."""
        expected = self.owner.group_pvcs(self.group, source, status, api=self.reads[source])
        problems = status.volume_problems(expected)
        if problems:
            self.add(
                f"every volume replicated on {source}",
                "; ".join(problems),
                Verdict.FAIL,
                "add the PVCs to the replication group (or fix their replication) before a planned failover",
            )
        else:
            self.add(f"every volume replicated on {source}", f"{len(expected)} PVC(s)", Verdict.PASS)

    def _lag(self, source_status: ReplicationStatus | None) -> float | None:
        rpo = self.group.rpo.total_seconds()
        last = source_status.last_sync_time if source_status else None
        if last is None:
            if self.request.operation is not Operation.UNPLANNED:
                self.add("lag within RPO", "the backend reports no last sync time", Verdict.WARN)
            return None
        lag = max(0.0, (datetime.now(UTC) - last).total_seconds())
        observed = f"last sync {lag:.1f}s ago (RPO {rpo:.0f}s)"
        if source_status is not None and source_status.last_sync_source:
            observed += f", as of {source_status.last_sync_source}"
        if lag <= rpo:
            self.add("lag within RPO", observed, Verdict.PASS)
        elif self.request.force:
            self.add("lag within RPO", observed + "; forced", Verdict.WARN)
        else:
            self.add(
                "lag within RPO",
                observed,
                Verdict.FAIL,
                "wait for replication to catch up, or pass --force to accept the lag",
            )
        return lag

    def _workloads(self, cluster: str, *, expect_running: bool) -> None:
        api = self.reads[cluster]
        for workload in self.group.workloads:
            try:
                state = read_workload(api, self.group.namespace, _ref(workload))
            except OrchestratorError as exc:
                self.add(
                    f"{workload.kind} {workload.name} on {cluster}",
                    exc.describe(),
                    Verdict.FAIL,
                    f"create {workload.kind} {workload.name} on {cluster} (scaled to 0 on the secondary)",
                )
                continue
            if not expect_running and state.desired > 0:
                self.add(
                    f"{workload.kind} {workload.name} stopped on {cluster}",
                    f"{state.desired} replica(s) desired on the target",
                    Verdict.FAIL,
                    f"scale {workload.name} to 0 on {cluster}: workloads must never run on both sites",
                )
            else:
                self.add(
                    f"{workload.kind} {workload.name} on {cluster}",
                    f"{state.ready}/{state.desired} ready",
                    Verdict.PASS,
                )
