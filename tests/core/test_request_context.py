"""Request ids, client IPs behind trusted proxies, and JSON log lines."""

from __future__ import annotations

import ipaddress
import json
import logging

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from apps.core import request_context
from apps.core.logging import JsonFormatter
from apps.core.request_context import RequestContextMiddleware, client_ip

PROXY = "10.0.0.5"


@pytest.fixture
def behind_proxy(settings) -> None:
    settings.TRUSTED_PROXIES = (ipaddress.ip_network("10.0.0.0/24"),)


def _ip(**meta: str) -> str | None:
    return client_ip(RequestFactory().get("/", **meta))


def test_client_ip_is_the_peer_when_no_proxy_is_trusted() -> None:
    # OWASP ASVS V7.1: a header from an untrusted peer never decides the logged source.
    assert _ip(REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="1.2.3.4") == "198.51.100.1"


@pytest.mark.usefixtures("behind_proxy")
def test_client_ip_is_the_first_untrusted_hop_behind_a_trusted_proxy() -> None:
    forwarded = "6.6.6.6, 198.51.100.9, 10.0.0.7"  # the client could have sent 6.6.6.6 itself
    assert _ip(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded) == "198.51.100.9"


@pytest.mark.usefixtures("behind_proxy")
def test_malformed_forwarded_hop_stops_the_walk() -> None:
    assert _ip(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.9, not-an-ip") == PROXY


def _respond(request: HttpRequest) -> HttpResponse:
    return RequestContextMiddleware(lambda r: HttpResponse())(request)


def test_every_response_carries_a_fresh_request_id() -> None:
    first = _respond(RequestFactory().get("/"))["X-Request-ID"]
    second = _respond(RequestFactory().get("/"))["X-Request-ID"]
    assert len(first) == 32
    assert first != second


def test_request_id_from_an_untrusted_peer_is_replaced() -> None:
    request = RequestFactory().get("/", HTTP_X_REQUEST_ID="spoofed-id")
    assert _respond(request)["X-Request-ID"] != "spoofed-id"


@pytest.mark.usefixtures("behind_proxy")
def test_request_id_from_a_trusted_proxy_is_kept_only_when_well_formed() -> None:
    kept = RequestFactory().get("/", REMOTE_ADDR=PROXY, HTTP_X_REQUEST_ID="lb-1234.abc")
    hostile = RequestFactory().get("/", REMOTE_ADDR=PROXY, HTTP_X_REQUEST_ID='a"\n{inject}')
    assert _respond(kept)["X-Request-ID"] == "lb-1234.abc"
    assert _respond(hostile)["X-Request-ID"] != 'a"\n{inject}'


def test_log_line_is_json_with_request_id_and_extras() -> None:
    seen: list[str] = []

    def view(request: HttpRequest) -> HttpResponse:
        record = logging.LogRecord(
            "tessera.test", logging.WARNING, __file__, 1, "hello %s", ("world",), None
        )
        record.user_id = "u-7"
        seen.append(JsonFormatter().format(record))
        return HttpResponse()

    response = RequestContextMiddleware(view)(RequestFactory().get("/"))

    line = json.loads(seen[0])
    assert line["msg"] == "hello world"
    assert line["level"] == "warning"
    assert line["user_id"] == "u-7"
    assert line["request_id"] == response["X-Request-ID"]
    assert request_context.current() is None  # the context ends with the request


def test_access_log_line_names_method_path_status_and_duration(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="tessera.access"):
        _respond(RequestFactory().post("/token"))

    (record,) = caplog.records
    line = json.loads(JsonFormatter().format(record))
    assert (line["method"], line["path"], line["status"]) == ("POST", "/token", 200)
    assert line["duration_ms"] >= 0
