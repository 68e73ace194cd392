"""Workflow tier: a hook's secret header never leaves the activity that sends it.

A real GroupFailover workflow runs on the Temporal dev server with the activity fakes of fake_world.py, except
``run_hook``: the real ``FailoverActivities.run_hook`` calls a recording HTTP server on 127.0.0.1 with header
``Authorization: {env: HOOK_TOKEN}``, HOOK_TOKEN holding a planted secret. The hook server answers 200 (the
operation succeeds; pre- and post-hook called), or 500 (the pre-hook fails and the operation is compensated, so
the error is recorded), or 500 repeating the request's token in its body. The hook server must have received the
secret, and it must appear nowhere in the workflow's history (payloads decoded), its description, its result, the
progress query, or anything logged during the run (every Python logger at DEBUG, the Temporal core's own logs
forwarded to Python at DEBUG, and the process's stdout/stderr).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.failover import FailoverActivities
from activities.groups import static_lookup
from adapters.base import Backend
from clusters.registry import ClusterRegistry
from tests.unit.test_hooks import hook_server
from tests.workflow.fake_world import FakeWorld
from workflows.failover import GroupFailoverWorkflow, GroupFenceWorkflow
from workflows.groups import GroupConfig, HeaderSource, HookConfig, Hooks, ReplicationConfig, WorkloadConfig
from workflows.models import FailoverRequest, Operation, Outcome

CORE_LOGGER = "temporal-core-forwarded"

_runtime: Runtime | None = None


def forwarding_runtime() -> Runtime:
    """A Temporal runtime whose core logs (DEBUG) go to a Python logger, so caplog sees the worker's own logs."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="DEBUG", other_level="INFO"),
                    forwarding=LogForwardingConfig(logger=logging.getLogger(CORE_LOGGER)),
                ),
                metrics=None,
            )
        )
    return _runtime


def activity_name(fn: Callable[..., Any]) -> str | None:
    definition = activity._Definition.from_callable(fn)
    return definition.name if definition else None


def make_group(name: str, url: str) -> GroupConfig:
    token = {"Authorization": HeaderSource(env="HOOK_TOKEN"), "X-Team": HeaderSource(value="storage")}
    return GroupConfig(
        name=name,
        namespace=name,
        backend=Backend.CSI_ADDONS,
        clusters=("dc1", "dc2"),
        replication=ReplicationConfig(name="postgres"),
        workloads=(WorkloadConfig(kind="StatefulSet", name="postgres", replicas=1),),
        hooks=Hooks(
            pre=(HookConfig(name="dns", url=f"{url}/dns", headers=token),),
            post=(HookConfig(name="notify", url=f"{url}/notify", method="PUT", headers=token),),
        ),
    )


def decoded_history(history_json: str) -> str:
    """The history's JSON followed by every payload it carries, decoded (payload data is base64 in the JSON)."""
    parts = [history_json]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "data" and isinstance(value, str):
                    parts.append(base64.b64decode(value).decode(errors="replace"))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(history_json))
    return "\n".join(parts)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record captured: formatted text, message, arguments and extra attributes."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.__dict__))
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("status", "echo"),
    [
        pytest.param(200, False, id="hook-succeeds"),
        pytest.param(500, False, id="hook-answers-500"),
        # The error quotes the answer body: a server repeating the request's token there must not put it in history.
        pytest.param(500, True, id="hook-500-echoing-the-token"),
    ],
)
async def test_hook_secret_appears_in_no_history_result_progress_or_log(
    temporal_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    status: int,
    echo: bool,
) -> None:
    secret = f"s3cr3t-token-{uuid.uuid4()}"
    monkeypatch.setenv("HOOK_TOKEN", secret)
    caplog.set_level(logging.DEBUG)
    # A group name of its own: fence/<group> and failover/<group> ids must not collide with other tests'.
    name = f"pg-secret-{uuid.uuid4().hex[:8]}"
    task_queue = f"secrets-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        data_converter=pydantic_data_converter,
        runtime=forwarding_runtime(),
    )

    with hook_server(status=status) as server, httpx.Client(trust_env=False) as http:
        if status >= 300:
            server.body = '{"error": "dns provider down"}'
            server.echo_header = "Authorization" if echo else None
        group = make_group(name, server.url)
        world = FakeWorld(groups={name: group}, group_name=name)
        real = FailoverActivities(registry=ClusterRegistry([]), groups=static_lookup([group]), http=http)
        fakes = [fn for fn in world.activities() if activity_name(fn) != "run_hook"]
        assert len(fakes) == len(world.activities()) - 1
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="secrets-activity") as executor:
            async with Worker(
                client,
                task_queue=task_queue,
                workflows=[GroupFailoverWorkflow, GroupFenceWorkflow],
                activities=[real.run_hook, *fakes],
                activity_executor=executor,
            ):
                handle = await client.start_workflow(
                    GroupFailoverWorkflow.run,
                    FailoverRequest(group=name, operation=Operation.PLANNED),
                    id=f"failover/{name}",
                    task_queue=task_queue,
                    execution_timeout=timedelta(seconds=60),
                )
                result = await handle.result()
                progress = await handle.query(GroupFailoverWorkflow.progress)
                history = await handle.fetch_history()
                description = await handle.describe()
        await asyncio.sleep(0.5)  # forwarded core logs are buffered for a few milliseconds

    # The hook server did get the secret (so it was in the process, and had a chance to leak).
    assert server.requests, "the hook was not called"
    assert all(r.headers["Authorization"] == secret for r in server.requests)
    assert world.hook_calls == []  # the fake run_hook was not registered
    steps = {s.name: s for s in progress.steps}
    if status == 200:
        assert result.outcome is Outcome.SUCCEEDED, result.message
        assert [(r.method, r.path) for r in server.requests] == [("POST", "/dns"), ("PUT", "/notify")]
        assert steps["pre-hook dns"].outcome == "done" and steps["post-hook notify"].outcome == "done"
    else:
        assert result.outcome is Outcome.FAILED_COMPENSATED, result.message
        assert "pre-hook dns" in result.message and "answered 500" in result.message
        assert "dns provider down" in result.message
        assert [(r.method, r.path) for r in server.requests] == [("POST", "/dns")]
        assert steps["pre-hook dns"].last_error is not None and "500" in steps["pre-hook dns"].last_error

    output = capfd.readouterr()
    log_text = logged(caplog)
    # Sanity: the capture saw this run's logging, from Python libraries and from the Temporal core.
    assert any(r.name.startswith("httpx") for r in caplog.records), "httpx's request log was not captured"
    assert any(r.name.startswith(CORE_LOGGER) for r in caplog.records), "no Temporal core log was captured"
    places = {
        "history": decoded_history(history.to_json()),
        "description": str(description.raw_description),
        "result": result.model_dump_json(),
        "progress": progress.model_dump_json(),
        "logs": log_text,
        "stdout": output.out,
        "stderr": output.err,
    }
    # The payloads were decoded: the reference is carried (the group's configuration, the hook's input) ...
    assert "HOOK_TOKEN" in places["history"] and '"hook_name":"dns"' in places["history"]
    leaked = [where for where, text in places.items() if secret in text]
    assert leaked == []  # ... its value nowhere
