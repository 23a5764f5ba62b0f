"""Second-factor counters (ratelimit kind "mfa", keyed by the account id; issue 15, Keycloak
issue 46164): a few wrong answers lock the second factor with a growing wait, a right answer
is then refused too (429, with the wait), the lock lifts when its time has passed, operators
see it like any lockout, and the password counters are another matter entirely."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyotp
import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from apps.accounts.models import User
from apps.core.models import SecurityEvent
from apps.mfa.totp import totp_confirm, totp_enrol
from apps.ratelimit import services
from apps.sessions.models import LoginSession
from tests.ratelimit.conftest import set_rule
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db

WRONG = "000000"


@pytest.fixture(autouse=True)
def _no_ip_rule(settings: Any) -> None:
    """These tests post more than login.ip's burst of 10 from one address."""
    set_rule(settings, "login.ip", "off")


def _with_totp(user: User) -> str:
    enrolment = totp_enrol(user=user, name="Phone")
    earlier = timezone.now() - timedelta(seconds=60)
    totp_confirm(
        device=enrolment.device, code=pyotp.TOTP(enrolment.secret).at(earlier), now=earlier
    )
    return enrolment.secret


def _pending(http: HttpClient, user: User) -> None:
    answer = http.post("/login", {"email": user.email, "password": PASSWORD, "next": "/account/"})
    assert answer["Location"] == "/login/second-factor"


def _wrong_code(secret: str) -> str:
    """A code of this account's app that is not valid now (nor a step either side)."""
    totp = pyotp.TOTP(secret)
    valid = {totp.at(timezone.now() + timedelta(seconds=30 * step)) for step in (-1, 0, 1)}
    return next(code for code in (WRONG, "111111", "222222") if code not in valid)


def _lock_ran_out(redis_client: Any, user: User) -> None:
    """The lock's wait has passed (the counter's own state moved on, not a sleep)."""
    redis_client.hset(f"tessera:rl:lock:mfa:{user.pk}", "lu", 0)


def test_wrong_codes_lock_the_second_factor_and_a_right_code_then_waits(
    person, settings, redis_client
) -> None:
    secret = _with_totp(person)
    http = HttpClient()
    _pending(http, person)
    wrong = _wrong_code(secret)
    for attempt in range(settings.MFA_LOCKOUT_THRESHOLD):
        answer = http.post("/login/second-factor", {"method": "totp", "code": wrong})
        assert answer.status_code == 400, attempt
    assert b"your second factor is locked for 1 min" in answer.content

    right = http.post("/login/second-factor", {"method": "totp", "code": pyotp.TOTP(secret).now()})
    assert right.status_code == 429
    assert b"It is locked for now: try again in" in right.content
    assert 1 <= int(right["Retry-After"]) <= 60
    assert not LoginSession.objects.filter(user=person).exists()
    # the refused attempt is recorded like the factor's own failures
    assert SecurityEvent.objects.filter(
        event_type="mfa.failed", user_id=person.pk, error_code="locked"
    ).exists()
    locked = SecurityEvent.objects.get(event_type="account.locked", user_id=person.pk)
    assert locked.metadata["kind"] == "mfa"

    # operators see it as they see the password lockouts (console, /api/v1/lockouts)
    [lockout] = services.lockouts_for(kind="mfa", identifier=str(person.pk))
    assert lockout.locked
    assert any(
        found.kind == "mfa" and found.identifier == str(person.pk)
        for found in services.lockouts_current(kind="mfa").lockouts
    )
    # the password counters never saw any of it (Keycloak issue 46164)
    assert services.lockouts_for(kind="login", identifier=person.email) == []

    _lock_ran_out(redis_client, person)
    done = http.post("/login/second-factor", {"method": "totp", "code": pyotp.TOTP(secret).now()})
    assert done.status_code == 302
    assert done["Location"] == "/account/"
    assert LoginSession.objects.filter(user=person, amr=["pwd", "otp"]).exists()


def test_the_second_lock_waits_longer(person, settings, redis_client) -> None:
    secret = _with_totp(person)
    http = HttpClient()
    _pending(http, person)
    wrong = _wrong_code(secret)
    for _ in range(settings.MFA_LOCKOUT_THRESHOLD):
        http.post("/login/second-factor", {"method": "totp", "code": wrong})
    _lock_ran_out(redis_client, person)
    for _ in range(settings.MFA_LOCKOUT_THRESHOLD):
        last = http.post("/login/second-factor", {"method": "totp", "code": wrong})
    assert b"locked for 2 min" in last.content
    refused = http.post("/login/second-factor", {"method": "totp", "code": wrong})
    assert refused.status_code == 429
    assert 61 <= int(refused["Retry-After"]) <= 120


def test_password_failures_never_touch_the_second_factor_counter(person) -> None:
    secret = _with_totp(person)
    for _ in range(5):  # locks the (address, IP) password counter
        HttpClient().post("/login", {"email": person.email, "password": "wrong password!"})
    assert services.lockouts_for(kind="mfa", identifier=str(person.pk)) == []
    assert any(
        lockout.locked for lockout in services.lockouts_for(kind="login", identifier=person.email)
    )
    # from another address, the password works and the second factor is not locked
    http = HttpClient(REMOTE_ADDR="198.51.100.7")
    _pending(http, person)
    done = http.post("/login/second-factor", {"method": "totp", "code": pyotp.TOTP(secret).now()})
    assert done.status_code == 302


def test_a_success_starts_the_count_again(person, settings) -> None:
    secret = _with_totp(person)
    wrong = _wrong_code(secret)
    first = HttpClient()
    _pending(first, person)
    for _ in range(settings.MFA_LOCKOUT_THRESHOLD - 1):
        first.post("/login/second-factor", {"method": "totp", "code": wrong})
    done = first.post("/login/second-factor", {"method": "totp", "code": pyotp.TOTP(secret).now()})
    assert done.status_code == 302
    # The success is settled with this process's next counter call (apps/ratelimit/limiter.py
    # _Releases): so the next attempts count from zero again.
    second = HttpClient()
    _pending(second, person)
    for attempt in range(settings.MFA_LOCKOUT_THRESHOLD - 1):
        answer = second.post("/login/second-factor", {"method": "totp", "code": wrong})
        assert answer.status_code == 400, attempt
        assert b"locked" not in answer.content
