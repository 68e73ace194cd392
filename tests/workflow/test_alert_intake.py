"""Workflow tier: the alert intake against a real Temporal dev server and the real group workflow (fake world).

One firing alert starts exactly one operation, which waits for approval (the default for alert-triggered moves);
the same notification posted again joins it; a resolved alert is recorded on it and stops nothing; after the move
a new alert within the cooldown starts nothing and says why. Temporal's visibility is the witness of how many
operations ran.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from clusters.registry import ClusterConfig
from orchestrate.alerts.intake import Action, take
from orchestrate.alerts.operations import TemporalOperations
from orchestrate.alerts.payload import Notification
from orchestrate.alerts.rules import AlertRule, AlertSettings, Target, TargetKind, parse_matcher
from orchestrate.config import OrchestratorConfig, TemporalSettings
from tests.workflow.conftest import Scenario, eventually, result_of
from workflows.failover import GroupFailoverWorkflow
from workflows.models import ALERT_SIGNAL, AlertNote, FailoverRequest, Operation, Outcome, Phase


def config_for(scenario: Scenario) -> OrchestratorConfig:
    group = scenario.world.group()
    return OrchestratorConfig(
        temporal=TemporalSettings(task_queue=scenario.task_queue),
        clusters=tuple(ClusterConfig(name=c, site=c, kubeconfig=Path("/nonexistent")) for c in group.clusters),
        groups=(group,),
        alerts=AlertSettings(
            rules=(
                AlertRule(
                    name="maintenance",
                    matchers=(parse_matcher("alertname=SiteMaintenance"),),
                    group=group.name,
                    away_from="dc1",
                    operation=Operation.PLANNED,
                ),
            )
        ),
    )


def notification(status: str = "firing", fingerprint: str = "f1") -> Notification:
    return Notification.model_validate(
        {
            "version": "4",
            "groupKey": '{}:{alertname="SiteMaintenance"}',
            "status": status,
            "receiver": "failover",
            "externalURL": "http://alertmanager:9093",
            "alerts": [
                {"status": status, "labels": {"alertname": "SiteMaintenance"}, "fingerprint": fingerprint},
            ],
        }
    )


async def operations_of(scenario: Scenario) -> list[Any]:
    query = f"WorkflowId = '{scenario.workflow_id}'"
    return [w async for w in scenario.client.list_workflows(query)]


async def test_an_alert_starts_one_operation_that_later_alerts_join_and_the_cooldown_then_holds(
    scenario: Scenario,
) -> None:
    config = config_for(scenario)
    operations = TemporalOperations(scenario.client, config)

    async def send(note: Notification) -> Any:
        (decision,) = await take(note, config.alerts, config, operations)
        return decision

    started = await send(notification())
    assert started.action is Action.STARTED and started.workflow_id == scenario.workflow_id
    assert "waits for approval" in started.reason
    handle = scenario.client.get_workflow_handle_for(GroupFailoverWorkflow.run, scenario.workflow_id)
    await eventually(lambda: handle.query(GroupFailoverWorkflow.progress), lambda p: p.approval_pending)

    joined = await send(notification())
    assert joined.action is Action.JOINED and joined.workflow_id == scenario.workflow_id
    resolved = await send(notification("resolved"))
    assert resolved.action is Action.RECORDED
    progress = await eventually(lambda: handle.query(GroupFailoverWorkflow.progress), lambda p: len(p.alerts) == 3)
    assert [(a.fingerprint, a.status) for a in progress.alerts] == [("f1", "firing")] * 2 + [("f1", "resolved")]
    assert progress.phase is Phase.WAITING_FOR_APPROVAL and progress.triggered_by == "alertmanager:SiteMaintenance"
    assert not any(c.startswith(("stop_workloads", "demote")) for c in scenario.world.calls)
    assert len(await operations_of(scenario)) == 1
    details = await (await handle.describe()).static_details()
    assert details is not None and "alert SiteMaintenance, fingerprint f1, rule maintenance" in details

    await handle.execute_update(GroupFailoverWorkflow.approve, "oncall")
    result = await result_of(handle)
    assert result.outcome is Outcome.SUCCEEDED and result.progress.alerts[0].rule == "maintenance"

    group = Target(TargetKind.GROUP, scenario.group)
    await eventually(lambda: operations.last_move(group), lambda moved: moved is not None)
    held = await send(notification(fingerprint="f2"))
    assert held.action is Action.IGNORED and "cooldown" in held.reason
    assert len(await operations_of(scenario)) == 1


async def test_a_group_moved_by_an_alert_started_site_failover_waits_for_approval(scenario: Scenario) -> None:
    """The group's alert policy holds for a site failover's child too: its trigger names the site, not the alert."""
    note = AlertNote(alertname="DatacenterDown", fingerprint="f1", status="firing", rule="dc1-dark")
    handle = await scenario.start(alert=note, triggered_by="site-failover/dc1 (alertmanager:DatacenterDown)")
    progress = await eventually(lambda: handle.query(GroupFailoverWorkflow.progress), lambda p: p.approval_pending)
    assert progress.alerts == (note,)
    assert not any(c.startswith(("stop_workloads", "demote")) for c in scenario.world.calls)
    await handle.execute_update(GroupFailoverWorkflow.approve, "oncall")
    assert (await result_of(handle)).outcome is Outcome.SUCCEEDED


async def test_two_notifications_at_the_same_moment_start_one_operation(scenario: Scenario) -> None:
    config = config_for(scenario)
    operations = TemporalOperations(scenario.client, config)
    first, second = await asyncio.gather(
        take(notification(fingerprint="a"), config.alerts, config, operations),
        take(notification(fingerprint="b"), config.alerts, config, operations),
    )
    assert sorted(d.action.value for d in (*first, *second)) == ["joined", "started"]
    assert len(await operations_of(scenario)) == 1
    handle = scenario.client.get_workflow_handle_for(GroupFailoverWorkflow.run, scenario.workflow_id)
    progress = await eventually(lambda: handle.query(GroupFailoverWorkflow.progress), lambda p: len(p.alerts) == 2)
    assert sorted(a.fingerprint for a in progress.alerts) == ["a", "b"]
    await handle.execute_update(GroupFailoverWorkflow.abort, "test")
    assert (await result_of(handle)).outcome is Outcome.FAILED_COMPENSATED


async def test_an_alert_signalled_before_the_workflow_ran_is_kept(scenario: Scenario) -> None:
    note = AlertNote(alertname="SiteMaintenance", fingerprint="early", status="firing")
    handle = await scenario.client.start_workflow(
        GroupFailoverWorkflow.run,
        FailoverRequest(group=scenario.group, operation=Operation.PLANNED, approval_required=True),
        id=scenario.workflow_id,
        task_queue=scenario.task_queue,
        start_signal=ALERT_SIGNAL,
        start_signal_args=[note],
    )
    progress = await eventually(lambda: handle.query(GroupFailoverWorkflow.progress), lambda p: p.approval_pending)
    assert progress.alerts == (note,)
    await handle.execute_update(GroupFailoverWorkflow.abort, "test")
    await result_of(handle)
