"""Baselines rebuilt from the audit trail (apps/threat/baselines.py) against the suite's real
PostgreSQL, ClickHouse and Redis: a rebuild from the `login.succeeded` events of some sign-ins
writes the very hash sign-in's incremental learning (history.lua) leaves after the same
sign-ins, and the in-memory history (the replay's) sees the same baseline in it."""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from clickhouse_driver import Client
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient
from django.utils import timezone
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from apps.accounts.models import User
from apps.audit.store import EventFilters, audit_store, pseudonym
from apps.core import journal
from apps.core.risk import LoginContext
from apps.core.signin_history import PastSignIn
from apps.sessions import geo
from apps.threat import baselines, engine
from apps.threat.baselines import baseline_fold, baselines_rebuild
from apps.threat.history import (
    BASELINE_CAPS,
    BASELINE_TTL_MS,
    MemoryHistory,
    RedisHistory,
    View,
    baseline_key,
)
from apps.threat.tasks import rebuild_baselines
from tests.audit.factories import audit_event, outbox_insert, ship_all
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
AGENTS = (FIREFOX, CHROME, IPHONE, "curl/8.5.0", "")
# Tokyo, Wellington and Lyon with coordinates and an ASN; an IPv6 network with a country
# only (a sign-in from it leaves no coordinates); an address the databases do not know.
ADDRESSES = ("203.0.113.7", "203.0.113.99", "198.51.100.4", "192.0.2.10", "2001:db8:1::5", "")
UNKNOWN_IP = "100.64.0.1"


@pytest.fixture
def world(tmp_path: Path, settings) -> Iterator[None]:
    city = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    for network, country, name, lat, lon, number in (
        ("203.0.113.0/24", "JP", "Tokyo", 35.68, 139.69, 2516),
        ("198.51.100.0/24", "NZ", "Wellington", -41.29, 174.78, 9500),
        ("192.0.2.0/24", "FR", "Lyon", 45.76, 4.84, 3215),
    ):
        where = {"latitude": lat, "longitude": lon}
        city.insert_network(
            IPSet([network]),
            {"country": {"iso_code": country}, "city": {"names": {"en": name}}, "location": where},
        )
        asn.insert_network(IPSet([network]), {"autonomous_system_number": number})
    city.insert_network(IPSet(["2001:db8:1::/48"]), {"country": {"iso_code": "US"}})
    city.to_db_file(str(tmp_path / "city.mmdb"))
    asn.to_db_file(str(tmp_path / "asn.mmdb"))
    settings.GEOIP_DATABASE = tmp_path / "city.mmdb"
    settings.GEOIP_ASN_DATABASE = tmp_path / "asn.mmdb"
    geo.geo_cache_clear()
    yield
    geo.geo_cache_clear()


def account() -> str:
    """A person's id: an account (a baseline is built only for one that exists)."""
    user = User.objects.create(email=f"{uuid.uuid4().hex}@example.com", name="Someone")
    return str(user.pk)


def sign_in(user_id: str, at: datetime, ip: str, agent: str, device: str, **metadata: object):
    """A login.succeeded event as sign-in records it (device id in its metadata)."""
    return audit_event(
        0,
        occurred_at=at,
        event_type="login.succeeded",
        user_id=user_id,
        ip_address=ip or None,
        user_agent=agent,
        resource_type="session",
        metadata={"provider": "local", "amr": ["pwd"], **({"device_id": device} if device else {})}
        | metadata,
    )


def history_of(people: int, per_person: int, *, now: datetime, seed: int = 7) -> list:
    """Sign-ins of `people` people over the last 60 days, a few habits each, time order."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable sample, not a secret
    events = []
    for _ in range(people):
        user = account()
        devices = [uuid.uuid4().hex for _ in range(3)] + [""]
        for _ in range(per_person):
            at = now - timedelta(seconds=rng.randrange(3600, 60 * 86400))
            events.append(
                sign_in(user, at, rng.choice(ADDRESSES), rng.choice(AGENTS), rng.choice(devices))
            )
    return sorted(events, key=lambda e: e.occurred_at)


def context_of(event) -> LoginContext:
    return LoginContext(
        at=event.occurred_at,
        email=f"{event.user_id}@example.com",
        ip=event.ip_address,
        user_agent=event.user_agent,
        success=True,
        user_id=uuid.UUID(event.user_id),
        device_id=event.metadata.get("device_id", ""),
    )


def learn_incrementally(events: list, history) -> None:
    """What sign-in does with each of them (apps/threat/engine.py evaluate)."""
    for event in events:
        history.observe(engine.attempt_of(engine.located(context_of(event))))


def hashes(redis_client, users: set[str]) -> dict[str, dict[bytes, bytes]]:
    return {user: redis_client.hgetall(baseline_key(user)) for user in users}


def baseline_seen(history, user: str, at: datetime) -> View:
    """The baseline part of what the next attempt of `user` would see (a failure: it learns
    nothing)."""
    probe = replace(
        engine.attempt_of(engine.located(context_of(sign_in(user, at, ADDRESSES[0], FIREFOX, "")))),
        success=False,
    )
    view = history.observe(probe)
    return replace(view, **dict.fromkeys(COUNTS, 0))


COUNTS = (
    "failures_user_1h",
    "failures_user_24h",
    "failures_user_7d",
    "attempts_ip_1h",
    "failures_ip_1h",
    "failures_ip_24h",
    "failures_network_1h",
    "accounts_ip_1h",
    "accounts_network_1h",
    "ips_user_1h",
    "spray_accounts_1h",
)


def place(store: str, events: list, settings) -> None:
    """Events where the store reads them: the outbox alone (no ClickHouse), or ClickHouse
    with the newest few not shipped yet (the merged store a configured deployment reads)."""
    if store == "database":
        settings.CLICKHOUSE_URL = None
        outbox_insert(events)
        return
    by_age = sorted(events, key=lambda e: e.occurred_at)
    outbox_insert(by_age[:-5])
    ship_all()
    outbox_insert(by_age[-5:])


@pytest.fixture(params=["database", "clickhouse"])
def store(request: pytest.FixtureRequest, empty_audit_store: Client) -> str:
    return str(request.param)


def test_a_rebuild_writes_what_sign_in_learns_from_the_same_sign_ins(
    world, store, settings, redis_client
) -> None:
    now = timezone.now()
    events = history_of(people=4, per_person=40, now=now)
    users = {e.user_id for e in events}
    learn_incrementally(events, RedisHistory())
    learned = hashes(redis_client, users)
    memory = MemoryHistory()
    learn_incrementally(events, memory)
    redis_client.flushdb()
    noise = [
        audit_event(1, event_type="login.failed", user_id=next(iter(users)), success=False),
        audit_event(2, event_type="token.issued", user_id=next(iter(users))),
    ]
    place(store, events + [replace(e, occurred_at=now) for e in noise], settings)

    report = baselines_rebuild(now=now)

    assert (report.people, report.sign_ins, report.written) == (4, 160, 4)
    assert hashes(redis_client, users) == learned
    every = set().union(*learned.values())
    assert {b"c:JP", b"c:NZ", b"c:FR", b"c:US", b"a:2516", b"b:Safari", b"o:iOS"} <= every
    for user in users:
        probe_at = now + timedelta(minutes=1)
        assert baseline_seen(RedisHistory(), user, probe_at) == baseline_seen(
            memory, user, probe_at
        )


def test_the_rebuilt_baseline_lives_until_the_ttl_after_its_last_success(
    world, redis_client, settings
) -> None:
    settings.CLICKHOUSE_URL = None
    now = timezone.now()
    last = now - timedelta(days=10)
    user = account()
    outbox_insert([sign_in(user, last - timedelta(days=5), ADDRESSES[2], FIREFOX, "d1"),
                   sign_in(user, last, ADDRESSES[0], CHROME, "d2")])  # fmt: skip

    baselines_rebuild(now=now)

    wanted = int(last.timestamp() * 1000) + BASELINE_TTL_MS - int(now.timestamp() * 1000)
    assert wanted - 5000 < redis_client.pttl(baseline_key(user)) <= wanted
    found = redis_client.hgetall(baseline_key(user))
    assert found[b"at"] == str(int(last.timestamp() * 1000)).encode()
    assert (found[b"lat"], found[b"lon"]) == (b"35.68", b"139.69")  # Tokyo, the last one


def test_values_past_the_caps_stay_new_as_in_sign_in(world, redis_client, settings) -> None:
    settings.CLICKHOUSE_URL = None
    now = timezone.now()
    user = account()
    devices = BASELINE_CAPS[3] + 6
    events = [
        sign_in(user, now - timedelta(hours=devices - i), ADDRESSES[0], FIREFOX, f"device-{i}")
        for i in range(devices)
    ]
    learn_incrementally(events, RedisHistory())
    learned = redis_client.hgetall(baseline_key(user))
    redis_client.flushdb()
    outbox_insert(events)

    baselines_rebuild(now=now)

    found = redis_client.hgetall(baseline_key(user))
    assert found == learned
    assert found[b"#d"] == str(BASELINE_CAPS[3]).encode()
    assert b"d:device-0" in found
    assert b"d:device-%d" % (devices - 1) not in found  # beyond the cap: still new


def test_a_person_with_no_sign_in_left_keeps_no_baseline(world, redis_client, settings) -> None:
    settings.CLICKHOUSE_URL = None
    now = timezone.now()
    gone, stays = account(), account()
    old = sign_in(gone, now - timedelta(days=100), ADDRESSES[0], FIREFOX, "d1")
    learn_incrementally([old], RedisHistory())  # still in Redis: its TTL is 180 days
    outbox_insert([old, sign_in(stays, now - timedelta(days=1), ADDRESSES[2], CHROME, "d2")])

    report = baselines_rebuild(days=90, now=now)

    assert (report.people, report.removed) == (1, 1)
    assert not redis_client.exists(baseline_key(gone))
    assert redis_client.hget(baseline_key(stays), "c:NZ") == b"1"


def test_a_sign_in_learned_during_the_rebuild_is_not_overwritten(
    world, redis_client, settings
) -> None:
    settings.CLICKHOUSE_URL = None
    now = timezone.now()
    user = account()
    read = sign_in(user, now - timedelta(days=2), ADDRESSES[0], FIREFOX, "d1")
    outbox_insert([read])
    # Sign-in learns a newer success (not yet in what the rebuild reads) before it writes.
    learn_incrementally([read, sign_in(user, now, ADDRESSES[2], CHROME, "d2")], RedisHistory())
    before = redis_client.hgetall(baseline_key(user))

    report = baselines_rebuild(now=now)

    assert (report.written, report.kept_newer) == (0, 1)
    assert redis_client.hgetall(baseline_key(user)) == before
    assert before[b"s"] == b"2"


def test_an_erased_persons_events_build_no_baseline(world, redis_client, settings) -> None:
    settings.CLICKHOUSE_URL = None
    now = timezone.now()
    alias = pseudonym(str(uuid.uuid4()))
    outbox_insert([sign_in(alias, now - timedelta(days=1), ADDRESSES[0], FIREFOX, "")])

    report = baselines_rebuild(now=now)

    assert (report.people, report.written) == (0, 0)
    assert not redis_client.keys(baseline_key("*"))


def test_an_event_that_names_its_country_and_asn_is_not_looked_up(world) -> None:
    now = timezone.now()
    user = str(uuid.uuid4())
    told = PastSignIn(user, now, UNKNOWN_IP, FIREFOX, "d1", country="IS", asn=44925)
    looked_up = PastSignIn(user, now, ADDRESSES[3], FIREFOX, "d1")

    fields = baseline_fold([told, looked_up]).fields()

    assert (fields["c:IS"], fields["a:44925"], fields["c:FR"], fields["a:3215"]) == (1, 1, 1, 1)
    assert fields["d:d1"] == 2


def test_a_success_after_the_ttl_starts_the_baseline_afresh(world) -> None:
    now = timezone.now()
    user = str(uuid.uuid4())
    first = PastSignIn(user, now, ADDRESSES[0], FIREFOX, "d1")
    later = PastSignIn(user, now + timedelta(milliseconds=BASELINE_TTL_MS), ADDRESSES[3], CHROME)

    fields = baseline_fold([first, later]).fields()

    assert fields["s"] == 1
    assert "c:JP" not in fields
    assert "c:FR" in fields


def test_progress_is_reported_every_n_people(world, settings, monkeypatch) -> None:
    settings.CLICKHOUSE_URL = None
    monkeypatch.setattr(baselines, "PROGRESS_EVERY", 2)
    outbox_insert(history_of(people=5, per_person=3, now=timezone.now()))
    seen: list[tuple[int, int]] = []

    report = baselines_rebuild(progress=lambda r: seen.append((r.people, r.sign_ins)))

    assert seen == [(2, 6), (4, 12)]
    assert (report.people, report.sign_ins) == (5, 15)


def test_the_command_prints_progress_and_the_report(world, redis_client, settings, monkeypatch):
    settings.CLICKHOUSE_URL = None
    monkeypatch.setattr(baselines, "PROGRESS_EVERY", 1)
    outbox_insert(history_of(people=2, per_person=4, now=timezone.now()))
    out = io.StringIO()

    call_command("threat_baselines", "--days", "61", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("... 1 people")
    assert lines[-1].startswith("threat baselines rebuilt: 2 people, 8 sign-ins since")
    assert len(redis_client.keys(baseline_key("*"))) == 2


@pytest.mark.parametrize("days", ["0", "181", "-3"])
def test_the_command_refuses_a_window_beyond_the_ttl(days: str) -> None:
    with pytest.raises(CommandError, match="--days is from 1 to 180"):
        call_command("threat_baselines", "--days", days, stdout=io.StringIO())


def test_the_command_says_when_the_audit_store_is_down(servers, empty_audit_store) -> None:
    servers.clickhouse.stop()
    try:
        with pytest.raises(CommandError, match="the audit store did not answer: ClickHouse"):
            call_command("threat_baselines", stdout=io.StringIO())
    finally:
        servers.clickhouse.start()


def test_the_daily_task_rebuilds_from_clickhouse(world, empty_audit_store, redis_client):
    now = timezone.now()
    events = history_of(people=3, per_person=5, now=now)
    outbox_insert(events)
    ship_all()

    result = rebuild_baselines.apply().get()

    assert result == {
        "people": 3,
        "sign_ins": 15,
        "written": 3,
        "kept_newer": 0,
        "removed": 0,
        "no_account": 0,
    }
    assert len(redis_client.keys(baseline_key("*"))) == 3


def test_sign_ins_through_the_hosted_page_rebuild_into_what_they_taught(
    world, person, empty_audit_store, redis_client
) -> None:
    # The whole road: the risk step learns each sign-in (history.lua), sign-in records
    # login.succeeded, and the rebuild folds those events back into the same hash.
    # All from Tokyo: a jump elsewhere minutes later is impossible travel, and refused.
    for ip, agent in ((ADDRESSES[0], FIREFOX), (ADDRESSES[1], CHROME), (ADDRESSES[0], IPHONE)):
        browser = HttpClient(REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)
        browser.get("/login")
        assert (
            browser.post("/login", {"email": person.email, "password": PASSWORD}).status_code == 302
        )
    journal.drain_now()
    learned = redis_client.hgetall(baseline_key(person.pk))
    redis_client.flushdb()

    report = baselines_rebuild()

    rebuilt = redis_client.hgetall(baseline_key(person.pk))
    assert (report.people, report.sign_ins) == (1, 3)
    # Sign-in learns at the risk step, the event is recorded a moment later, with the session.
    assert 0 <= int(rebuilt.pop(b"at")) - int(learned.pop(b"at")) < 5000
    devices = {k for k in learned if k.startswith((b"d:", b"#d"))}
    assert {k: v for k, v in rebuilt.items() if k not in devices} == {
        k: v for k, v in learned.items() if k not in devices
    }
    assert learned[b"s"] == b"3"
    assert (learned[b"c:JP"], learned[b"a:2516"], learned[b"#b"]) == (b"3", b"3", b"3")
    # The device comes from login.succeeded's metadata (device_id), when sign-in puts it there.
    named = {e.metadata.get("device_id") for e in audit_store().iterate(EventFilters(
        user_id=str(person.pk), event_type="login.succeeded"))} - {None}  # fmt: skip
    assert {k for k in rebuilt if k.startswith(b"d:")} == {b"d:" + d.encode() for d in named}


@pytest.mark.django_db(transaction=True)  # the worker reads committed rows
def test_a_celery_worker_rebuilds_from_clickhouse(celery_worker, empty_audit_store, redis_client):
    # The beat entry's task, run by a real worker process against the suite's ClickHouse
    # and Redis (no GeoIP database in the worker: countries and ASNs stay unknown).
    events = history_of(people=3, per_person=4, now=timezone.now())
    outbox_insert(events)
    ship_all()

    result = rebuild_baselines.apply_async(ignore_result=False).get(timeout=60)

    assert result == {
        "people": 3,
        "sign_ins": 12,
        "written": 3,
        "kept_newer": 0,
        "removed": 0,
        "no_account": 0,
    }
    for user in {e.user_id for e in events}:
        assert redis_client.hget(baseline_key(user), "s") == b"4"


def test_an_account_deleted_since_keeps_no_baseline(world, redis_client, settings) -> None:
    settings.CLICKHOUSE_URL = None
    now = timezone.now()
    kept, deleted = account(), account()
    events = [
        sign_in(user, now - timedelta(days=1), ADDRESSES[0], FIREFOX, "d1")
        for user in (kept, deleted, "not-a-uuid")
    ]
    learn_incrementally(events[1:2], RedisHistory())
    User.objects.filter(pk=deleted).delete()
    outbox_insert(events)

    report = baselines_rebuild(now=now)

    assert (report.people, report.written, report.no_account) == (3, 1, 2)
    assert redis_client.exists(baseline_key(kept))
    assert not redis_client.exists(baseline_key(deleted))
    assert not redis_client.exists(baseline_key("not-a-uuid"))
