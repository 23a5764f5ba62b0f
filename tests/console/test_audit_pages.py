"""The console's audit pages: search, a person's timeline, CSV and JSON Lines exports, and a
person's GDPR export and erasure; read from the configured store (the suite's ClickHouse
merged with the outbox), each export and GDPR action recorded against the operator."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import timedelta

import pytest
from django.http import StreamingHttpResponse
from django.test import Client as HttpClient
from django.utils import timezone

from apps.audit.store import RECORD_FIELDS, pseudonym
from apps.core.models import SecurityEvent
from tests.audit.factories import T0, audit_event, outbox_insert, ship_all
from tests.console.conftest import FIREFOX, PERSON_IP, SOME_ID, audited, confirm

pytestmark = pytest.mark.django_db

# After the made-up events (tests.audit.factories.T0), before the operator's own sign-in.
BEFORE_THE_TEST = "2026-01-01T00:00"
PAGES = [
    "/console/audit/",
    "/console/audit/?user=ada@example.com",
    "/console/audit/events.csv",
    "/console/audit/events.jsonl",
    f"/console/users/{SOME_ID}/export/",
    f"/console/users/{SOME_ID}/erase/",
]


def rows(html: bytes) -> list[str]:
    """The event types in the results table, top to bottom."""
    return re.findall(r'<span class="pill [a-z]+">([a-z_.]+)</span>', html.decode())


def streamed(response: StreamingHttpResponse) -> tuple[int, str]:
    chunks = [chunk.decode() for chunk in response.streaming_content]
    return len(chunks), "".join(chunks)


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client: HttpClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/login?next=/console/")


@pytest.mark.parametrize("path", PAGES)
def test_people_who_are_not_staff_are_refused(outsider: HttpClient, path: str) -> None:
    # OWASP ASVS 4.1.1: enforced on the server, whatever the page
    assert outsider.get(path, headers={"Accept": "text/html"}).status_code == 403


def test_search_shows_the_newest_events_first(staff, person_session) -> None:
    response = staff.get("/console/audit/")

    assert response.status_code == 200
    newest_first = SecurityEvent.objects.order_by("-occurred_at", "-id")
    assert rows(response.content) == [event.event_type for event in newest_first]
    assert "login.succeeded" in rows(response.content)
    assert PERSON_IP in response.content.decode()
    assert b'href="/console/audit/events.csv?"' in response.content


def test_a_person_s_timeline_is_a_search_by_them_and_is_recorded(
    staff, operator, person, person_session
) -> None:
    # Shipped or not, the person's events are found (ClickHouse merged with the outbox).
    ship_all()
    outbox_insert([audit_event(event_type="logout", user_id=str(person.pk), occurred_at=T0)])

    response = staff.get("/console/audit/", {"user": "ADA@example.com"})

    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>Events of ada@example.com</h1>" in page
    # The newest is the record of this very read.
    timeline = [
        "operator.viewed_user",
        "login.succeeded",
        "threat.assessed",  # the sign-in, scored before its session began (issue 16)
        "user.created",
        "logout",
    ]
    assert rows(response.content) == timeline
    [viewed] = audited("operator.viewed_user", operator)
    assert viewed.user_id == str(person.pk)
    by_id = staff.get("/console/audit/", {"user": str(person.pk)})
    assert rows(by_id.content) == ["operator.viewed_user", *timeline]


def test_the_user_page_shows_recent_events_and_links_the_timeline(staff, person) -> None:
    soon = timezone.now() + timedelta(seconds=5)
    later = [soon + timedelta(seconds=i) for i in range(15)]
    outbox_insert([audit_event(user_id=str(person.pk), occurred_at=when) for when in later])

    page = staff.get(f"/console/users/{person.pk}/").content.decode()

    assert page.count("token.issued") == 10  # the head of the timeline, from the store
    assert f'href="/console/audit/?user={person.pk}"' in page
    assert f'href="/console/users/{person.pk}/export/"' in page


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ({"event_type": "login.failed"}, ["login.failed", "login.failed"]),
        ({"ip_address": "203.0.113.9"}, ["login.failed"]),
        ({"success": "no"}, ["login.failed", "login.failed"]),
        ({"success": "yes", "severity": "low"}, ["token.issued"]),
        ({"severity": "critical"}, ["session.compromised"]),
        (
            {"since": "2025-03-14T09:26:54", "until": "2025-03-14T09:26:56"},
            ["token.issued", "login.failed"],
        ),
        ({"since": "2025-03-14T11:26:56+02:00"}, ["session.compromised", "login.failed"]),
    ],
)
def test_each_filter_narrows_the_search(staff, query: dict[str, str], wanted: list[str]) -> None:
    outbox_insert(
        [
            audit_event(1, event_type="login.failed", success=False, severity="high",
                        ip_address="198.51.100.7"),
            audit_event(2),
            audit_event(3, event_type="login.failed", success=False, severity="high",
                        ip_address="203.0.113.9"),
            audit_event(4, event_type="session.compromised", severity="critical"),
        ]
    )  # fmt: skip

    response = staff.get("/console/audit/", {"until": BEFORE_THE_TEST, **query})

    assert response.status_code == 200
    assert rows(response.content) == wanted


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"user": "nobody@example.com"}, "No account has this email address"),
        ({"user": "ada@"}, "Enter a valid email address."),
        ({"user": "not-an-id"}, "A user is an email address, a user id (a UUID) or a pseudonym"),
        ({"user": "anon:xyz"}, "A user is an email address"),
        ({"event_type": "login.maybe"}, "Select a valid choice."),
        ({"severity": "urgent"}, "Select a valid choice."),
        ({"success": "maybe"}, "Select a valid choice."),
        ({"since": "yesterday"}, "Enter a valid date/time."),
        ({"since": "2025-03-14T10:00", "until": "2025-03-14T09:00"}, "after its end"),
        ({"ip_address": "1.2.3"}, "Enter a valid IPv4 or IPv6 address."),
        ({"after": "garbage"}, "This page link is malformed"),
        ({"after": "9" * 18 + "." + "0" * 32}, "This page link is malformed"),
        ({"user": "x" * 300}, "at most 254 characters"),
    ],
)
def test_malformed_filters_are_a_400_that_says_why(
    staff, person, query: dict[str, str], message: str
) -> None:
    for path in ("/console/audit/", "/console/audit/events.csv"):
        response = staff.get(path, query)

        assert response.status_code == 400
        assert message in response.content.decode()


def test_older_pages_follow_the_keyset_cursor(staff) -> None:
    events = [audit_event(i, user_id=f"user-{i}") for i in range(120)]
    outbox_insert(events[:60])
    ship_all()  # half in ClickHouse, half waiting in the outbox
    outbox_insert(events[60:])
    seen: list[str] = []
    path = f"/console/audit/?until={BEFORE_THE_TEST}"

    for expected in (50, 50, 20):
        page = staff.get(path).content.decode()
        users = re.findall(r'title="Timeline of ([^"]+)"', page)
        assert len(users) == expected
        seen += users
        older = re.search(r'<a href="\?([^"]+)" rel="next">Older', page)
        path = f"/console/audit/?{older.group(1).replace('&amp;', '&')}" if older else ""

    assert path == ""  # the last page links no further
    assert "← Newest" in page
    assert seen == [f"user-{i}" for i in reversed(range(120))]


def test_clickhouse_down_is_a_503_that_says_so(servers, staff, person) -> None:
    servers.clickhouse.stop()
    try:
        search = staff.get("/console/audit/")
        export = staff.get("/console/audit/events.csv")
        user_page = staff.get(f"/console/users/{person.pk}/")
    finally:
        servers.clickhouse.start()

    assert search.status_code == export.status_code == 503
    assert "The audit store (ClickHouse) did not answer" in search.content.decode()
    assert user_page.status_code == 200  # the sessions still help
    assert "did not answer; the events are not shown" in user_page.content.decode()


def test_csv_export_streams_every_matching_event_and_is_recorded(
    staff, operator, person_session
) -> None:
    response = staff.get("/console/audit/events.csv", {"user": "ada@example.com"})

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="audit-events-\d{8}T\d{6}Z\.csv"', response["Content-Disposition"]
    )
    assert "no-store" in response["Cache-Control"]
    _, text = streamed(response)
    records = list(csv.DictReader(io.StringIO(text)))
    assert tuple(records[0]) == RECORD_FIELDS
    assert [r["event_type"] for r in records] == [
        "login.succeeded",
        "threat.assessed",
        "user.created",
    ]
    assert records[0]["ip_address"] == PERSON_IP
    assert records[0]["user_agent"] == FIREFOX
    assert json.loads(records[0]["metadata"])["provider"] == "local"
    [exported] = audited("audit.exported", operator)
    assert exported.user_id == str(person_session.user_id)
    assert exported.metadata == {"format": "csv", "filters": {"user_id": exported.user_id}}


def test_csv_cells_cannot_become_spreadsheet_formulas(staff) -> None:
    # OWASP CSV Injection: a User-Agent and a typed email reach the export as they were sent.
    attacker = HttpClient(REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT='=HYPERLINK("http://x","y")')
    attacker.get("/login")
    attacker.post("/login", {"email": "+1@example.com", "password": "wrong"})
    outbox_insert(
        [
            audit_event(error_message="-2+3", resource_id="@SUM(A1)", user_id="\tx",
                        request_id="\r=1", action="plain"),
        ]
    )  # fmt: skip

    _, text = streamed(staff.get("/console/audit/events.csv"))

    records = list(csv.DictReader(io.StringIO(text)))
    failed = next(r for r in records if r["event_type"] == "login.failed")
    assert failed["user_agent"] == '\'=HYPERLINK("http://x","y")'
    assert json.loads(failed["metadata"])["email"] == "+1@example.com"  # JSON text starts with {
    made = next(r for r in records if r["action"] == "plain")
    assert (made["error_message"], made["resource_id"]) == ("'-2+3", "'@SUM(A1)")
    assert (made["user_id"], made["request_id"]) == ("'\tx", "'\r=1")
    cells = [cell for record in records for cell in record.values()]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_jsonl_export_is_one_record_per_line(staff, operator, person_session) -> None:
    query = {"user": "ada@example.com", "event_type": "login.succeeded"}
    response = staff.get("/console/audit/events.jsonl", query)

    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert response["Content-Disposition"].endswith('.jsonl"')
    _, text = streamed(response)
    [line] = text.splitlines()
    record = json.loads(line)
    assert tuple(record) == RECORD_FIELDS
    assert record["user_id"] == str(person_session.user_id)
    assert record["occurred_at"].endswith("Z")
    assert record["compliance_tags"] == ["SOC2"]
    [exported] = audited("audit.exported", operator)
    assert exported.metadata["filters"] == {
        "user_id": str(person_session.user_id),
        "event_type": "login.succeeded",
    }


def test_an_export_of_ten_thousand_events_streams_in_chunks(staff) -> None:
    events = [audit_event(i * 0.001, user_id=f"user-{i % 97}") for i in range(10_000)]
    outbox_insert(events[:6000])
    ship_all()  # 6,000 in ClickHouse, 4,000 waiting in the outbox
    outbox_insert(events[6000:])

    window = {"since": "2025-03-14T09:26:50", "until": "2025-03-14T09:27:10"}
    for path, lines in (("events.csv", 10_001), ("events.jsonl", 10_000)):
        response = staff.get(f"/console/audit/{path}", window)

        assert isinstance(response, StreamingHttpResponse)  # never built in memory
        chunks, text = streamed(response)
        assert chunks >= 10  # a chunk per 1,000 events
        assert len(text.splitlines()) == lines
    last = json.loads(text.splitlines()[-1])
    assert last["id"] == str(events[0].id)  # newest first, down to the oldest


def test_gdpr_export_downloads_the_person_s_data(staff, operator, person, person_session) -> None:
    response = staff.get(f"/console/users/{person.pk}/export/")

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/json"
    assert f'filename="tessera-person-{person.pk}-' in response["Content-Disposition"]
    _, text = streamed(response)
    document = json.loads(text)
    assert document["account"]["email"] == "ada@example.com"
    assert document["sessions"][0]["id"] == str(person_session.pk)
    assert {e["event_type"] for e in document["events"]} >= {"user.created", "login.succeeded"}
    [exported] = audited("gdpr.exported", operator)
    assert exported.user_id == str(person.pk)


def test_erasure_is_confirmed_then_shows_the_pseudonymous_timeline(
    staff, operator, person, person_session
) -> None:
    page = staff.get(f"/console/users/{person.pk}/erase/")
    assert "Erase ada@example.com?" in page.content.decode()
    assert person_session.ended_at is None  # the GET changed nothing

    response = confirm(staff, f"/console/users/{person.pk}/erase/")

    alias = pseudonym(str(person.pk))
    assert response.redirect_chain[-1][0] == f"/console/audit/?user={alias}"
    page = response.content.decode()
    assert f"ada@example.com erased. Their events now carry the pseudonym {alias}." in page
    assert rows(response.content)[1:] == [
        "gdpr.erased",
        "session.revoked",
        "login.succeeded",
        "threat.assessed",
        "user.created",
    ]  # the newest, operator.viewed_user, is this very page's
    assert str(person.pk) not in "".join(str(v) for v in SecurityEvent.objects.values_list())
    person.refresh_from_db()
    assert person.email.endswith("@erased.invalid")
    [erased] = audited("gdpr.erased", operator)
    assert erased.user_id == alias


def test_viewing_an_erased_person_records_their_pseudonym_not_their_id(
    staff, operator, person
) -> None:
    confirm(staff, f"/console/users/{person.pk}/erase/")
    SecurityEvent.objects.filter(event_type="operator.viewed_user").delete()

    paths = (
        f"/console/users/{person.pk}/",
        f"/api/v1/users/{person.pk}/sessions",
        f"/console/audit/?user={person.pk}",
    )
    for path in paths:
        assert staff.get(path).status_code == 200

    alias = pseudonym(str(person.pk))
    viewed = audited("operator.viewed_user", operator)
    assert [(event.user_id, event.resource_id) for event in viewed] == [(alias, alias)] * 3
    assert str(person.pk) not in "".join(str(v) for v in SecurityEvent.objects.values_list())


def test_operators_cannot_erase_themselves(staff, operator) -> None:
    response = confirm(staff, f"/console/users/{operator.pk}/erase/")

    assert "Operators cannot erase their own account" in response.content.decode()
    operator.refresh_from_db()
    assert operator.is_active


def test_unknown_people_cannot_be_exported_or_erased(staff) -> None:
    for path in (f"/console/users/{uuid.uuid4()}/export/", f"/console/users/{uuid.uuid4()}/erase/"):
        assert staff.get(path).status_code == 404


def test_an_old_time_range_finds_nothing_yet_is_fine(staff) -> None:
    until = (T0 - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%S")

    response = staff.get("/console/audit/", {"until": until})

    assert response.status_code == 200
    assert "No events." in response.content.decode()
