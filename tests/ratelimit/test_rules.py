"""Each default rule refuses past its burst with 429, Retry-After and the RateLimit headers
(draft-ietf-httpapi-ratelimit-headers-10), in its endpoint's format."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from apps.core.events import EventType
from apps.core.models import SecurityEvent
from tests.ratelimit.conftest import basic, set_rule

_addresses = itertools.count()

pytestmark = pytest.mark.django_db

POLICY = re.compile(r'^"(?P<name>[a-z.]+)";q=(?P<q>\d+);w=(?P<w>\d+)$')
STATE = re.compile(r'^"(?P<name>[a-z.]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def _send(client: Client, group: str, **extra: Any) -> Any:
    if group == "login":  # a new address each time: the IP rule decides, not its lockout
        email = f"x{next(_addresses)}@example.com"
        return client.post("/login", {"email": email, "password": "x"}, **extra)
    if group == "authorize":
        return client.get("/oauth/authorize", **extra)
    if group == "token":
        return client.post("/oauth/token", {"grant_type": "nope"}, **extra)
    if group == "introspect":
        return client.post("/oauth/introspect", {}, **extra)
    if group == "revoke":
        return client.post("/oauth/revoke", {}, **extra)
    if group == "userinfo":
        return client.get("/oauth/userinfo", **extra)
    return client.get("/api/v1/users", **extra)


def _until_refused(send: Callable[[], Any], most: int) -> tuple[int, Any, float]:
    started = time.monotonic()
    for sent in range(1, most + 1):
        response = send()
        if response.status_code == 429:
            return sent, response, time.monotonic() - started
    raise AssertionError(f"no 429 in {most} requests")


@pytest.mark.parametrize(
    "group", ["login", "authorize", "token", "introspect", "revoke", "userinfo", "api"]
)
def test_each_endpoint_ip_rule_refuses_past_its_burst_with_headers(client, group) -> None:
    spec = settings.RATELIMIT_RULES[f"{group}.ip"]
    assert spec is not None
    burst, limit, period = int(spec["burst"]), int(spec["limit"]), float(spec["period"])

    sent, refused, elapsed = _until_refused(lambda: _send(client, group), burst * 3)

    # GCRA: the burst at once, plus what the rate refilled meanwhile
    assert burst < sent <= burst + 1 + int(limit / period * elapsed) + 1
    assert refused["Retry-After"].isdigit()
    assert int(refused["Retry-After"]) >= 1
    policies = [POLICY.match(p.strip()) for p in refused["RateLimit-Policy"].split(",")]
    assert any(p and p["name"] == f"{group}.ip" and int(p["q"]) == limit for p in policies)
    states = [STATE.match(s.strip()) for s in refused["RateLimit"].split(",")]
    assert any(s and s["name"] == f"{group}.ip" and s["r"] == "0" for s in states)
    assert "no-store" in refused["Cache-Control"]
    if group in ("login", "authorize"):  # browser pages: the error page
        assert "text/html" in refused["Content-Type"]
        assert "Try again in" in refused.content.decode()
    else:
        body = refused.json()
        # RFC 6749 §5.2 shape; temporarily_unavailable (§4.1.2.1), see ratelimit/responses.py
        assert body["error"] == "temporarily_unavailable"
        assert "Try again in" in body["error_description"]


def test_allowed_answers_carry_the_remaining_quota(client) -> None:
    first = _send(client, "token")
    second = _send(client, "token")
    assert first.status_code == second.status_code == 400  # the bad grant type
    r1 = STATE.match(first["RateLimit"].split(",")[0])
    r2 = STATE.match(second["RateLimit"].split(",")[0])
    assert r1
    assert r2
    assert r1["name"] == "token.ip"
    assert int(r2["r"]) < int(r1["r"])
    # shared budgets are not advertised (their state would tell an attacker the load)
    assert "token.endpoint" not in first["RateLimit-Policy"]
    assert "global" not in first["RateLimit-Policy"]


def test_client_rule_limits_one_client_id_across_addresses(client, settings) -> None:
    # The default per-client budget (3000/1m, burst 600) lowered to keep the test short.
    set_rule(settings, "token.client", "3/1m burst=3")
    statuses = [
        client.post(
            "/oauth/token", {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=basic("some-public-id", ""), REMOTE_ADDR=f"198.51.100.{n}",
        ).status_code
        for n in range(1, 6)
    ]  # fmt: skip
    # an empty secret is still a secret (client_secret_basic): each is an attempt too
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429]


def test_endpoint_and_global_rules_refuse_everyone(client, settings) -> None:
    set_rule(settings, "authorize.endpoint", "4/1m burst=4")
    statuses = [
        client.get("/oauth/authorize", REMOTE_ADDR=f"203.0.113.{n}").status_code
        for n in range(1, 7)
    ]
    assert statuses.count(429) == 2
    assert 429 not in statuses[:4]
    set_rule(settings, "global", "2/1m burst=2")
    assert client.get("/oauth/userinfo", REMOTE_ADDR="192.0.2.1").status_code == 401
    assert client.get("/oauth/userinfo", REMOTE_ADDR="192.0.2.2").status_code == 401
    refused = client.get("/oauth/userinfo", REMOTE_ADDR="192.0.2.3")
    assert refused.status_code == 429
    assert '"global"' in refused["RateLimit-Policy"]  # the refusing rule is named


def test_login_form_shown_freely_and_posts_counted(client) -> None:
    for _ in range(30):
        assert client.get("/login").status_code == 200


def test_a_flood_writes_one_event_per_key_and_window(client, redis_client) -> None:
    from apps.core import journal

    statuses = [_send(client, "login").status_code for _ in range(200)]
    assert statuses.count(429) >= 150
    journal.drain_now()
    events = SecurityEvent.objects.filter(event_type=EventType.RATELIMIT_EXCEEDED)
    assert events.count() == 1
    event = events.get()
    assert event.metadata["rule"] == "login.ip"
    assert event.metadata["key"] == "127.0.0.1"
    # the next window writes the next one
    redis_client.hset("tessera:rl:login.ip:127.0.0.1", "ev", 0)
    # The rate refills one request every 2 s: on a slow run the flood may have lasted long
    # enough for the next post to pass; the one after it is refused again.
    assert 429 in [_send(client, "login").status_code for _ in range(3)]
    journal.drain_now()
    assert events.count() == 2


def test_a_refused_key_is_indexed_until_it_frees_and_stale_entries_are_trimmed(
    client, settings, redis_client
) -> None:
    """Operators list what refuses now from this index (services.blocks_current), not by a
    SCAN of the keyspace; a refusal trims the entries whose time has passed."""
    from apps.ratelimit.rules import REFUSING_KEY

    set_rule(settings, "login.ip", "2/1h")
    redis_client.zadd(REFUSING_KEY, {"tessera:rl:login.ip:198.51.100.250": 1})  # long free
    _, response, _ = _until_refused(
        lambda: _send(client, "login", REMOTE_ADDR="198.51.100.9"), most=5
    )
    seconds, micros = redis_client.time()
    now_ms = seconds * 1000 + micros // 1000
    frees_at = redis_client.zscore(REFUSING_KEY, "tessera:rl:login.ip:198.51.100.9")
    assert frees_at is not None
    assert 0 < frees_at - now_ms <= (int(response["Retry-After"]) + 1) * 1000
    assert redis_client.zscore(REFUSING_KEY, "tessera:rl:login.ip:198.51.100.250") is None
