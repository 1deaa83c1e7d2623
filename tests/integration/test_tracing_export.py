"""Tracing configured by the standard OpenTelemetry variables sends spans over OTLP/HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from smarttrade import tracing


class Collector(HTTPServer):
    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_tracing_is_off_without_an_endpoint() -> None:
    provider = tracing.start("replica-1", {})
    assert provider is None
    assert tracing.server_interceptors(provider) == []
    with tracing.span("smarttrade.commit", trade="t"):
        assert tracing.current_trace_id() is None


def test_spans_reach_the_otlp_endpoint_with_the_replica(collector: Collector) -> None:
    endpoint = f"http://127.0.0.1:{collector.server_port}"
    provider = tracing.start(
        "replica-1", {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "st"}
    )
    assert provider is not None
    assert len(tracing.server_interceptors(provider)) == 1
    with tracing.span("smarttrade.commit", trade="t-1"):
        trace_id = tracing.current_trace_id()
    tracing.stop(provider)  # flushes the batch

    assert trace_id is not None
    [(path, body)] = collector.received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "st"
    assert resource["service.instance.id"] == "replica-1"
    [span] = [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert span.name == "smarttrade.commit"
    assert span.trace_id.hex() == trace_id
    assert {a.key: a.value.string_value for a in span.attributes} == {"trade": "t-1"}
