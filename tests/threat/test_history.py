"""Attempt history: the Redis script (history.lua, real Redis) and the in-memory copy the replay
uses give the same numbers for the same attempts, and both stay bounded."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from apps.threat import history
from apps.threat.history import (
    DAY_MS,
    HOUR_MS,
    Attempt,
    MemoryHistory,
    RedisHistory,
    baseline_key,
    network_of,
    person_key,
)

T0 = 1_790_000_000_000  # ms


def attempt(at_ms: int = T0, **changes: object) -> Attempt:
    base = Attempt(
        at_ms=at_ms,
        person=person_key("ada@example.com"),
        ip="203.0.113.7",
        network=network_of("203.0.113.7"),
        success=True,
        baseline="u-ada",
        country="NZ",
        asn=9500,
        device="dev-1",
        browser="Firefox",
        os="Linux",
        hour=9,
        lat=-41.29,
        lon=174.78,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_network_of_is_the_24_or_48() -> None:
    assert network_of("203.0.113.7") == "203.0.113.0/24"
    assert network_of("2001:db8:1:2::5") == "2001:db8:1::/48"
    assert network_of("") == network_of("nonsense") == ""


def test_person_key_ignores_case_and_spaces() -> None:
    assert person_key(" Ada@Example.com") == person_key("ada@example.com")


@pytest.mark.parametrize("make", [RedisHistory, MemoryHistory])
def test_failures_count_in_their_windows_and_include_the_attempt(make) -> None:
    seen = make()
    for i in range(3):
        seen.observe(attempt(T0 + i * 1000, success=False))
    view = seen.observe(attempt(T0 + 2 * HOUR_MS, success=False))
    assert (view.failures_user_1h, view.failures_user_24h, view.failures_user_7d) == (1, 4, 4)
    assert (view.failures_ip_1h, view.failures_ip_24h, view.failures_network_1h) == (1, 4, 1)
    later = seen.observe(attempt(T0 + 8 * DAY_MS))
    assert (later.failures_user_1h, later.failures_user_7d) == (0, 0)


@pytest.mark.parametrize("make", [RedisHistory, MemoryHistory])
def test_distinct_accounts_ips_and_passwords(make) -> None:
    seen = make()
    for n in range(4):
        seen.observe(
            attempt(
                T0 + n,
                person=person_key(f"p{n}@example.com"),
                ip=f"198.51.100.{n % 2}",
                network=network_of(f"198.51.100.{n % 2}"),
                success=False,
                baseline="",
                password_digest="d1",
            )
        )
    view = seen.observe(
        attempt(
            T0 + 10,
            person=person_key("p9@example.com"),
            ip="198.51.100.1",
            network=network_of("198.51.100.1"),
            success=False,
            baseline="",
            password_digest="d1",
        )
    )
    assert view.accounts_ip_1h == 3  # p1, p3, p9 from .1
    assert view.accounts_network_1h == 5
    assert view.spray_accounts_1h == 5
    assert view.ips_user_1h == 1
    assert view.successes == 0  # no baseline asked


@pytest.mark.parametrize("make", [RedisHistory, MemoryHistory])
def test_the_baseline_is_read_before_it_learns_a_success(make) -> None:
    seen = make()
    first = seen.observe(attempt())
    assert first.successes == 0
    assert not first.known_country
    assert first.last_at_ms is None
    second = seen.observe(attempt(T0 + HOUR_MS, country="FR", device="dev-2", lat=None, lon=None))
    assert second.successes == 1
    assert second.known_asn
    assert second.known_network
    assert second.known_browser
    assert not second.known_country
    assert not second.known_device
    assert (second.last_at_ms, second.last_lat, second.last_lon) == (T0, -41.29, 174.78)
    assert second.hours[9] == 1
    assert sum(second.hours) == 1
    failed = seen.observe(attempt(T0 + 2 * HOUR_MS, country="JP", success=False))
    assert not failed.known_country
    assert failed.successes == 2
    third = seen.observe(attempt(T0 + 3 * HOUR_MS, country="JP"))
    assert not third.known_country  # a failure is not learned
    assert (third.last_lat, third.last_lon) == (None, None)  # the last success had no place


def test_redis_and_memory_agree_on_a_random_trace() -> None:
    rng = random.Random(16)  # noqa: S311 - a reproducible trace, not a secret
    people = [f"p{n}@example.com" for n in range(6)]
    ips = [f"198.51.{n}.{m}" for n in range(3) for m in range(3)]
    redis_history, memory = RedisHistory(), MemoryHistory()
    now = T0
    for _ in range(300):
        now += rng.randrange(1, 20 * 60_000)
        email, ip = rng.choice(people), rng.choice(ips)
        a = attempt(
            now,
            person=person_key(email),
            ip=ip,
            network=network_of(ip),
            success=rng.random() < 0.6,
            baseline=email if rng.random() < 0.8 else "",
            password_digest=rng.choice(["", "a", "b"]),
            country=rng.choice(["NZ", "FR", ""]),
            device=rng.choice(["", "d1", "d2"]),
            hour=rng.randrange(24),
        )
        seen = redis_history.observe(a)
        assert seen == memory.observe(a)
        if a.success and rng.random() < 0.2:  # a refused success, taken back
            redis_history.forget(a, seen)
            memory.forget(a, seen)


def test_keys_are_bounded(redis_client, monkeypatch) -> None:
    monkeypatch.setattr(history, "CAP", 50)
    seen = RedisHistory()
    for i in range(120):
        seen.observe(attempt(T0 + i, success=False))
    key = f"tessera:threat:f:p:{person_key('ada@example.com')}"
    assert redis_client.zcard(key) == 50
    assert 0 < redis_client.pttl(key) <= 7 * DAY_MS
    assert redis_client.pttl(baseline_key("u-ada")) == -2  # nothing learned from failures
    memory = MemoryHistory()
    for i in range(120):
        view = memory.observe(attempt(T0 + i, success=False))
    assert view.failures_user_1h == 50


@pytest.mark.parametrize("make", [RedisHistory, MemoryHistory])
def test_a_refused_success_is_taken_back_out_of_the_baseline(make) -> None:
    seen = make()
    seen.observe(attempt())
    intruder = attempt(T0 + HOUR_MS, country="RU", device="dev-x", lat=55.75, lon=37.62, hour=3)
    view = seen.observe(intruder)
    seen.forget(intruder, view)
    after = seen.observe(attempt(T0 + 2 * HOUR_MS, country="RU", device="dev-x", success=False))
    assert after.successes == 1
    assert not after.known_country
    assert not after.known_device
    assert after.known_asn  # known before the intruder: counted once less, still known
    assert after.hours[3] == 0
    assert (after.last_at_ms, after.last_lat, after.last_lon) == (T0, -41.29, 174.78)


@pytest.mark.parametrize("make", [RedisHistory, MemoryHistory])
def test_taking_back_a_first_success_leaves_no_baseline(make) -> None:
    seen = make()
    first = attempt()
    seen.forget(first, seen.observe(first))
    assert seen.observe(attempt(T0 + 1, success=False)).successes == 0
