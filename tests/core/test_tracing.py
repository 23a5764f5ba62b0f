"""Optional OpenTelemetry tracing (issue 19; idp/tracing.py): off by default; when on, one
span per request with the request id as an attribute, probes and scrapes left out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.conf import settings
from django.test import Client
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from idp import tracing

OTEL_MIDDLEWARE = (
    "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
)


def test_tracing_is_off_by_default() -> None:
    assert settings.TRACING is False
    assert OTEL_MIDDLEWARE not in settings.MIDDLEWARE


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.instrument(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.uninstrument()
    assert OTEL_MIDDLEWARE not in settings.MIDDLEWARE


@pytest.mark.django_db
def test_each_request_is_a_span_with_its_request_id(exporter: InMemorySpanExporter) -> None:
    assert settings.MIDDLEWARE[0] == OTEL_MIDDLEWARE  # first: the whole request is timed
    client = Client()  # a new handler loads the middleware as it now is
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert client.get("/healthz").status_code == 200  # probes are not traced

    spans = exporter.get_finished_spans()
    assert [span.attributes["tessera.request_id"] for span in spans] == [
        response["X-Request-ID"],
        missing["X-Request-ID"],
    ]
    discovery = spans[0]
    assert discovery.attributes["http.route"] == ".well-known/openid-configuration"
    assert discovery.attributes["http.status_code"] == 200
    assert discovery.resource.attributes["service.name"] == "tessera"


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver's one route: POST /v1/traces with a protobuf body."""

    received: list[tuple[str, bytes]] = []  # noqa: RUF012 - one test's record

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.django_db
def test_spans_go_to_the_otlp_endpoint_the_standard_environment_names(monkeypatch) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "tessera-test")
    provider = tracing.instrument()
    try:
        response = Client().get("/oauth/jwks")
        assert response.status_code == 200
        assert provider.force_flush(10_000)
    finally:
        tracing.uninstrument()
        provider.shutdown()
        server.shutdown()
    [(path, body)] = _Collector.received
    assert path == "/v1/traces"
    assert response["X-Request-ID"].encode() in body  # the attribute, in the protobuf
    assert b"tessera-test" in body
