"""The CSP violation report endpoint (apps/core/csp_reports.py): both report formats become
csp.violation events holding no query string; anything else is a clear 4xx, never a 500; the
endpoint's rate limit is in tests/ratelimit/test_csp_report_limit.py."""

from __future__ import annotations

import json

import pytest

from apps.core.csp_reports import REPORT_MAX_BYTES, REPORT_MAX_VIOLATIONS
from tests.events import recorded

pytestmark = pytest.mark.django_db

# CSP Level 2 §4.4 (report-uri)
LEVEL2 = {
    "csp-report": {
        "document-uri": "https://idp.example/login?next=/oauth/authorize%3Fcode%3Dsecret#frag",
        "referrer": "",
        "violated-directive": "script-src-elem",
        "effective-directive": "script-src-elem",
        "original-policy": "default-src 'self'",
        "disposition": "enforce",
        "blocked-uri": "https://evil.example/x.js?token=abc",
        "status-code": 200,
    }
}
# Reporting API §3 / CSP Level 3 §5.3 (report-to)
REPORTS = [
    {
        "type": "csp-violation",
        "age": 10,
        "url": "https://idp.example/account?x=1",
        "user_agent": "Chromium",
        "body": {
            "documentURL": "https://idp.example/account?x=1",
            "effectiveDirective": "script-src-elem",
            "blockedURL": "inline",
            "disposition": "enforce",
            "sample": "alert(document.cookie)",
            "statusCode": 200,
        },
    },
    {"type": "deprecation", "age": 1, "url": "https://idp.example/", "body": {"id": "x"}},
]


def _post(client, body: bytes | str, content_type: str):
    return client.post("/csp-report", body, content_type=content_type)


def test_report_uri_report_becomes_an_event_without_query_or_fragment(client) -> None:
    with recorded() as events:
        response = _post(client, json.dumps(LEVEL2), "application/csp-report")

    assert response.status_code == 204
    [event] = events
    assert event.event_type == "csp.violation"
    assert event.metadata == {
        "directive": "script-src-elem",
        "blocked": "https://evil.example",
        "document_path": "/login",
        "disposition": "enforce",
    }
    assert "secret" not in json.dumps(event.metadata)
    assert "token" not in json.dumps(event.metadata)


def test_report_to_batch_records_each_csp_violation_and_skips_other_reports(client) -> None:
    with recorded() as events:
        response = _post(client, json.dumps(REPORTS), "application/reports+json")

    assert response.status_code == 204
    [event] = events
    assert event.metadata == {
        "directive": "script-src-elem",
        "blocked": "inline",
        "document_path": "/account",
        "disposition": "enforce",
    }
    assert "alert" not in json.dumps(event.metadata)  # never the script sample


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", "application/csp-report"),
        (b"\xff\xfe\x00garbage", "application/reports+json"),
        (b"[]", "application/reports+json"),
        (b"{}", "application/csp-report"),
        (b'{"csp-report": []}', "application/csp-report"),
        (b'{"csp-report": {"document-uri": "https://idp.example/"}}', "application/csp-report"),
        (b'{"csp-report": {"violated-directive": 7}}', "application/csp-report"),
        (b'{"csp-report": {"violated-directive": "<script>"}}', "application/csp-report"),
        (
            b'{"csp-report": {"violated-directive": "img-src", "disposition": "x"}}',
            "application/csp-report",
        ),
        (b'[{"type": "csp-violation", "body": "text"}]', "application/reports+json"),
        (b'[{"type": "deprecation", "body": {}}]', "application/reports+json"),
        (b"[1, 2]", "application/reports+json"),
        (json.dumps(LEVEL2).encode(), "application/json"),
        (json.dumps(LEVEL2).encode(), "text/plain"),
        (
            json.dumps([REPORTS[0]] * (REPORT_MAX_VIOLATIONS + 1)).encode(),
            "application/reports+json",
        ),
    ],
)
def test_anything_but_a_report_is_refused_with_400_and_records_nothing(
    client, body, content_type
) -> None:
    with recorded() as events:
        response = _post(client, body, content_type)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert events == []


def test_an_oversized_report_is_refused_unread(client) -> None:
    padding = "x" * REPORT_MAX_BYTES
    body = json.dumps({"csp-report": {**LEVEL2["csp-report"], "script-sample": padding}})

    with recorded() as events:
        response = _post(client, body, "application/csp-report")

    assert response.status_code == 413
    assert "at most" in response.json()["error_description"]
    assert events == []


def test_only_post(client) -> None:
    assert client.get("/csp-report").status_code == 405
