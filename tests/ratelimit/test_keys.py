"""Who a limit counts: allow and deny lists (IPv4, IPv6), IPv6 by its /64, the client IP
behind trusted proxies only, and keys bounded whatever the input."""

from __future__ import annotations

import ipaddress

import pytest

from apps.ratelimit.rules import MAX_VALUE, identifier_value, ip_value

pytestmark = pytest.mark.django_db

LOGIN = {"email": "x@example.com", "password": "x"}


def _posts(client, count: int, **extra) -> list[int]:
    """Wrong passwords for `count` different addresses: the IP rules, not one address's
    failed-attempt lockout (tests/ratelimit/test_lockout.py), decide."""
    return [
        client.post("/login", {**LOGIN, "email": f"x{n}@example.com"}, **extra).status_code
        for n in range(count)
    ]


def _nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


@pytest.mark.parametrize("address", ["198.51.100.7", "2001:db8:5::9"])
def test_allow_listed_networks_skip_limits(client, settings, address) -> None:
    settings.RATELIMIT_ALLOW = _nets("198.51.100.0/24", "2001:db8::/32")
    assert 429 not in _posts(client, 25, REMOTE_ADDR=address)  # login.ip bursts 10
    assert 429 in _posts(client, 25, REMOTE_ADDR="192.0.2.10")  # others are still limited


@pytest.mark.parametrize("address", ["203.0.113.66", "2001:db8:bad::1"])
def test_deny_listed_networks_are_always_refused(client, settings, address) -> None:
    settings.RATELIMIT_DENY = _nets("203.0.113.64/26", "2001:db8:bad::/48")
    assert client.get("/.well-known/openid-configuration", REMOTE_ADDR=address).status_code == 403
    assert client.post("/login", LOGIN, REMOTE_ADDR=address).status_code == 403
    assert client.get("/healthz", REMOTE_ADDR=address).status_code == 200  # probes still answer
    ok = client.get("/.well-known/openid-configuration", REMOTE_ADDR="203.0.113.1")
    assert ok.status_code == 200


def test_ipv6_is_keyed_by_its_64(client) -> None:
    statuses = [
        client.post(
            "/login", {**LOGIN, "email": f"v6-{n}@example.com"}, REMOTE_ADDR=f"2001:db8:1:2::{n:x}"
        ).status_code
        for n in range(1, 16)
    ]
    assert 429 in statuses  # fifteen addresses of one /64 share one budget
    assert client.post("/login", LOGIN, REMOTE_ADDR="2001:db8:1:3::1").status_code != 429
    assert ip_value("2001:db8:1:2:aaaa::1") == ip_value("2001:db8:1:2::ffff")
    assert ip_value("::ffff:192.0.2.1") == "192.0.2.1"


def test_trusted_proxy_forwarded_client_selects_the_key(client, settings, redis_client) -> None:
    settings.TRUSTED_PROXIES = _nets("10.0.0.1/32")
    behind = {"REMOTE_ADDR": "10.0.0.1"}
    assert 429 in _posts(client, 15, HTTP_X_FORWARDED_FOR="203.0.113.7", **behind)
    # another client behind the same proxy has its own budget
    assert _posts(client, 1, HTTP_X_FORWARDED_FOR="203.0.113.8", **behind) != [429]
    assert redis_client.exists("tessera:rl:login.ip:203.0.113.7")


def test_spoofed_forwarded_for_from_an_untrusted_peer_never_selects_the_key(
    client, settings, redis_client
) -> None:
    settings.TRUSTED_PROXIES = _nets("10.0.0.1/32")
    statuses = [
        client.post(
            "/login", LOGIN, REMOTE_ADDR="198.51.100.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}"
        ).status_code
        for n in range(1, 16)
    ]
    assert 429 in statuses  # one budget: the peer's, whatever it claims
    assert redis_client.keys("tessera:rl:login.ip:192.0.2.*") == []


def test_malformed_forwarded_for_never_selects_the_key(client, settings, redis_client) -> None:
    settings.TRUSTED_PROXIES = _nets("10.0.0.1/32")
    statuses = [
        client.post(
            "/login", LOGIN, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"x{n}, not-an-ip"
        ).status_code
        for n in range(15)
    ]
    assert 429 in statuses  # all counted as the proxy itself: nothing to the left is believed
    assert [k.decode() for k in redis_client.keys("tessera:rl:login.ip:*")] == [
        "tessera:rl:login.ip:10.0.0.1"
    ]


def test_keys_are_normalized_and_bounded() -> None:
    assert identifier_value("  Alice@Example.COM ") == identifier_value("alice@example.com")
    assert identifier_value("ﬁ@example.com") == "fi@example.com"  # NFKC
    long = identifier_value("a" * 100_000 + "@example.com")
    assert len(long) <= MAX_VALUE
    assert long.startswith("sha256-")
    assert identifier_value("a:b@example.com").startswith("sha256-")  # ":" separates parts
    assert identifier_value("x\n@example.com").startswith("sha256-")


def test_account_rule_counts_the_identifier_typed_whatever_its_case(rf) -> None:
    from apps.ratelimit import services

    refused = 0
    for n in range(13):
        request = rf.post("/login", REMOTE_ADDR=f"192.0.2.{n + 1}")
        typed = "Victim@Example.com" if n % 2 else " victim@example.COM"
        refused += not services.check(request, account=typed).allowed
    assert refused == 3  # login.account bursts 10: one budget for both spellings
