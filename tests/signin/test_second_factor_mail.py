"""The notice of a locked second factor (apps/signin/notices.py `mfa_locked`), at sign-in or on
the confirmation page, delivered by a real Celery worker to the suite's SMTP server (OWASP
ASVS 5.0 V6.3.5: tell the person)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pyotp
import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.utils import timezone

from apps.accounts.services import user_create
from apps.mfa.totp import totp_confirm, totp_enrol
from tests.conftest import Mailbox
from tests.rp import PASSWORD
from tests.signin.browser import force_sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_locked_second_factor_mails_the_person(mailbox: Mailbox) -> None:
    address = f"ada-{uuid.uuid4().hex[:10]}@example.com"
    person = user_create(email=address, name="Ada Lovelace", password=PASSWORD)
    enrolment = totp_enrol(user=person, name="Phone")
    earlier = timezone.now() - timedelta(seconds=60)
    totp_confirm(
        device=enrolment.device, code=pyotp.TOTP(enrolment.secret).at(earlier), now=earlier
    )
    totp = pyotp.TOTP(enrolment.secret)
    valid = {totp.at(timezone.now() + timedelta(seconds=30 * step)) for step in (-1, 0, 1)}
    wrong = next(code for code in ("000000", "111111", "222222") if code not in valid)
    http = HttpClient()
    http.post("/login", {"email": address, "password": PASSWORD})
    for _ in range(settings.MFA_LOCKOUT_THRESHOLD):
        answer = http.post("/login/second-factor", {"method": "totp", "code": wrong})
    assert b"is locked for" in answer.content

    notice = mailbox.wait_for(to=address, subject_contains="second sign-in step was locked")
    body = notice.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "change it now" in text
    assert "Hello Ada" in text


def test_codes_guessed_on_the_confirmation_page_lock_and_mail_alike(mailbox: Mailbox) -> None:
    """The re-authentication page (apps/signin/reauthentication.py) counts on the same second-
    factor counter, and its lock tells the person as the sign-in's does."""
    address = f"ada-{uuid.uuid4().hex[:10]}@example.com"
    person = user_create(email=address, name="Ada Lovelace", password=PASSWORD)
    enrolment = totp_enrol(user=person, name="Phone")
    earlier = timezone.now() - timedelta(seconds=60)
    totp_confirm(
        device=enrolment.device, code=pyotp.TOTP(enrolment.secret).at(earlier), now=earlier
    )
    totp = pyotp.TOTP(enrolment.secret)
    valid = {totp.at(timezone.now() + timedelta(seconds=30 * step)) for step in (-1, 0, 1)}
    wrong = next(code for code in ("000000", "111111", "222222") if code not in valid)
    http = HttpClient()
    force_sign_in(http, person)
    for _ in range(settings.MFA_LOCKOUT_THRESHOLD):
        answer = http.post("/account/security/confirm", {"method": "code", "code": wrong})
    assert b"is locked for" in answer.content

    notice = mailbox.wait_for(to=address, subject_contains="second sign-in step was locked")
    assert notice.get_body(preferencelist=("plain",)) is not None
