"""The operations' metrics, recorded through Temporal's workflow meter.

The meter is replay-safe (nothing is recorded again when a workflow is replayed) and exports with the worker's
runtime: ``orchestrate worker --metrics-address HOST:PORT`` serves them in Prometheus format next to the SDK's own
(``temporal_*``). Without a metrics exporter they are no-ops.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

OPERATIONS = "failover_operations"
OPERATION_SECONDS = "failover_operation_duration_seconds"
STEP_SECONDS = "failover_step_duration_seconds"
DATA_LOSS_SECONDS = "failover_data_loss_window_seconds"
LAG_SECONDS = "failover_replication_lag_seconds"
REACHABLE = "failover_cluster_reachable"


def operation_ended(group: str, operation: str, outcome: str, data_loss_window: float | None) -> None:
    """Count an ended operation and record its duration (and an unplanned one's data-loss window)."""
    meter = workflow.metric_meter()
    labels = {"group": group, "operation": operation, "outcome": outcome}
    meter.create_counter(OPERATIONS, "Group operations that ended, by group, operation and outcome.").add(1, labels)
    seconds = (workflow.now() - workflow.info().start_time).total_seconds()
    meter.create_histogram_float(OPERATION_SECONDS, "How long group operations took.", "s").record(seconds, labels)
    if data_loss_window is not None:
        meter.create_histogram_float(
            DATA_LOSS_SECONDS, "Data-loss window of unplanned failovers (last sync seen to promotion).", "s"
        ).record(data_loss_window, {"group": group})


def step_ended(group: str, step: str, cluster: str | None, outcome: str, started: datetime, ended: datetime) -> None:
    """Record one step's duration."""
    workflow.metric_meter().create_histogram_float(STEP_SECONDS, "How long each step took.", "s").record(
        (ended - started).total_seconds(),
        {"group": group, "step": step, "cluster": cluster or "", "outcome": outcome},
    )


def replication_lag(group: str, seconds: float) -> None:
    """The group's replication lag as its monitor last saw it (now minus the newest completed sync)."""
    workflow.metric_meter().create_gauge_float(
        LAG_SECONDS, "Seconds since the group's newest completed sync, as its monitor last saw it.", "s"
    ).set(seconds, {"group": group})


def reachability(group: str, answered: list[str], unreachable: list[str]) -> None:
    """1 for each of the group's clusters that answered its monitor's last observation, 0 for each that did not."""
    gauge = workflow.metric_meter().create_gauge(
        REACHABLE, "Whether the cluster answered the group's monitor at its last observation (1) or not (0)."
    )
    for cluster in answered:
        gauge.set(1, {"group": group, "cluster": cluster})
    for cluster in unreachable:
        gauge.set(0, {"group": group, "cluster": cluster})
