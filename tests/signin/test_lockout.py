"""The sign-in pipeline's limits step (apps/signin/pipeline.py `limits`, apps/ratelimit):
failed attempts counted per address and per (address, IP) before the password is checked;
a locked address answers the same whatever the password and whether or not it exists."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from apps.accounts.services import user_create
from apps.core.models import SecurityEvent
from apps.ratelimit.rules import rules_reload
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


def _page(response, email: str) -> str:
    """The page as a person sees it, less what differs per request or merely echoes the
    form back: the CSRF token, the CSP nonce, the address typed, the seconds left."""
    page = response.content.decode()
    page = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "<csrf>", page)
    page = re.sub(r'nonce="[^"]*"', "<nonce>", page)
    page = page.replace(f'value="{email}"', 'value="<email>"')
    return re.sub(r"\d+ min \d+ s|\d+ s\b", "<wait>", page)


@pytest.fixture
def no_ip_rule(settings) -> Iterator[None]:
    """login.ip's burst of 10 would refuse these posts from one address before the lockout
    does (the same page: that would prove nothing about the lockout)."""
    settings.RATELIMIT_RULES = {**settings.RATELIMIT_RULES, "login.ip": None}
    rules_reload()
    yield
    rules_reload()  # before `settings` restores the rules: read afresh at next use


def test_a_locked_address_answers_one_way_whoever_it_is_and_whatever_the_password(
    client,
    settings,
    no_ip_rule,
    counting,  # noqa: F811 - the fixture
) -> None:
    # Issue 12: no enumeration (OWASP Authentication Cheat Sheet, "Authentication
    # Responses") and no password oracle (a lockout that looked at the password would tell
    # when it is right). Once locked, an existing address with its right password, with a
    # wrong one, and an unknown address answer the same status, page and headers, and cost
    # the same work: no password hash (argon2id, what a sign-in's time is made of) and the
    # same SQL statements. The timing class is asserted by that structure, not the clock.
    # Unlocked, an unknown address and a wrong password cost one hash each
    # (test_pipeline.test_every_refused_address_costs_one_password_hash).
    user_create(email="real@example.com", password=PASSWORD)
    client.get("/login", REMOTE_ADDR=ATTACKER)  # a browser: it holds a device cookie
    started = time.monotonic()
    for _ in range(settings.LOCKOUT_IP_THRESHOLD):  # interleaved: locks one request apart
        for email in ("real@example.com", "nobody@example.com"):
            assert _post(client, email, "guess").status_code == 400
    counting.computed = 0
    cases = {
        "existing, right password": ("real@example.com", PASSWORD),
        "existing, wrong password": ("real@example.com", "guess"),
        "unknown address": ("nobody@example.com", "guess"),
    }
    answers, pages, statements = {}, {}, {}
    for case, (email, password) in cases.items():
        with CaptureQueriesContext(connection) as queries:
            answers[case] = _post(client, email, password)
        pages[case] = _page(answers[case], email)
        statements[case] = [query["sql"] for query in queries.captured_queries]
    elapsed = math.ceil(time.monotonic() - started)

    assert counting.computed == 0  # no password hashed for any of them
    assert {case: a.status_code for case, a in answers.items()} == dict.fromkeys(cases, 429)
    assert len(set(pages.values())) == 1, pages
    assert "Sign-in is temporarily unavailable for this address." in pages["unknown address"]
    assert len({tuple(sorted(a.headers)) for a in answers.values()}) == 1
    # Retry-After: the full wait less the seconds since the locks began (one request apart:
    # a second may turn between them), for every one alike.
    wait = settings.LOCKOUT_WAIT_INCREMENT
    for case, answer in answers.items():
        assert wait - elapsed <= int(answer["Retry-After"]) <= wait, case
    assert len({len(sql) for sql in statements.values()}) == 1, statements
    refused = SecurityEvent.objects.filter(event_type="login.failed").exclude(
        error_code="wrong_credentials"
    )
    assert sorted(refused.values_list("error_code", flat=True)) == ["locked"] * 3


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
