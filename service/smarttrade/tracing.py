"""OpenTelemetry tracing, off unless configured: one trace from an RPC (or a price reaching the
engine) through the decision, its commit and the venue call.

On when the standard OpenTelemetry variables name an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT
or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; spans go out over OTLP/HTTP in batches), or when a
tracer provider was `install`ed before the service starts (the tests' in-memory exporter).
The RPC spans are OpenTelemetry's own grpc.aio server interceptor's (it costs about a quarter
of unary throughput, measured here: hence off by default); the spans inside are ours:
`smarttrade.decide` (a new trade's first decision), `smarttrade.commit` (a trade's unit of
work), `smarttrade.venue` (an order placed or cancelled), `smarttrade.tick` (a price that
wakes trades, when no RPC brought it). Off, `span` hands back one shared empty context
manager: no tracer is called. JSON log lines carry the trace id (logs.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

_OFF: AbstractContextManager[Any] = nullcontext()
_installed: TracerProvider | None = None
_tracer: trace.Tracer | None = None

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def install(provider: TracerProvider | None) -> None:
    """Trace into `provider` from the next start on (None: back to the environment's say)."""
    global _installed
    _installed = provider


def start(replica: str, env: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """Turn tracing on if it is configured; the provider in use, or None (off)."""
    global _tracer
    provider = _installed
    if provider is None and any(env.get(name) for name in ENDPOINTS):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create(
            {
                "service.name": env.get("OTEL_SERVICE_NAME", "smarttrade"),
                "service.instance.id": replica,
            }
        )
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
            env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    _tracer = provider.get_tracer("smarttrade") if provider is not None else None
    return provider


def stop(provider: TracerProvider | None) -> None:
    """Tracing off; what is batched is sent first (with a collector that does not answer,
    the exporter's retries hold this up to its timeout, OTEL_EXPORTER_OTLP_TIMEOUT)."""
    global _tracer
    _tracer = None
    if provider is not None and provider is not _installed:
        provider.shutdown()  # flushes what is batched


def server_interceptors(provider: TracerProvider | None) -> list[Any]:
    """The interceptors that open a span per RPC (none when tracing is off)."""
    if provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=provider)]  # type: ignore[no-untyped-call]


def span(name: str, **attributes: str) -> AbstractContextManager[Any]:
    """A span around a block, a child of the current one (nothing when tracing is off)."""
    if _tracer is None:
        return _OFF
    return _tracer.start_as_current_span(name, attributes=attributes)


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), if a trace is being recorded."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
