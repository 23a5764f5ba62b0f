"""The sign-in's risk steps, through the hosted pages with real Redis and the real assessor
(apps.threat.port.ThreatAssessor) over rules stored as ThreatRule rows (apps.threat.ruleset):
a blocked person is refused, a rule's require_mfa sends the browser to the second-factor
page, a blocking rule refuses and blocks, the score and flags reach the login session,
failures are judged too, and with Redis down a sign-in is still decided."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.accounts.models import MfaRequiredBy
from apps.accounts.services import user_block
from apps.sessions.models import LoginSession
from apps.signin.pipeline import BLOCKED, RISK_REFUSED, WRONG_CREDENTIALS
from apps.threat.models import ThreatRule
from apps.threat.ruleset import ruleset_cache_clear
from tests.events import recorded
from tests.mfa.test_passwordless import ORIGIN, _registered
from tests.mfa.test_passwordless import _sign_in as _passkey_sign_in
from tests.rp import PASSWORD
from tests.servers import Redis
from tests.signin.test_second_factor import code_now, totp_of

pytestmark = pytest.mark.django_db

HEADLESS = "python-requests/2.32"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture(autouse=True)
def own_rules_only() -> Iterator[None]:
    """Each test decides by the rules it makes (the shipped ones, migration 0002, removed)."""
    ThreatRule.objects.all().delete()
    ruleset_cache_clear()
    yield
    ruleset_cache_clear()


def rule(name: str, condition: str, action: str) -> ThreatRule:
    return ThreatRule.objects.create(name=name, condition=condition, action=action, severity="high")


def sign_in(person: Any, *, user_agent: str = FIREFOX, password: str = PASSWORD) -> Any:
    http = HttpClient(HTTP_USER_AGENT=user_agent, REMOTE_ADDR="203.0.113.9")
    http.get("/login")  # the device cookie
    response = http.post("/login", {"email": person.email, "password": password})
    response.http = http
    return response


def test_a_blocked_person_is_refused_once_the_password_is_right(person) -> None:
    user_block(user=person, actor_id=None, source=MfaRequiredBy.OPERATOR, reason="test")
    wrong = sign_in(person, password="not the password")
    assert wrong.status_code == 400
    assert WRONG_CREDENTIALS in wrong.content.decode()
    with recorded() as events:
        right = sign_in(person)
    assert right.status_code == 403
    assert BLOCKED in right.content.decode()
    failed = [e for e in events if e.event_type == "login.failed"]
    assert [e.error_code for e in failed] == ["blocked"]
    assert not LoginSession.objects.filter(user=person).exists()


def test_require_mfa_sends_a_person_without_a_factor_to_the_second_factor_page(person) -> None:
    rule("headless-needs-mfa", "success and headless_ua", "require_mfa")
    ordinary = sign_in(person)
    assert ordinary.status_code == 302
    assert ordinary["Location"] != "/login/second-factor"
    scripted = sign_in(person, user_agent=HEADLESS)
    assert scripted.status_code == 302
    assert scripted["Location"] == "/login/second-factor"
    # No factor yet: enrolment (the rule made one required for this sign-in).
    page = scripted.http.get("/login/second-factor")
    assert page.status_code == 302
    assert page["Location"] == "/login/second-factor/enrol"
    assert scripted.http.get(page["Location"]).status_code == 200
    assert LoginSession.objects.filter(user=person).count() == 1  # the ordinary one


def test_the_score_and_flags_cross_the_second_factor_page_onto_the_session(person) -> None:
    secret = totp_of(person)
    answer = sign_in(person, user_agent=HEADLESS)
    assert answer["Location"] == "/login/second-factor"
    done = answer.http.post("/login/second-factor", {"method": "totp", "code": code_now(secret)})
    assert done.status_code == 302
    session = LoginSession.objects.get(user=person)
    assert session.threat_score == 20
    assert "headless_ua" in session.context["security_flags"]
    assert session.context["threat_reasons"][0]["signal"] == "headless_ua"
    assert session.context["threat_reasons"][0]["points"] == 20


def test_a_sign_in_sent_to_a_second_factor_is_learned_once_the_factor_is_proven(
    person, redis_client
) -> None:
    # An attacker with the password alone, who cannot pass the factor a rule asked for, must
    # not make their client (and country, network, device) part of the person's baseline.
    secret = totp_of(person)
    rule("headless-needs-mfa", "success and headless_ua", "require_mfa")
    baseline = f"tessera:threat:baseline:{person.pk}"

    def learned() -> tuple[int, set[bytes]]:
        stored = redis_client.hgetall(baseline)
        return int(stored.get(b"s", 0)), {f for f in stored if f.startswith(b"b:")}

    sign_in(person)  # no rule asks: learned when judged (its factor is the person's usual one)
    assert learned() == (1, {b"b:Firefox"})
    abandoned = sign_in(person, user_agent=HEADLESS)
    assert abandoned["Location"] == "/login/second-factor"
    assert learned() == (1, {b"b:Firefox"})  # asked, never proven: nothing learned
    proven = sign_in(person, user_agent=HEADLESS)
    done = proven.http.post("/login/second-factor", {"method": "totp", "code": code_now(secret)})
    assert done.status_code == 302
    successes, browsers = learned()
    assert successes == 2
    assert len(browsers) == 2  # the scripted client, now that its second factor was proven


def test_a_blocking_rule_refuses_the_sign_in_and_blocks_the_person(person) -> None:
    rule("scripts-blocked", "success and headless_ua", "block")
    with recorded() as events:
        refused = sign_in(person, user_agent=HEADLESS)
    assert refused.status_code == 403
    assert RISK_REFUSED in refused.content.decode()
    person.refresh_from_db()
    assert person.is_blocked()
    kinds = [e.event_type for e in events]
    assert {"threat.assessed", "user.blocked", "login.failed"} <= set(kinds)
    assert [e.error_code for e in events if e.event_type == "login.failed"] == ["risk_refused"]
    assert not LoginSession.objects.filter(user=person).exists()
    again = sign_in(person)  # an ordinary browser now: the block holds
    assert again.status_code == 403
    assert BLOCKED in again.content.decode()


def test_failed_passwords_are_judged_and_counted(person) -> None:
    rule("many-failures", "failures_user_1h >= 3", "require_mfa")
    with recorded() as events:
        for _ in range(3):
            assert sign_in(person, password="wrong").status_code == 400
    assessed = [e for e in events if e.event_type == "threat.assessed"]
    assert [e.metadata["success"] for e in assessed] == [False, False, False]
    assert assessed[-1].metadata["rules"] == ["many-failures"]
    right = sign_in(person)
    assert right["Location"] == "/login/second-factor"  # still 3 failures in the hour


@pytest.fixture
def own_redis(tmp_path, settings) -> Iterator[Redis]:
    """A Redis of this test's own as the application's (the suite's stays up for others)."""
    server = Redis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url(0)  # apps.core.redis.get_redis() follows it
    yield server
    server.stop(signal.SIGKILL)


def test_with_redis_down_a_sign_in_is_still_decided(own_redis, person) -> None:
    rule("headless-needs-mfa", "success and headless_ua", "require_mfa")
    rule("many-failures", "failures_user_1h >= 1", "require_mfa")
    own_redis.stop(signal.SIGKILL)
    with recorded() as events:
        answer = sign_in(person, user_agent=HEADLESS)
    assert answer.status_code < 500
    assessed = [e for e in events if e.event_type == "threat.assessed"]
    assert len(assessed) == 1
    assert assessed[0].metadata["history"] == "unavailable"
    assert assessed[0].metadata["rules"] == ["headless-needs-mfa"]  # no history rule fires


# --- the passkey journey (apps/signin/passwordless.py) -------------------------------------


@pytest.fixture
def passkey_origin(settings) -> None:
    settings.ISSUER = ORIGIN


def test_a_blocked_person_is_refused_with_a_passkey_too(passkey_origin) -> None:
    user, authenticator = _registered()
    user_block(user=user, actor_id=None, source=MfaRequiredBy.OPERATOR, reason="test")
    http = HttpClient()
    refused = _passkey_sign_in(http, authenticator)
    assert refused.status_code == 403
    assert BLOCKED in refused.content.decode()
    assert not LoginSession.objects.filter(user=user).exists()


def test_a_passkey_meets_require_mfa_and_its_score_reaches_the_session(passkey_origin) -> None:
    rule("everyone-mfa", "success", "require_mfa")
    user, authenticator = _registered()
    http = HttpClient(HTTP_USER_AGENT=HEADLESS)
    http.get("/login")  # the device cookie
    with recorded() as events:
        signed_in = _passkey_sign_in(http, authenticator, next_url="/account/")
    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/account/"  # no second-factor page: a passkey is two
    session = LoginSession.objects.get(user=user)
    assert session.threat_score == 20  # headless_ua
    assert session.context["security_flags"] == ["headless_ua"]
    [assessed] = [e for e in events if e.event_type == "threat.assessed"]
    assert assessed.metadata["rules"] == ["everyone-mfa"]
