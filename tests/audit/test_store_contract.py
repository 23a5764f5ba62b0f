"""One contract for every audit store (apps/audit/store): the outbox through the ORM, ClickHouse,
and ClickHouse merged with the events not shipped yet. The same events, placed where each
store reads them, must give the same answers: filters, order, keyset pages, time-range
edges, refusals, and each event once however often it was shipped. (The shared contract test
of ory/hydra's storage interfaces; STYLE.md "Layers".)"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from clickhouse_driver import Client
from django.db import connection

from apps.audit.clickhouse_schema import EVENTS_TABLE, PARTITIONED_TABLES
from apps.audit.store import (
    PAGE_SIZE_MAX,
    AuditEvent,
    AuditStore,
    ClickHouseStore,
    DatabaseStore,
    EventCursor,
    EventFilters,
    InvalidFilter,
    MergedStore,
    Subject,
)
from apps.audit.store.base import pseudonymized
from tests.audit.conftest import START_MERGES, STOP_MERGES
from tests.audit.factories import T0, audit_event, outbox_insert, ship_all

pytestmark = pytest.mark.django_db

ADA, BOB = str(uuid.uuid4()), str(uuid.uuid4())
ADA_EMAIL = "ada@example.com"


@dataclass
class Backend:
    name: str
    store: AuditStore
    place: Callable[[list[AuditEvent]], None]


def _in_outbox(events: list[AuditEvent]) -> None:
    outbox_insert(events)


def _in_clickhouse(events: list[AuditEvent]) -> None:
    outbox_insert(events)
    ship_all()


def _in_both(events: list[AuditEvent]) -> None:
    """The older half shipped, the newer half waiting in the outbox, and the newest shipped
    event back in the outbox too, as it is while its shipper's transaction commits."""
    by_age = sorted(events, key=lambda e: e.cursor.key)
    shipped, pending = by_age[: len(events) // 2], by_age[len(events) // 2 :]
    outbox_insert(shipped)
    ship_all()
    outbox_insert(pending + shipped[-1:])


@pytest.fixture(params=["database", "clickhouse", "merged"])
def backend(request: pytest.FixtureRequest, audit_clickhouse: Client) -> Backend:
    if request.param == "database":
        return Backend("database", DatabaseStore(), _in_outbox)
    if request.param == "clickhouse":
        return Backend("clickhouse", ClickHouseStore(), _in_clickhouse)
    return Backend("merged", MergedStore(ClickHouseStore(), DatabaseStore()), _in_both)


def newest_first(events: list[AuditEvent]) -> list[AuditEvent]:
    return sorted(events, key=lambda e: e.cursor.key, reverse=True)


def all_pages(store: AuditStore, filters: EventFilters, limit: int) -> Iterator[list[AuditEvent]]:
    after = None
    while True:
        page = store.search(filters, after=after, limit=limit)
        yield page.events
        if page.next_cursor is None:
            return
        after = page.next_cursor


SAMPLE = [
    audit_event(0, event_type="login.succeeded", user_id=ADA, ip_address="198.51.100.7"),
    audit_event(
        1,
        event_type="login.failed",
        success=False,
        severity="high",
        ip_address="203.0.113.9",
        error_code="wrong_credentials",
        metadata={"provider": "local", "email": "ADA@Example.com"},
    ),
    audit_event(2, user_id=ADA, duration_ms=12.5, metadata={"grant_type": "authorization_code"}),
    audit_event(
        3,
        event_type="session.revoked",
        user_id=BOB,
        actor_id=ADA,
        ip_address="2606:4700::1111",
        severity="medium",
        metadata={"reason": "operator"},
    ),
    audit_event(4, event_type="login.failed", user_id=BOB, success=False, severity="high"),
    audit_event(4, event_type="login.succeeded", user_id=BOB, ip_address="198.51.100.7"),  # same µs
    audit_event(5.000001, event_type="session.compromised", user_id=BOB, severity="critical"),
    audit_event(
        6,
        event_type="operator.viewed_user",
        user_id=BOB,
        actor_id=ADA,
        resource_type="user",
        resource_id=BOB,
        metadata={"path": f"/console/users/{BOB}/"},
        compliance_tags=("SOC2", "GDPR"),
    ),
    audit_event(
        7,
        event_type="operator.viewed_user",
        user_id=ADA,
        actor_id=BOB,
        resource_type="user",
        resource_id=ADA,
        ip_address="2001:67c:2e8::42",
        metadata={"path": f"/console/users/{ADA}/"},
    ),
    audit_event(86400 * 40, user_id=ADA, metadata={"note": "next month's partition"}),
    # Threat assessments (apps.core.risk.RiskDecision in the metadata): filtered by score and
    # action; a score on its boundary, and an event of another type with an "action" key.
    audit_event(
        8,
        event_type="threat.assessed",
        user_id=ADA,
        metadata={"score": 85, "action": "block", "reasons": [{"signal": "new_country"}]},
    ),
    audit_event(
        9, event_type="threat.assessed", user_id=BOB, metadata={"score": 40, "action": "alert"}
    ),
    audit_event(
        10, event_type="threat.assessed", user_id=BOB, metadata={"score": 0, "action": "allow"}
    ),
    audit_event(11, event_type="user.changed", user_id=BOB, metadata={"action": "alert"}),
]

FILTERS: dict[str, tuple[EventFilters, Callable[[AuditEvent], bool]]] = {
    "none": (EventFilters(), lambda e: True),
    "user": (EventFilters(user_id=BOB), lambda e: e.user_id == BOB),
    "type": (EventFilters(event_type="login.failed"), lambda e: e.event_type == "login.failed"),
    "user and type": (
        EventFilters(user_id=BOB, event_type="login.succeeded"),
        lambda e: e.user_id == BOB and e.event_type == "login.succeeded",
    ),
    "ipv4": (EventFilters(ip_address="198.51.100.7"), lambda e: e.ip_address == "198.51.100.7"),
    "ipv6 as typed": (
        EventFilters(ip_address="2606:4700:0:0::1111"),
        lambda e: e.ip_address == "2606:4700::1111",
    ),
    "failed": (EventFilters(success=False), lambda e: not e.success),
    "succeeded": (EventFilters(success=True), lambda e: e.success),
    "severity": (EventFilters(severity="high"), lambda e: e.severity == "high"),
    "time range": (
        EventFilters(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=5)),
        lambda e: timedelta(seconds=2) <= e.occurred_at - T0 < timedelta(seconds=5),
    ),
    "time range in another zone": (
        EventFilters(since=(T0 + timedelta(seconds=4)).astimezone(timezone(timedelta(hours=5)))),
        lambda e: e.occurred_at >= T0 + timedelta(seconds=4),
    ),
    "about a person": (
        EventFilters(about=Subject(ADA, ADA_EMAIL)),
        lambda e: (
            ADA in (e.user_id, e.actor_id, e.resource_id)
            or ADA in str(e.metadata)
            or ADA_EMAIL in str(e.metadata).lower()
        ),
    ),
    "nothing": (EventFilters(user_id="nobody"), lambda e: False),
    "minimum score": (EventFilters(min_score=40), lambda e: e.metadata.get("score", -1) >= 40),
    "minimum score 0": (EventFilters(min_score=0), lambda e: "score" in e.metadata),
    "risk action": (
        EventFilters(event_type="threat.assessed", risk_action="alert"),
        lambda e: e.event_type == "threat.assessed" and e.metadata.get("action") == "alert",
    ),
    "user, score and action": (
        EventFilters(user_id=ADA, min_score=85, risk_action="block"),
        lambda e: e.user_id == ADA and e.metadata.get("action") == "block",
    ),
}


@pytest.mark.parametrize("case", FILTERS)
def test_each_filter_gives_the_same_events_newest_first(backend: Backend, case: str) -> None:
    filters, wanted = FILTERS[case]
    backend.place(SAMPLE)
    expected = newest_first([e for e in SAMPLE if wanted(e)])

    page = backend.store.search(filters, limit=PAGE_SIZE_MAX)

    assert page.events == expected  # every field, to the microsecond
    assert page.next_cursor is None
    assert list(backend.store.iterate(filters)) == expected


def test_keyset_pages_visit_every_event_once_in_order(backend: Backend) -> None:
    # 23 events, five of them at the very same microsecond: the id breaks the tie.
    events = [audit_event(i // 5 if i < 5 else i, user_id=BOB) for i in range(23)]
    backend.place(events)

    pages = list(all_pages(backend.store, EventFilters(user_id=BOB), limit=5))

    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert [e for page in pages for e in page] == newest_first(events)
    assert list(backend.store.iterate(EventFilters(user_id=BOB))) == newest_first(events)


def test_a_page_of_exactly_the_remaining_events_is_the_last(backend: Backend) -> None:
    events = [audit_event(i) for i in range(4)]
    backend.place(events)

    first = backend.store.search(EventFilters(), limit=2)
    last = backend.store.search(EventFilters(), after=first.next_cursor, limit=2)

    assert first.next_cursor is not None
    assert last.events == newest_first(events)[2:]
    assert last.next_cursor is None


def test_cursor_survives_its_text_form(backend: Backend) -> None:
    events = [audit_event(i * 0.000001) for i in range(3)]  # a microsecond apart
    backend.place(events)

    first = backend.store.search(EventFilters(), limit=1)
    assert first.next_cursor is not None
    after = EventCursor.parse(str(first.next_cursor))

    assert (
        backend.store.search(EventFilters(), after=after, limit=5).events
        == (newest_first(events)[1:])
    )


def test_time_range_includes_its_start_and_excludes_its_end(backend: Backend) -> None:
    # The start falls on the last microsecond of a second: ClickHouse keeps whole seconds
    # and the microsecond apart, so both sides of the boundary are asked for.
    start = datetime(2025, 3, 14, 9, 0, 0, 999999, tzinfo=UTC)
    end = datetime(2025, 3, 14, 9, 0, 2, 0, tzinfo=UTC)
    one = timedelta(microseconds=1)
    moments = [start - one, start, start + one, end - one, end, end + one]
    events = [audit_event(0, occurred_at=moment) for moment in moments]
    backend.place(events)

    found = backend.store.search(EventFilters(since=start, until=end)).events

    assert [e.occurred_at for e in found] == [end - one, start + one, start]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event_type": "login.maybe"}, "not an event type of the catalog"),
        ({"severity": "urgent"}, "Severity is one of low, medium, high, critical"),
        ({"ip_address": "198.51.100.300"}, "is not an IP address"),
        ({"ip_address": "1.2.3.4; DROP TABLE x"}, "is not an IP address"),
        ({"since": datetime(2025, 1, 1)}, "Times need a time zone"),
        ({"since": T0, "until": T0 - timedelta(microseconds=1)}, "after its end"),
        ({"user_id": "x" * 65}, "at most 64"),
        ({"user_id": "ada\x00"}, "printable"),
        ({"min_score": 101}, "from 0 to 100"),
        ({"min_score": -1}, "from 0 to 100"),
        ({"min_score": True}, "from 0 to 100"),
        ({"risk_action": "destroy"}, "An action is one of allow, alert"),
    ],
)
def test_filters_no_store_could_answer_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFilter, match=message):
        EventFilters(**fields)


@pytest.mark.parametrize("limit", [0, -1, PAGE_SIZE_MAX + 1])
def test_page_size_is_bounded(backend: Backend, limit: int) -> None:
    with pytest.raises(InvalidFilter, match="A page holds 1 to 1000 events"):
        backend.store.search(EventFilters(), limit=limit)


@pytest.mark.parametrize("text", ["", "abc", "123", "12.zz", "1" * 18 + "." + "0" * 32, "-5.00"])
def test_malformed_cursors_are_refused(text: str) -> None:
    with pytest.raises(InvalidFilter, match="page link is malformed"):
        EventCursor.parse(text)


@pytest.mark.parametrize("backend", ["clickhouse", "merged"], indirect=True)
def test_an_event_written_twice_to_clickhouse_is_answered_once(
    backend: Backend, audit_clickhouse: Client
) -> None:
    # (The outbox's primary key refuses a second copy: the database store has no such case.)
    twice, once = audit_event(1, user_id=BOB), audit_event(2, user_id=BOB)
    outbox_insert([twice, once])
    ship_all()
    outbox_insert([twice])  # a shipper killed before its DELETE committed: shipped again
    ship_all()
    assert audit_clickhouse.execute(f"SELECT count() FROM {EVENTS_TABLE}")[0][0] == 3  # noqa: S608

    by_type = EventFilters(event_type=twice.event_type)
    for filters in (EventFilters(), EventFilters(user_id=BOB), by_type):
        assert backend.store.search(filters).events == [once, twice]
        assert list(backend.store.iterate(filters)) == [once, twice]
    pages = list(all_pages(backend.store, EventFilters(), limit=1))
    assert [e for page in pages for e in page] == [once, twice]


@pytest.fixture
def merging(audit_clickhouse: Client) -> Iterator[Client]:
    """Merges on: ClickHouse runs the erasure's ALTER TABLE ... DELETE as part of merging."""
    for table in PARTITIONED_TABLES:
        audit_clickhouse.execute(START_MERGES.format(table=table))
    yield audit_clickhouse
    for table in PARTITIONED_TABLES:
        audit_clickhouse.execute(STOP_MERGES.format(table=table))


def test_pseudonymizing_a_person_rewrites_exactly_their_events(
    backend: Backend, merging: Client
) -> None:
    subject = Subject(ADA, ADA_EMAIL)
    backend.place(SAMPLE)
    _, about = FILTERS["about a person"]
    expected = newest_first([pseudonymized(e, subject) if about(e) else e for e in SAMPLE])

    rewritten = backend.store.pseudonymize_user(subject)

    assert rewritten >= sum(map(about, SAMPLE))  # the merged store's doubled event: twice
    assert list(backend.store.iterate(EventFilters())) == expected
    assert backend.store.search(EventFilters(user_id=subject.pseudonym)).events == [
        e for e in expected if e.user_id == subject.pseudonym
    ]
    assert list(backend.store.iterate(EventFilters(about=subject))) == []
    assert backend.store.pseudonymize_user(subject) == 0  # nothing left: idempotent
    # In ClickHouse the originals are gone, not merely hidden: one row per event shipped.
    shipped = {"database": 0, "clickhouse": len(SAMPLE), "merged": len(SAMPLE) // 2}
    raw = merging.execute(f"SELECT count() FROM {EVENTS_TABLE}")[0][0]  # noqa: S608
    assert raw == shipped[backend.name]


def test_every_field_of_an_event_survives_the_store(backend: Backend) -> None:
    full = audit_event(
        0,
        event_type="login.failed",
        user_id=ADA,
        actor_id=BOB,
        session_id=str(uuid.uuid4()),
        resource_type="user",
        resource_id=ADA,
        action="failed",
        success=False,
        error_code="wrong_credentials",
        error_message="Wrong email or password. 'quoted' \\ back\nslash",
        ip_address="2001:67c:2e8::42",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) «ünïcødé»",
        request_id="req-1",
        duration_ms=3.25,
        metadata={"nested": {"list": [1, "two", None]}, "email": "ada@example.com"},
        severity="high",
        compliance_tags=("SOC2", "GDPR"),
    )
    backend.place([full])

    assert backend.store.search(EventFilters()).events == [full]


def by_user(events: list[AuditEvent]) -> list[AuditEvent]:
    return sorted(events, key=lambda e: (e.user_id, e.occurred_at, str(e.id)))


@pytest.fixture
def language_collation(backend: Backend) -> None:
    """The outbox's user_id compared as people read text (ICU's root collation: "anon" <
    "zed" < "Zed"), as in a database created with a language's locale; the suite's own is
    "C". Rolled back with the test's transaction."""
    if backend.name != "clickhouse":
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE core_security_event ALTER COLUMN user_id "
                'TYPE varchar(64) COLLATE "und-x-icu"'
            )


@pytest.mark.parametrize(
    "case", ["none", "type", "user and type", "succeeded", "time range", "nothing"]
)
def test_iterating_by_user_gives_each_persons_events_oldest_first(
    backend: Backend, case: str, language_collation: None
) -> None:
    filters, wanted = FILTERS[case]
    # Byte order, whatever the database's collation: "Zed" before "anon" before "zed",
    # and an id a pseudonym replaced sorts beside any other.
    others = [
        audit_event(0.5, event_type="login.succeeded", user_id=user)
        for user in ("zed", "Zed", "anon:0f", "Ábel")
    ]
    later_first = [audit_event(9 - i, user_id=BOB, event_type="login.succeeded") for i in range(3)]
    events = SAMPLE + others + later_first
    backend.place(events)

    found = list(backend.store.iterate_by_user(filters))

    assert found == by_user([e for e in events if wanted(e)])
    users = [e.user_id for e in found]
    assert users == sorted(users, key=lambda user: user.encode())  # grouped, bytes order


@pytest.mark.parametrize("backend", ["clickhouse", "merged"], indirect=True)
def test_iterating_by_user_answers_an_event_shipped_twice_once(backend: Backend) -> None:
    twice, once = audit_event(1, user_id=BOB), audit_event(2, user_id=ADA)
    outbox_insert([twice, once])
    ship_all()
    outbox_insert([twice])  # shipped again, and (merged) waiting in the outbox once more
    ship_all()
    outbox_insert([twice])

    assert list(backend.store.iterate_by_user(EventFilters())) == by_user([twice, once])
