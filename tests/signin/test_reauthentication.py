"""The re-authentication page /account/security/confirm (apps/signin/reauthentication.py;
OWASP ASVS 4.0.3 V3.7.1): the password, a code or a passkey confirms it is you, recorded for
the security page (apps/mfa/reauthentication.py) — and every answer counts on the sign-in's
failed-attempt counters (OWASP ASVS 4.0.3 V2.2.1; NIST SP 800-63B §5.2.2): wrong codes lock
the second factor (ratelimit kind "mfa", one counter with the sign-in's second factor), wrong
passwords the address (kind "login", as /login would); locked, a right answer is refused too
with 429 and Retry-After. Bad input: a message and 400, never a 500."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.utils import timezone

from apps.accounts.models import User
from apps.core.models import SecurityEvent
from apps.mfa.models import WebAuthnCredential
from apps.mfa.passkeys import MAX_RESPONSE_BYTES
from apps.mfa.reauthentication import REAUTH_KEY
from apps.mfa.totp import totp_confirm, totp_enrol
from apps.ratelimit import services as ratelimit
from apps.sessions.models import LoginSession
from tests.accounts.factories import UserFactory
from tests.mfa.security_steps import ORIGIN, add_passkey, options, stale
from tests.mfa.security_steps import authenticator as soft_authenticator
from tests.rp import PASSWORD
from tests.signin.browser import force_sign_in

pytestmark = pytest.mark.django_db

CONFIRM = "/account/security/confirm"
OPTIONS = "/account/security/confirm/options"


@pytest.fixture(autouse=True)
def _issuer(settings: Any) -> None:
    settings.ISSUER = ORIGIN


@pytest.fixture
def person() -> Any:
    user = UserFactory(email="ada@example.com")
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def signed_in(person: Any) -> tuple[HttpClient, LoginSession]:
    http = HttpClient()
    return http, force_sign_in(http, person)


def _with_totp(user: User) -> str:
    """A confirmed authenticator app, confirmed with a code of two steps ago (the code of now
    still unused); its secret."""
    enrolment = totp_enrol(user=user, name="Phone")
    earlier = timezone.now() - timedelta(seconds=60)
    totp_confirm(
        device=enrolment.device, code=pyotp.TOTP(enrolment.secret).at(earlier), now=earlier
    )
    return enrolment.secret


def _wrong_code(secret: str) -> str:
    """A code of the right form that the app does not show now (nor a step either side)."""
    totp = pyotp.TOTP(secret)
    valid = {totp.at(timezone.now() + timedelta(seconds=30 * step)) for step in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222") if code not in valid)


def _confirmed(http: HttpClient) -> bool:
    return REAUTH_KEY in http.session


def _mfa_locked(user: User) -> bool:
    return any(lock.locked for lock in ratelimit.lockouts_for(kind="mfa", identifier=str(user.pk)))


def test_a_passkey_confirms_it_is_you(signed_in: Any, person: Any) -> None:
    http, session = signed_in
    authenticator = soft_authenticator()
    assert add_passkey(http, authenticator).status_code == 302
    stale(session)
    data = options(http, OPTIONS)
    assert data["publicKey"]["allowCredentials"][0]["id"]
    assertion = authenticator.get(json.dumps(data["publicKey"]))
    confirmed = http.post(
        CONFIRM,
        {
            "method": "passkey",
            "ceremony": data["ceremony"],
            "credential": json.dumps(assertion),
            "next": "/account/security/#recovery",
        },
    )
    assert confirmed.status_code == 302
    assert confirmed["Location"] == "/account/security/#recovery"
    codes = http.post("/account/security/recovery-codes")
    assert codes.status_code == 200
    assert "the codes you had before no longer work" in codes.content.decode()


def test_a_cloned_passkey_cannot_confirm_and_says_why(signed_in: Any, person: Any) -> None:
    http, session = signed_in
    authenticator = soft_authenticator()
    assert add_passkey(http, authenticator).status_code == 302
    stale(session)
    for count in (5, 3):  # WebAuthn L2 §6.1.1: the counter went backwards
        data = options(http, OPTIONS)
        answer = authenticator.get(json.dumps(data["publicKey"]), sign_count=count)
        response = http.post(
            CONFIRM,
            {"method": "passkey", "ceremony": data["ceremony"], "credential": json.dumps(answer)},
        )
    assert response.status_code == 400
    assert "may have been copied" in response.content.decode()
    assert WebAuthnCredential.objects.get(user=person).clone_detected_at is not None
    assert "blocked: possibly copied" in http.get("/account/security/").content.decode()


def test_a_code_confirms_it_is_you_once(signed_in: Any, person: Any) -> None:
    http, session = signed_in
    codes = http.post("/account/security/recovery-codes").content.decode()
    code = re.findall(r"<li><code>([^<]+)</code></li>", codes)[0]
    stale(session)
    page = http.get(CONFIRM).content.decode()
    assert 'autocomplete="one-time-code"' in page
    body = {"method": "code", "code": code, "next": "/account/security/"}
    assert http.post(CONFIRM, body).status_code == 302
    fresh = http.session  # forget the confirmation: the code alone must be refused now
    fresh.pop("tessera_mfa_reauth", None)
    fresh.save()
    again = http.post(CONFIRM, body)  # spent
    assert again.status_code == 400
    assert "That recovery code is not valid, or it was used already." in again.content.decode()


@pytest.mark.parametrize(
    "target",
    ["https://evil.example.com/account/security/", "//evil.example.com/", "/console/", "/\\evil"],
)
def test_confirmation_returns_only_to_the_security_pages(signed_in: Any, target: str) -> None:
    http, _ = signed_in
    confirmed = http.post(CONFIRM, {"method": "password", "password": PASSWORD, "next": target})
    assert confirmed["Location"] == "/account/security/"


def test_a_factor_cannot_confirm_its_own_removal(signed_in: Any, person: Any) -> None:
    """Issue 15: removing a factor needs the password or *another* factor."""
    http, session = signed_in
    authenticator = soft_authenticator()
    assert add_passkey(http, authenticator).status_code == 302
    credential = WebAuthnCredential.objects.get(user=person)
    remove_url = f"/account/security/remove/webauthn/{credential.pk}"
    stale(session)
    data = options(http, OPTIONS)
    assertion = authenticator.get(json.dumps(data["publicKey"]))
    body = {
        "method": "passkey",
        "ceremony": data["ceremony"],
        "credential": json.dumps(assertion),
        "next": remove_url,
    }
    assert http.post(CONFIRM, body)["Location"] == remove_url

    asked_again = http.get(remove_url)
    assert asked_again["Location"].startswith("/account/security/confirm?next=")
    assert (
        "another factor than the one you remove"
        in http.get(asked_again["Location"]).content.decode()
    )
    assert http.post(remove_url).status_code == 302
    assert WebAuthnCredential.objects.filter(pk=credential.pk).exists()
    # ... while the same confirmation is good for adding one.
    assert http.post("/account/security/totp/new", {"name": "Phone"})["Location"] == (
        "/account/security/totp"
    )

    http.post(
        CONFIRM,
        {"method": "password", "password": PASSWORD, "next": remove_url},
    )
    assert http.post(remove_url).status_code == 302
    assert not WebAuthnCredential.objects.filter(pk=credential.pk).exists()


# --- the failed-attempt counters (the defect: only a per-IP rule guarded this page) --------


def test_wrong_codes_lock_the_second_factor_here_and_at_sign_in(
    signed_in: Any, person: Any
) -> None:
    """One counter per person for every second-factor answer (Keycloak issue 46164): codes
    guessed on this page lock the sign-in's second factor too, and a right code waits."""
    http, session = signed_in
    secret = _with_totp(person)
    stale(session)
    wrong = {"method": "code", "code": _wrong_code(secret), "next": "/account/security/"}
    for attempt in range(settings.MFA_LOCKOUT_THRESHOLD):
        answer = http.post(CONFIRM, wrong)
        assert answer.status_code == 400, attempt
    assert "your second factor is locked for 1 min" in answer.content.decode()
    assert _mfa_locked(person)
    locked = SecurityEvent.objects.get(event_type="account.locked", user_id=person.pk)
    assert locked.metadata["kind"] == "mfa"

    right = http.post(CONFIRM, {"method": "code", "code": pyotp.TOTP(secret).now()})
    assert right.status_code == 429
    assert 1 <= int(right["Retry-After"]) <= 60
    assert "It is locked for now: try again in" in right.content.decode()
    assert not _confirmed(http)
    assert SecurityEvent.objects.filter(
        event_type="mfa.failed", user_id=person.pk, error_code="locked"
    ).exists()
    assert http.post("/account/security/totp/new")["Location"].startswith(CONFIRM)
    # the password counters saw none of it
    assert ratelimit.lockouts_for(kind="login", identifier=person.email) == []

    # ... and the sign-in's second factor is the same counter: locked there too.
    browser = HttpClient(REMOTE_ADDR="198.51.100.7")
    pending = browser.post("/login", {"email": person.email, "password": PASSWORD})
    assert pending["Location"] == "/login/second-factor"
    at_sign_in = browser.post(
        "/login/second-factor", {"method": "totp", "code": pyotp.TOTP(secret).now()}
    )
    assert at_sign_in.status_code == 429
    assert "Retry-After" in at_sign_in


def test_a_locked_second_factor_refuses_a_passkey_too(signed_in: Any, person: Any) -> None:
    http, session = signed_in
    authenticator = soft_authenticator()
    assert add_passkey(http, authenticator).status_code == 302
    secret = _with_totp(person)
    stale(session)
    for _ in range(settings.MFA_LOCKOUT_THRESHOLD):
        http.post(CONFIRM, {"method": "code", "code": _wrong_code(secret)})
    data = options(http, OPTIONS)  # beginning costs nothing; the answer is refused unread
    assertion = authenticator.get(json.dumps(data["publicKey"]))
    refused = http.post(
        CONFIRM,
        {"method": "passkey", "ceremony": data["ceremony"], "credential": json.dumps(assertion)},
    )
    assert refused.status_code == 429
    assert "Retry-After" in refused
    assert not _confirmed(http)


def test_a_right_code_before_the_lock_confirms_and_counts_from_zero(
    signed_in: Any, person: Any
) -> None:
    http, session = signed_in
    secret = _with_totp(person)
    stale(session)
    for _ in range(settings.MFA_LOCKOUT_THRESHOLD - 1):
        assert (
            http.post(CONFIRM, {"method": "code", "code": _wrong_code(secret)}).status_code == 400
        )
    done = http.post(
        CONFIRM, {"method": "code", "code": pyotp.TOTP(secret).now(), "next": "/account/security/"}
    )
    assert done.status_code == 302
    assert done["Location"] == "/account/security/"
    assert _confirmed(http)
    assert not _mfa_locked(person)


def test_wrong_passwords_count_on_the_sign_in_counters_and_lock_as_a_sign_in_would(
    signed_in: Any, person: Any
) -> None:
    http, session = signed_in
    stale(session)
    for attempt in range(settings.LOCKOUT_IP_THRESHOLD):
        wrong = http.post(CONFIRM, {"method": "password", "password": f"guess {attempt}"})
        assert wrong.status_code == 400, attempt
        assert "The current password is incorrect." in wrong.content.decode()
    assert (
        SecurityEvent.objects.filter(
            event_type="login.failed", user_id=person.pk, error_code="wrong_credentials"
        ).count()
        == settings.LOCKOUT_IP_THRESHOLD
    )
    assert (
        SecurityEvent.objects.get(event_type="account.locked", user_id=person.pk).metadata["kind"]
        == "login"
    )

    right = http.post(CONFIRM, {"method": "password", "password": PASSWORD})
    assert right.status_code == 429
    assert 1 <= int(right["Retry-After"]) <= 60
    assert "Too many wrong passwords. Try again in" in right.content.decode()
    assert not _confirmed(http)
    # the sign-in page from the same address: locked alike; the second factor untouched
    signing_in = HttpClient().post("/login", {"email": person.email, "password": PASSWORD})
    assert signing_in.status_code == 429
    assert not _mfa_locked(person)


def test_a_right_password_before_the_lock_confirms(signed_in: Any, person: Any) -> None:
    http, session = signed_in
    stale(session)
    for _ in range(settings.LOCKOUT_IP_THRESHOLD - 1):
        http.post(CONFIRM, {"method": "password", "password": "not it"})
    done = http.post(CONFIRM, {"method": "password", "password": PASSWORD})
    assert done.status_code == 302
    assert _confirmed(http)


@pytest.mark.parametrize(
    "body",
    [
        {"method": "nope"},
        {},
        {"method": "password"},
        {"method": "password", "password": "x" * 2000},
        {"method": "code"},
        {"method": "code", "code": "!!!"},
        {"method": "code", "code": "\uff11" * 6},  # fullwidth digits: not a code's form
        {"method": "code", "code": "1" * 41},
        {"method": "passkey"},
        {"method": "passkey", "ceremony": "x", "credential": "x" * (MAX_RESPONSE_BYTES + 1)},
    ],
)
def test_bad_input_is_a_message_not_a_500_and_costs_no_attempt(
    signed_in: Any, person: Any, body: dict[str, str]
) -> None:
    http, _ = signed_in
    _with_totp(person)
    answer = http.post(CONFIRM, body)
    assert answer.status_code == 400
    assert re.search(r'<p class="error"[^>]*>[^<\s]', answer.content.decode())  # says why
    assert ratelimit.lockouts_for(kind="mfa", identifier=str(person.pk)) == []
    assert ratelimit.lockouts_for(kind="login", identifier=person.email) == []


def test_an_unreadable_passkey_answer_is_a_clear_400(signed_in: Any, person: Any) -> None:
    http, _ = signed_in
    assert add_passkey(http, soft_authenticator()).status_code == 302
    data = options(http, OPTIONS)
    answer = http.post(
        CONFIRM, {"method": "passkey", "ceremony": data["ceremony"], "credential": "{not json"}
    )
    assert answer.status_code == 400
    assert "could not be read" in answer.content.decode()
    assert not _confirmed(http)


def test_options_without_a_key_or_a_sign_in_are_not_a_500(signed_in: Any) -> None:
    http, _ = signed_in
    no_key = http.post(OPTIONS, HTTP_ACCEPT="application/json")
    assert no_key.status_code == 400
    assert "no security key" in no_key.json()["error"]
    anonymous = HttpClient()
    assert anonymous.get(CONFIRM)["Location"].startswith("/login")
    assert anonymous.post(CONFIRM, {"method": "password", "password": "x"}).status_code == 302
