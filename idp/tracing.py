"""Optional OpenTelemetry tracing of the web processes (IDP_TRACING, off by default).

One span per request from opentelemetry-instrumentation-django (method, route, status; its
middleware goes first in settings.MIDDLEWARE), with Tessera's request id as the attribute
`tessera.request_id`: the same id as the X-Request-ID header and every JSON log line of the
request, so a trace leads to its logs. Spans are exported over OTLP (HTTP/protobuf) as the
standard OTEL_* environment says (OTEL_EXPORTER_OTLP_ENDPOINT, ..._HEADERS, OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER ...), in batches off the request path. The
probes and the scrapes (/healthz, /readyz, /metrics) are not traced.

Called by idp/wsgi.py before Django loads its middleware; the worker and beat are not traced.
"""

from __future__ import annotations

import os
from typing import Any

from django.http import HttpRequest, HttpResponse
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span

from apps.core.request_context import REQUEST_ID_HEADER

REQUEST_ID_ATTRIBUTE = "tessera.request_id"
NOT_TRACED = "healthz,readyz,metrics"  # regular expressions searched in the URL, comma-separated


def _request_id(span: Span, request: HttpRequest, response: HttpResponse) -> None:
    # The response hook: the request context middleware runs after the tracing one, so the id
    # is known once the response comes back through it.
    if span.is_recording() and response.has_header(REQUEST_ID_HEADER):
        span.set_attribute(REQUEST_ID_ATTRIBUTE, response[REQUEST_ID_HEADER])


def instrument(span_processor: SpanProcessor | None = None) -> TracerProvider:
    """Trace this process's requests; `span_processor` replaces the OTLP exporter (tests)."""
    if span_processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_processor = BatchSpanProcessor(OTLPSpanExporter())
    service = os.environ.get("OTEL_SERVICE_NAME") or "tessera"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(span_processor)
    options: dict[str, Any] = {
        "tracer_provider": provider,
        "response_hook": _request_id,
        "excluded_urls": NOT_TRACED,
    }
    DjangoInstrumentor().instrument(**options)
    return provider


def uninstrument() -> None:
    DjangoInstrumentor().uninstrument()
