"""The sign-in pipeline's limits step (apps/signin/pipeline.py `limits`, apps/ratelimit):
failed attempts counted per address and per (address, IP) before the password is checked;
a locked address answers the same whatever the password and whether or not it exists."""

from __future__ import annotations

import re

import pytest
from django.test import Client as HttpClient

from apps.accounts.services import user_create
from apps.core.models import SecurityEvent
from tests.rp import PASSWORD
from tests.signin.test_pipeline import CountingHasher, counting  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

ATTACKER = "198.51.100.20"


@pytest.fixture(autouse=True)
def real_limits(settings) -> None:
    settings.RATELIMIT_ALLOW = ()  # the suite allow-lists loopback for unrelated tests


def _post(http: HttpClient, email: str, password: str, ip: str = ATTACKER):
    return http.post("/login", {"email": email, "password": password}, REMOTE_ADDR=ip)


def _message(response) -> str:
    found = re.search(r"Sign-in is [^<]*", response.content.decode())
    return re.sub(r"\d+ min \d+ s|\d+ s", "<wait>", found.group(0)) if found else ""


def test_five_wrong_passwords_lock_the_address_and_the_right_one_is_refused_alike(
    client,
    settings,
    counting,  # noqa: F811 - the fixture
) -> None:
    user_create(email="ada@example.com", password=PASSWORD)
    statuses = [_post(client, "ada@example.com", "wrong guess").status_code for _ in range(5)]
    assert statuses == [400] * 5
    counting.computed = 0

    right = _post(client, "ada@example.com", PASSWORD)
    wrong = _post(client, "ada@example.com", "wrong guess")

    # ASVS 2.2.1; a lockout that let the right password through would be a password oracle
    assert right.status_code == wrong.status_code == 429
    assert _message(right) == _message(wrong) != ""
    assert "Try again in" in _message(right)
    assert int(right["Retry-After"]) >= 1
    assert counting.computed == 0  # no password was checked once locked
    locked = SecurityEvent.objects.get(event_type="account.locked")
    assert locked.metadata["ip"] == ATTACKER
    assert locked.metadata["scope"] == "identifier_ip"


def test_an_unknown_address_locks_exactly_like_a_real_one(client) -> None:
    user_create(email="real@example.com", password=PASSWORD)
    for email in ("real@example.com", "nobody@example.com"):
        assert [_post(client, email, "guess").status_code for _ in range(5)] == [400] * 5
    real = _post(client, "real@example.com", "guess")
    unknown = _post(client, "nobody@example.com", "guess")
    # No enumeration (OWASP Authentication Cheat Sheet): same status, message and headers.
    assert real.status_code == unknown.status_code == 429
    assert _message(real) == _message(unknown)
    assert real["Retry-After"] == unknown["Retry-After"]


def test_the_person_from_another_address_still_signs_in(client) -> None:
    # The (address, IP) counter trips long before the address's own (Keycloak
    # GHSA-cq42-vhv7-xr7p: a lockout must not become a denial of service).
    user_create(email="ada@example.com", password=PASSWORD)
    for _ in range(6):
        _post(client, "ada@example.com", "wrong guess")
    assert _post(HttpClient(), "ada@example.com", PASSWORD, ip="192.0.2.7").status_code == 302


def test_a_browser_that_signed_in_before_is_judged_by_its_own_ip_counter(settings) -> None:
    settings.LOCKOUT_THRESHOLD = 3  # the address's own counter, low to keep the test short
    user_create(email="ada@example.com", password=PASSWORD)
    laptop = HttpClient()
    laptop.get("/login")  # the page gives the browser its device cookie
    assert _post(laptop, "ada@example.com", PASSWORD, ip="192.0.2.7").status_code == 302
    laptop.post("/logout")
    for n in range(3):  # an attacker spreads guesses over addresses: the address locks
        _post(HttpClient(), "ada@example.com", "guess", ip=f"203.0.113.{n + 1}")
    stranger = _post(HttpClient(), "ada@example.com", PASSWORD, ip="192.0.2.99")
    assert stranger.status_code == 429

    again = _post(laptop, "ada@example.com", PASSWORD, ip="192.0.2.7")

    assert again.status_code == 302  # the device cookie of an earlier sign-in to this account
