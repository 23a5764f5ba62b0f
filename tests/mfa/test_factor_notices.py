"""The security notices of second-factor changes (apps/mfa/notices.py; OWASP ASVS 5.0 6.3.7:
"users are notified after updates to authentication details"): an authenticator app or a
passkey added, a factor removed and new recovery codes on the person's security page, and an
operator's reset on the console or the admin API. Each is delivered by the suite's real Celery
worker to its real SMTP server (the `mailbox` fixture); a refused change sends nothing."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pyotp
import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.mfa.models import RecoveryCodeSet, TotpDevice, WebAuthnCredential
from apps.mfa.passkeys import webauthn_registration_begin, webauthn_registration_finish
from apps.mfa.recovery import recovery_codes_generate
from apps.mfa.totp import totp_confirm, totp_enrol, totp_secret
from tests.conftest import Mailbox
from tests.console.conftest import csrf_token, signed_in_as
from tests.mfa.security_steps import ORIGIN, add_passkey, authenticator, stale
from tests.rp import PASSWORD
from tests.signin.browser import force_sign_in

pytestmark = pytest.mark.django_db(transaction=True)

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PERSON_IP = "198.51.100.23"
OPERATOR_IP = "203.0.113.9"
ADDED = "A sign-in method was added to your account"
REMOVED = "A sign-in method was removed from your account"
CODES = "New recovery codes were made for your account"
RESET = "An administrator reset the second sign-in step of your account"


@pytest.fixture(autouse=True)
def _issuer(settings: Any) -> None:
    settings.ISSUER = ORIGIN  # the passkeys' RP ID and origin, and the notices' links


@pytest.fixture
def person() -> User:
    return user_create(
        email=f"ada-{uuid.uuid4().hex[:10]}@example.com", name="Ada Lovelace", password=PASSWORD
    )


@pytest.fixture
def browser(person: User) -> HttpClient:
    """Ada's Firefox, signed in a moment ago (a recent authentication: changes are allowed)."""
    http = HttpClient(REMOTE_ADDR=PERSON_IP, HTTP_USER_AGENT=FIREFOX)
    force_sign_in(http, person)
    return http


def _from_the_person(notice: EmailMessage, *, headline: str) -> str:
    """The notice's text, once checked for what every notice of the person's own change says:
    what, when, from where, and what to do if it was not them."""
    text = Mailbox.text(notice)
    assert "Hello Ada" in text
    assert f"{headline}." in text
    assert "When: " in text
    assert f"From: {PERSON_IP}" in text
    assert "Browser: Firefox" in text
    assert "If it was not you, open your account page now" in text
    assert f"{ORIGIN}/account/" in text
    assert "administrator" not in text
    html = Mailbox.html(notice)
    assert headline in html
    assert f'href="{ORIGIN}/account/"' in html
    return text


def _notices(mailbox: Mailbox, person: User) -> list[str]:
    """The subjects of every message to the person that arrived since the test began (a
    folded encoded-word subject is parsed with a leading space: spaces are normalised)."""
    return [
        " ".join(str(m["Subject"]).split())
        for m in mailbox.messages()
        if person.email in str(m["X-RcptTo"])
    ]


def _totp_started(http: HttpClient, person: User) -> TotpDevice:
    assert http.post("/account/security/totp/new", {"name": "Work phone"}).status_code == 302
    return TotpDevice.objects.get(user=person, confirmed_at__isnull=True)


def _code(device: TotpDevice) -> str:
    return pyotp.TOTP(totp_secret(device)).now()


def _wrong_code(device: TotpDevice) -> str:
    totp, now = pyotp.TOTP(totp_secret(device)), timezone.now()
    valid = {totp.at(now + timedelta(seconds=30 * step)) for step in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222") if code not in valid)


def test_an_authenticator_app_confirmed_on_the_security_page_mails_a_notice(
    mailbox: Mailbox, browser: HttpClient, person: User
) -> None:
    device = _totp_started(browser, person)
    confirmed = browser.post("/account/security/totp", {"code": _code(device)})
    assert confirmed.status_code == 302

    notice = mailbox.wait_for(to=person.email, subject_contains=ADDED)
    text = _from_the_person(notice, headline=ADDED)
    assert "Added: the authenticator app “Work phone”." in text


def test_a_wrong_confirmation_code_sends_nothing(
    mailbox: Mailbox, browser: HttpClient, person: User
) -> None:
    device = _totp_started(browser, person)  # an app started is not a factor yet: no notice
    refused = browser.post("/account/security/totp", {"code": _wrong_code(device)})
    assert refused.status_code == 400
    assert b"That code is not right" in refused.content
    malformed = browser.post("/account/security/totp", {"code": "12"})
    assert malformed.status_code == 400

    # One worker on one queue: a notice queued by the refusals would arrive before this one.
    assert browser.post("/account/security/totp", {"code": _code(device)}).status_code == 302
    mailbox.wait_for(to=person.email, subject_contains=ADDED)
    assert _notices(mailbox, person) == [f"{ADDED} · {_site_name()}"]


def test_a_passkey_registered_on_the_security_page_mails_a_notice(
    mailbox: Mailbox, browser: HttpClient, person: User
) -> None:
    added = add_passkey(browser, authenticator(backup_eligible=True), name="iCloud passkey")
    assert added.status_code == 302

    notice = mailbox.wait_for(to=person.email, subject_contains=ADDED)
    text = _from_the_person(notice, headline=ADDED)
    assert "Added: the security key or passkey “iCloud passkey”." in text


def test_a_refused_passkey_sends_nothing(
    mailbox: Mailbox, browser: HttpClient, person: User
) -> None:
    bent = add_passkey(browser, authenticator(), name="Evil key", origin="https://evil.example")
    assert bent.status_code == 400
    assert not WebAuthnCredential.objects.filter(user=person).exists()

    assert add_passkey(browser, authenticator(), name="YubiKey").status_code == 302
    notice = mailbox.wait_for(to=person.email, subject_contains=ADDED)
    assert "“YubiKey”" in Mailbox.text(notice)
    assert len(_notices(mailbox, person)) == 1


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("totp", "Removed: the authenticator app “Work phone”."),
        ("webauthn", "Removed: the security key or passkey “YubiKey 5”."),
        ("recovery_codes", "Removed: your set of recovery codes."),
    ],
)
def test_removing_a_factor_on_the_security_page_mails_a_notice(
    mailbox: Mailbox, browser: HttpClient, person: User, kind: str, said: str
) -> None:
    factor_id = _enrolled(person)[kind]  # through the services: no notice of their own
    path = f"/account/security/remove/{kind}/{factor_id}"
    assert browser.get(path).status_code == 200  # "remove this factor?"

    assert browser.post(path).status_code == 302

    notice = mailbox.wait_for(to=person.email, subject_contains=REMOVED)
    text = _from_the_person(notice, headline=REMOVED)
    assert said in text
    assert _notices(mailbox, person) == [f"{REMOVED} · {_site_name()}"]


def test_a_removal_refused_for_a_stale_sign_in_sends_nothing(
    mailbox: Mailbox, person: User
) -> None:
    http = HttpClient(REMOTE_ADDR=PERSON_IP, HTTP_USER_AGENT=FIREFOX)
    session = force_sign_in(http, person)
    factors = _enrolled(person)
    stale(session)
    path = f"/account/security/remove/totp/{factors['totp']}"
    refused = http.post(path)
    assert refused["Location"].startswith("/account/security/confirm?next=")
    assert TotpDevice.objects.filter(pk=factors["totp"]).exists()

    confirmed = http.post(
        "/account/security/confirm", {"method": "password", "password": PASSWORD, "next": path}
    )
    assert confirmed.status_code == 302
    assert http.post(path).status_code == 302
    mailbox.wait_for(to=person.email, subject_contains=REMOVED)
    assert _notices(mailbox, person) == [f"{REMOVED} · {_site_name()}"]


def test_new_recovery_codes_on_the_security_page_mail_a_notice(
    mailbox: Mailbox, browser: HttpClient, person: User
) -> None:
    made = browser.post("/account/security/recovery-codes")
    assert made.status_code == 200
    assert RecoveryCodeSet.objects.filter(user=person).count() == 1

    notice = mailbox.wait_for(to=person.email, subject_contains=CODES)
    text = _from_the_person(notice, headline=CODES)
    assert "Any earlier recovery codes, used or not, no longer work." in text


def test_an_operators_reset_on_the_console_mails_the_person_that_an_administrator_did_it(
    mailbox: Mailbox, person: User
) -> None:
    _enrolled(person)
    operator = signed_in_as("operator")
    path = f"/console/users/{person.pk}/mfa/reset/"
    page = operator.get(path, REMOTE_ADDR=OPERATOR_IP)
    done = operator.post(
        path, {"csrfmiddlewaretoken": csrf_token(page.content)}, REMOTE_ADDR=OPERATOR_IP
    )
    assert done.status_code == 302
    assert not TotpDevice.objects.filter(user=person).exists()

    notice = mailbox.wait_for(to=person.email, subject_contains=RESET)
    text = Mailbox.text(notice)
    assert "Hello Ada" in text
    assert (
        "An administrator removed every second factor of your account (1 authenticator app, "
        "1 security key or passkey, 1 set of recovery codes)."
    ) in " ".join(text.split())
    assert "made this change, not you" in text
    assert "tell your administrator at once" in text
    assert f"{ORIGIN}/account/" in text
    # The operator's address and browser are not the person's business.
    assert "From:" not in text
    assert "Browser:" not in text
    assert OPERATOR_IP not in text
    assert "If this was you" not in text
    assert "made this change, not you" in Mailbox.html(notice)


def test_an_operators_reset_through_the_admin_api_mails_the_person(
    mailbox: Mailbox, person: User
) -> None:
    _enrolled(person)
    api = signed_in_as("operator", enforce_csrf_checks=False)
    done = api.generic(
        "POST",
        f"/api/v1/users/{person.pk}/factors/reset",
        json.dumps({"end_sessions": False}),
        content_type="application/json",
    )
    assert done.status_code == 200

    notice = mailbox.wait_for(to=person.email, subject_contains=RESET)
    assert "made this change, not you" in Mailbox.text(notice)


def test_a_reset_of_a_person_without_factors_still_tells_them(
    mailbox: Mailbox, person: User
) -> None:
    """An operator acting on their second factors is news to the person even when there was
    nothing to remove: a help desk talked into it is how the attack starts."""
    api = signed_in_as("operator", enforce_csrf_checks=False)
    path = f"/api/v1/users/{person.pk}/factors/reset"
    reset = api.generic("POST", path, "{}", content_type="application/json")
    assert reset.json()["removed"] == {"totp": 0, "webauthn": 0, "recovery_codes": 0}

    notice = mailbox.wait_for(to=person.email, subject_contains=RESET)
    assert "none was set up, so nothing changed" in Mailbox.text(notice)


def _enrolled(person: User) -> dict[str, str]:
    """An authenticator app, a security key and recovery codes, through apps.mfa's services
    (which send no notice: the security page's views and mfa_reset do). Their ids by kind."""
    enrolment = totp_enrol(user=person, name="Work phone")
    earlier = timezone.now() - timedelta(seconds=60)
    code = pyotp.TOTP(enrolment.secret).at(earlier)
    device = totp_confirm(device=enrolment.device, code=code, now=earlier)
    ceremony = webauthn_registration_begin(user=person)
    key = webauthn_registration_finish(
        user=person,
        ceremony_id=ceremony.id,
        response=json.dumps(authenticator().create(ceremony.options_json)),
        name="YubiKey 5",
    )
    recovery_codes_generate(user=person)
    codes = RecoveryCodeSet.objects.get(user=person)
    return {"totp": str(device.pk), "webauthn": str(key.pk), "recovery_codes": str(codes.pk)}


def _site_name() -> str:
    return str(settings.SITE_NAME)
