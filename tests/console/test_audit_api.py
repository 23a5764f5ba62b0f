"""The admin API's audit and GDPR endpoints: same callers as the rest of /api/v1 (staff session
or admin-scoped bearer token), the console's filters, streamed downloads, clear 4xx/503."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
import yaml
from django.http import StreamingHttpResponse
from django.test import Client as HttpClient

from apps.audit.store import RECORD_FIELDS, pseudonym
from tests.audit.factories import audit_event, outbox_insert, ship_all
from tests.console.conftest import SOME_ID, access_token, audited, bearer, csrf_token

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/api/v1/audit/events"),
    ("get", "/api/v1/audit/events.csv"),
    ("get", "/api/v1/audit/events.jsonl"),
    ("get", f"/api/v1/users/{SOME_ID}/export"),
    ("post", f"/api/v1/users/{SOME_ID}/erase"),
]
BEFORE_THE_TEST = "2026-01-01T00:00"  # after tests.audit.factories.T0


@pytest.fixture
def admin(operator) -> HttpClient:
    """A script with the operator's admin-scoped access token."""
    return HttpClient(headers=bearer(access_token(operator, "openid admin")))


def text_of(response: StreamingHttpResponse) -> str:
    return b"".join(response.streaming_content).decode()


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_anonymous_callers_are_challenged(client: HttpClient, method: str, path: str) -> None:
    # RFC 6750 §3
    response = getattr(client, method)(path)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer realm=")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_people_who_are_not_staff_are_refused(outsider, method: str, path: str) -> None:
    token = csrf_token(outsider.get("/login").content)

    response = getattr(outsider, method)(path, headers={"X-CSRFToken": token})

    assert response.status_code == 403


def test_events_page_by_page_with_the_cursor(admin) -> None:
    events = [audit_event(i, user_id="user-x") for i in range(5)]
    outbox_insert(events[:2])
    ship_all()
    outbox_insert(events[2:])

    body = admin.get("/api/v1/audit/events", {"until": BEFORE_THE_TEST, "limit": 2}).json()
    ids = [e["id"] for e in body["results"]]
    while body["next"]:
        query = {"until": BEFORE_THE_TEST, "limit": 2, "after": body["next"]}
        body = admin.get("/api/v1/audit/events", query).json()
        ids += [e["id"] for e in body["results"]]

    assert ids == [str(e.id) for e in reversed(events)]
    assert tuple(body["results"][0]) == RECORD_FIELDS  # the exports' record, field for field


def test_filters_and_the_person_read_is_recorded(admin, operator, person, person_session) -> None:
    response = admin.get("/api/v1/audit/events", {"user": "ada@example.com", "success": "yes"})

    assert response.status_code == 200
    results = response.json()["results"]
    assert [e["event_type"] for e in results] == [
        "operator.viewed_user",
        "login.succeeded",
        "threat.assessed",  # the sign-in, scored before its session began (issue 16)
        "user.created",
    ]
    assert results[1]["ip_address"] == person_session.ip_address
    [viewed] = audited("operator.viewed_user", operator)
    assert viewed.user_id == str(person.pk)


def test_a_user_s_events_come_from_the_store(admin, person) -> None:
    outbox_insert([audit_event(user_id=str(person.pk))])
    ship_all()  # shipped: no longer in the outbox

    events = admin.get(f"/api/v1/users/{person.pk}/events").json()["results"]

    types = [e["event_type"] for e in events]
    assert types == ["operator.viewed_user", "user.created", "token.issued"]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"limit": "0"}, "limit", "greater than or equal to 1"),
        ({"limit": "1001"}, "limit", "less than or equal to 1000"),
        ({"limit": "many"}, "limit", "Enter a whole number."),
        ({"event_type": "x"}, "event_type", "Select a valid choice."),
        ({"user": "nobody@example.com"}, "user", "No account has this email address"),
        ({"since": "2025-13-01"}, "since", "Enter a valid date/time."),
        ({"ip_address": "10.0.0"}, "ip_address", "Enter a valid IPv4 or IPv6 address."),
        ({"after": "1.2"}, "after", "This page link is malformed"),
        ({"since": "2025-02-01", "until": "2025-01-01"}, "non_field_errors", "after its end"),
    ],
)
def test_malformed_queries_say_which_field(admin, query, field: str, message: str) -> None:
    for path, accept in (("audit/events", "application/json"), ("audit/events.csv", "text/csv")):
        response = admin.get(f"/api/v1/{path}", query, headers={"Accept": accept})

        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        [error] = response.json()[field]
        assert message in error


def test_exports_stream_whatever_the_client_accepts(admin, operator, person_session) -> None:
    csv_response = admin.get(
        "/api/v1/audit/events.csv", {"user": "ada@example.com"}, headers={"Accept": "text/csv"}
    )
    jsonl_response = admin.get("/api/v1/audit/events.jsonl", {"user": "ada@example.com"})

    assert isinstance(csv_response, StreamingHttpResponse)
    assert csv_response["Content-Type"] == "text/csv; charset=utf-8"
    assert csv_response["Content-Disposition"].startswith('attachment; filename="audit-events-')
    records = list(csv.DictReader(io.StringIO(text_of(csv_response))))
    assert [r["event_type"] for r in records] == [
        "login.succeeded",
        "threat.assessed",
        "user.created",
    ]
    lines = [json.loads(line) for line in text_of(jsonl_response).splitlines()]
    assert lines[0]["event_type"] == "audit.exported"  # the CSV export, recorded
    assert [line["id"] for line in lines[1:]] == [r["id"] for r in records]
    assert [e.metadata["format"] for e in audited("audit.exported", operator)] == ["csv", "jsonl"]


def test_store_down_is_a_503(servers, admin, person) -> None:
    paths = [path for _, path in ENDPOINTS[:3]]
    paths += [f"/api/v1/users/{person.pk}/events", f"/api/v1/users/{person.pk}/export"]
    servers.clickhouse.stop()
    try:
        responses = [admin.get(path) for path in paths]
    finally:
        servers.clickhouse.start()

    assert [r.status_code for r in responses] == [503] * 5
    assert responses[0].json()["detail"].startswith("The audit store (ClickHouse) did not answer")


def test_gdpr_export_and_erasure(admin, operator, person, person_session) -> None:
    export = admin.get(f"/api/v1/users/{person.pk}/export")

    assert export["Content-Type"] == "application/json"
    document = json.loads(text_of(export))
    assert document["account"]["id"] == str(person.pk)
    assert [s["id"] for s in document["sessions"]] == [str(person_session.pk)]

    erased = admin.post(f"/api/v1/users/{person.pk}/erase")

    assert erased.status_code == 200
    assert erased.json() == {"pseudonym": pseudonym(str(person.pk))}
    person.refresh_from_db()
    assert not person.is_active
    assert [e.event_type for e in audited("gdpr.exported", operator)] == ["gdpr.exported"]
    assert len(audited("gdpr.erased", operator)) == 1


def test_erasure_refusals(admin, staff, operator, person) -> None:
    assert admin.post(f"/api/v1/users/{uuid.uuid4()}/erase").status_code == 404
    myself = admin.post(f"/api/v1/users/{operator.pk}/erase")
    assert myself.status_code == 403
    assert myself.json()["detail"].startswith("Operators cannot erase their own account")
    # A staff browser must send its CSRF token (Django's session authentication).
    assert staff.post(f"/api/v1/users/{person.pk}/erase").status_code == 403
    person.refresh_from_db()
    assert person.is_active


def test_schema_documents_the_audit_endpoints(staff: HttpClient) -> None:
    schema = yaml.safe_load(staff.get("/api/schema/").content)

    events = schema["paths"]["/api/v1/audit/events"]["get"]
    assert {p["name"] for p in events["parameters"]} == {
        "user", "event_type", "since", "until", "ip_address", "success", "severity", "after",
        "limit",
    }  # fmt: skip
    csv_answer = schema["paths"]["/api/v1/audit/events.csv"]["get"]["responses"]["200"]
    assert list(csv_answer["content"]) == ["text/csv"]
    assert "post" in schema["paths"]["/api/v1/users/{user_id}/erase"]
    assert "Erased" in schema["components"]["schemas"]
