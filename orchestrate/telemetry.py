"""Traces: where the spans go, set once per process from the environment.

- ``OTEL_TRACES_EXPORTER``: ``otlp`` (OTLP over HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``, the standard variables
  apply), ``console`` (stderr), or ``none`` (the default).
- ``ORCHESTRATE_TRACES_FILE``: also append every finished span to this file, one JSON object per line (what the
  tests read, and a simple way to look at one run).

The CLI command, the webhook request, the workflow and its activities (Temporal's ``TracingInterceptor`` on the
client and worker) and each Kubernetes call are spans of one trace; the webhook continues the ``traceparent`` that
Alertmanager sends.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

EXPORTER_ENV = "OTEL_TRACES_EXPORTER"
TRACES_FILE_ENV = "ORCHESTRATE_TRACES_FILE"

_provider: TracerProvider | None = None


class JsonLinesExporter(SpanExporter):
    """Appends each span to a file as one JSON object (ids in hex, times in nanoseconds)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write ``spans``."""
        lines = [json.dumps(_as_dict(span), default=str) for span in spans]
        with self._lock, self._path.open("a") as out:
            out.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS


def _as_dict(span: ReadableSpan) -> dict[str, object]:
    context = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}" if context else "",
        "span_id": f"{context.span_id:016x}" if context else "",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name", ""),
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


def configure_tracing(service: str) -> None:
    """Install the process's tracer provider as the environment asks (no-op when it asks for nothing)."""
    global _provider
    exporter = os.environ.get(EXPORTER_ENV, "none").strip().lower()
    traces_file = os.environ.get(TRACES_FILE_ENV, "").strip()
    if _provider is not None or (exporter in ("", "none") and not traces_file):
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if traces_file:
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(Path(traces_file))))
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif exporter not in ("", "none"):
        print(f"warning: {EXPORTER_ENV}={exporter!r} is not otlp, console or none: not exported", file=sys.stderr)
    trace.set_tracer_provider(provider)
    _provider = provider


def flush_tracing() -> None:
    """Send what is buffered (before the process exits)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)
