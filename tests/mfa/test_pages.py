"""Enrolment pages (apps/mfa/views.py): an authenticator app with a server-drawn QR code, and
recovery codes shown once. No inline script and no inline style on them (CSP-clean); the
security page loads the one external WebAuthn script."""

from __future__ import annotations

import re
from typing import Any

import pyotp
import pytest
from django.test import Client as HttpClient

from apps.mfa.models import RecoveryCode, TotpDevice
from tests.accounts.factories import UserFactory
from tests.signin.browser import force_sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def person() -> Any:
    return UserFactory(email="ada@example.com")


@pytest.fixture
def signed_in(person: Any) -> HttpClient:
    http = HttpClient()
    force_sign_in(http, person)
    return http


def _csp_clean(html: str) -> None:
    assert re.findall(r"<script(?![^>]*\ssrc=)", html) == []  # external scripts only
    assert " style=" not in html
    assert "javascript:" not in html


def _secret(html: str) -> str:
    [key] = re.findall(r'<code class="secret"[^>]*>([A-Z2-7 ]+)</code>', html)
    return key.replace(" ", "")


def test_anonymous_visitors_are_sent_to_sign_in(client: HttpClient) -> None:
    for url in ("/account/security/", "/account/security/totp"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login?next=")


def test_authenticator_app_is_added_with_a_qr_code_and_a_first_code(
    signed_in: HttpClient, person: Any
) -> None:
    page = signed_in.get("/account/security/")
    assert page.status_code == 200
    _csp_clean(page.content.decode())

    started = signed_in.post("/account/security/totp/new", {"name": "Phone"})
    assert started.status_code == 302
    assert started["Location"] == "/account/security/totp"

    setup = signed_in.get("/account/security/totp")
    html = setup.content.decode()
    assert setup.status_code == 200
    _csp_clean(html)
    assert "<svg" in html
    assert "QR code for your authenticator app" in html
    secret = _secret(html)
    assert TotpDevice.objects.get(user=person).confirmed_at is None

    wrong = signed_in.post("/account/security/totp", {"code": "12"})
    assert wrong.status_code == 400
    assert 'aria-invalid="true"' in wrong.content.decode()

    confirmed = signed_in.post("/account/security/totp", {"code": pyotp.TOTP(secret).now()})
    assert confirmed.status_code == 302
    assert TotpDevice.objects.get(user=person).confirmed_at is not None
    listing = signed_in.get("/account/security/").content.decode()
    assert "Phone" in listing
    assert "Authenticator app" in listing


def test_totp_page_without_a_pending_device_goes_back(signed_in: HttpClient) -> None:
    response = signed_in.get("/account/security/totp")
    assert response.status_code == 302
    assert response["Location"] == "/account/security/"


def test_recovery_codes_are_shown_once_on_the_post_answer(
    signed_in: HttpClient, person: Any
) -> None:
    assert signed_in.get("/account/security/recovery-codes").status_code == 405
    response = signed_in.post("/account/security/recovery-codes")
    html = response.content.decode()
    assert response.status_code == 200
    _csp_clean(html)
    codes = re.findall(r"<code>([A-Z2-7]{4}(?:-[A-Z2-7]{4}){3})</code>", html)
    assert len(set(codes)) == 10
    assert RecoveryCode.objects.filter(code_set__user=person).count() == 10
    assert response["Cache-Control"].startswith("max-age=0")
    assert codes[0] not in signed_in.get("/account/security/").content.decode()
