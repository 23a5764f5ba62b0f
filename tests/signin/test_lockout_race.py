"""50 parallel wrong passwords on the hosted login form of a real server evaluate at most the
lockout threshold's worth (issue 12; the race Zitadel fixed in 2024): the limits step of the
sign-in pipeline (apps/signin/pipeline.py) reserves a failed-attempt slot per address and per
(address, IP) atomically in Redis BEFORE the password is hashed, so the requests that find the
slots taken wait for them to settle and then see the lock, unchecked."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from apps.accounts.services import user_create
from apps.core.events import EventType
from apps.core.models import SecurityEvent
from tests.rp import PASSWORD
from tests.servers import production_web_server, wait_for

GUESSES = 50
IP_THRESHOLD = 5  # IDP_LOCKOUT_IP_THRESHOLD: the (address, IP) counter
ADDRESS_THRESHOLD = 8  # IDP_LOCKOUT_THRESHOLD: the address's own; apart, to tell them apart
WRONG = 400  # "Email or password is incorrect.": a password was hashed and found wrong
REFUSED = 429  # refused by the limits step, before any password is looked at
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _browser(url: str, forwarded_for: str | None = None) -> tuple[requests.Session, str]:
    """A client with the login page's CSRF cookie and form token (OWASP ASVS 4.2.2), as a
    browser has before it posts the form."""
    browser = requests.Session()
    if forwarded_for:
        browser.headers["X-Forwarded-For"] = forwarded_for
    page = browser.get(f"{url}/login", timeout=60)
    assert page.status_code == 200
    found = CSRF_FIELD.search(page.text)
    assert found, "no CSRF token on the login page"
    return browser, found.group(1)


def _post(url: str, browser: requests.Session, token: str, email: str, password: str):
    return browser.post(
        f"{url}/login",
        data={"csrfmiddlewaretoken": token, "email": email, "password": password},
        allow_redirects=False,
        timeout=60,
    )


def _guess_in_parallel(url: str, email: str, forwarded: Callable[[int], str | None]) -> list[int]:
    """GUESSES wrong passwords for `email`, each from its own browser, all posted together."""
    barrier = threading.Barrier(GUESSES, timeout=120)

    def guess(n: int) -> int:
        browser, token = _browser(url, forwarded(n))
        barrier.wait()  # every post leaves together
        return _post(url, browser, token, email, f"guess-{n}").status_code

    with ThreadPoolExecutor(GUESSES) as pool:
        return list(pool.map(guess, range(GUESSES)))


def _failures(email: str) -> dict[str, int]:
    """login.failed events for `email` by error_code (pipeline._record_failure): one per post,
    "wrong_credentials" when its password was hashed, "locked"/"rate_limited" when not."""
    codes: dict[str, int] = {}
    for code in SecurityEvent.objects.filter(
        event_type=EventType.LOGIN_FAILED, metadata__email=email
    ).values_list("error_code", flat=True):
        codes[code] = codes.get(code, 0) + 1
    return codes


def _wait_for_failures(email: str, total: int) -> dict[str, int]:
    # Each answer's event was journaled before the answer left; the server's journal drains
    # to the database on its own schedule: wait for all of them, then look.
    wait_for(lambda: sum(_failures(email).values()) >= total, 60, f"login.failed for {email}")
    return _failures(email)


def _locked_scopes(email: str) -> list[str]:
    return sorted(
        SecurityEvent.objects.filter(
            event_type=EventType.ACCOUNT_LOCKED, metadata__identifier=email
        ).values_list("metadata__scope", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_wrong_passwords_evaluate_at_most_the_threshold(servers, settings) -> None:
    user_create(email="ada@example.com", password=PASSWORD)
    user_create(email="bob@example.com", password=PASSWORD)
    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(settings.DATABASES["default"]["NAME"]),
        "IDP_WEB_WORKERS": "2", "IDP_LOG_LEVEL": "warning",
        "IDP_RATELIMIT_ALLOW": "",  # not the suite's loopback allow list: lockout as shipped
        # The rate rules off, so that nothing but the failed-attempt reservation stands
        # between the guesses and the password hasher (login.ip's burst of 10 would refuse
        # most of them first and prove nothing about the lockout).
        "IDP_RATELIMIT_LOGIN_IP": "off", "IDP_RATELIMIT_LOGIN_ACCOUNT": "off",
        "IDP_LOCKOUT_IP_THRESHOLD": str(IP_THRESHOLD),
        "IDP_LOCKOUT_THRESHOLD": str(ADDRESS_THRESHOLD),
        # Believed for the second round's 50 client addresses; a post without the header
        # is keyed by the peer, 127.0.0.1.
        "IDP_TRUSTED_PROXIES": "127.0.0.1/32",
    }  # fmt: skip
    with production_web_server(env) as (_, url):
        # 1. One client address: the (address, IP) counter locks at IP_THRESHOLD.
        started = time.monotonic()
        statuses = _guess_in_parallel(url, "ada@example.com", lambda n: None)
        one_ip_seconds = time.monotonic() - started
        assert sorted(set(statuses)) == [WRONG, REFUSED], statuses
        assert statuses.count(WRONG) == IP_THRESHOLD  # hashed: never more than the threshold
        failures = _wait_for_failures("ada@example.com", GUESSES)
        assert failures.get("wrong_credentials") == IP_THRESHOLD
        assert failures.get("locked", 0) + failures.get("rate_limited", 0) == GUESSES - IP_THRESHOLD
        wait_for(lambda: _locked_scopes("ada@example.com"), 60, "no account.locked")
        assert _locked_scopes("ada@example.com") == ["identifier_ip"]

        # Locked now: the right password is refused alike, its hash never computed (else
        # the lockout would be a password oracle).
        right = _post(url, *_browser(url), "ada@example.com", PASSWORD)
        assert right.status_code == REFUSED
        assert int(right.headers["Retry-After"]) >= 1
        assert "Sign-in is temporarily unavailable for this address" in right.text
        assert "sessionid" not in right.cookies  # no session opened
        failures = _wait_for_failures("ada@example.com", GUESSES + 1)
        assert failures.get("wrong_credentials") == IP_THRESHOLD  # still: the right one unhashed

        # 2. Fifty client addresses (a spread attack, through the trusted proxy): each
        # (address, IP) counter sees one guess; the address's own locks at ADDRESS_THRESHOLD.
        started = time.monotonic()
        statuses = _guess_in_parallel(url, "bob@example.com", lambda n: f"198.51.100.{n + 1}")
        many_ips_seconds = time.monotonic() - started
        assert statuses.count(WRONG) == ADDRESS_THRESHOLD
        assert statuses.count(REFUSED) == GUESSES - ADDRESS_THRESHOLD
        failures = _wait_for_failures("bob@example.com", GUESSES)
        assert failures.get("wrong_credentials") == ADDRESS_THRESHOLD
        wait_for(lambda: _locked_scopes("bob@example.com"), 60, "no account.locked")
        assert _locked_scopes("bob@example.com") == ["identifier"]
        stranger = _post(url, *_browser(url, "203.0.113.9"), "bob@example.com", PASSWORD)
        assert stranger.status_code == REFUSED
    print(
        f"parallel_guesses={GUESSES} one_ip_checked={IP_THRESHOLD} ({one_ip_seconds:.2f}s) "
        f"many_ips_checked={ADDRESS_THRESHOLD} ({many_ips_seconds:.2f}s)"
    )
