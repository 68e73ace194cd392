"""Connect to Temporal the same way everywhere: pydantic data converter, TLS or API key from the configuration.

The SDK's core writes its own warnings (an RPC it retries, say) straight to stdout, where they would corrupt the
CLI's ``--json`` output: every client here forwards them to Python logging instead, which writes to stderr.
"""

from __future__ import annotations

import functools
import logging
import os

from temporalio.client import Client, TLSConfig
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from orchestrate.config import TemporalSettings


async def connect(settings: TemporalSettings) -> Client:
    """A client for ``settings`` (address, namespace, mTLS or Temporal Cloud API key)."""
    tls: TLSConfig | bool = False
    if settings.tls is not None:
        tls = TLSConfig(
            client_cert=settings.tls.client_cert.read_bytes(),
            client_private_key=settings.tls.client_key.read_bytes(),
            server_root_ca_cert=settings.tls.server_ca.read_bytes() if settings.tls.server_ca else None,
            domain=settings.tls.server_name,
        )
    api_key = settings.api_key or os.environ.get("TEMPORAL_API_KEY")
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        tls=tls or bool(api_key),
        api_key=api_key,
        data_converter=pydantic_data_converter,
        runtime=_runtime(),
        # Spans for starting workflows, and (the worker takes it from its client) for workflows and activities;
        # without a tracer provider configured they are no-ops.
        interceptors=[TracingInterceptor()],
    )


_metrics_address: str | None = None


def serve_metrics(address: str) -> None:
    """Serve the process's Temporal metrics in Prometheus format on ``address`` (``HOST:PORT``).

    The SDK's own (``temporal_*``: workflow and activity task latencies, failures, slots) and the operations'
    (:mod:`workflows.metrics`). Call before the first :func:`connect`: the runtime is made once per process.
    """
    global _metrics_address
    if _runtime.cache_info().currsize:
        raise RuntimeError("serve_metrics must come before the first connection")
    _metrics_address = address


@functools.cache
def _runtime() -> Runtime:
    """One runtime per process (each owns threads): the SDK core's logs go to the ``temporalio.core`` logger."""
    forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    filter_ = TelemetryFilter(core_level="WARN", other_level="ERROR")
    metrics = PrometheusConfig(bind_address=_metrics_address, durations_as_seconds=True) if _metrics_address else None
    return Runtime(
        telemetry=TelemetryConfig(logging=LoggingConfig(filter=filter_, forwarding=forwarding), metrics=metrics)
    )
