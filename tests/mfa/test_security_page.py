"""The person's security page (apps/mfa/views.py): a passkey added through the pages' two
POSTs (options, then the browser's answer) with a software authenticator; a factor removed
only after a fresh authentication (OWASP ASVS 4.0.3 V3.7.1; the confirmation page itself:
tests/signin/test_reauthentication.py); bad WebAuthn input answered with a clear message and
400, never a 500."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.core.models import SecurityEvent
from apps.mfa.models import WebAuthnCredential
from apps.mfa.passkeys import MAX_RESPONSE_BYTES
from apps.sessions.models import LoginSession
from tests.accounts.factories import UserFactory
from tests.mfa.security_steps import ORIGIN, add_passkey, options, stale
from tests.mfa.security_steps import authenticator as soft_authenticator
from tests.rp import PASSWORD
from tests.signin.browser import force_sign_in

pytestmark = pytest.mark.django_db


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


def test_security_page_offers_a_passkey_form_for_the_one_script(signed_in: Any) -> None:
    http, _ = signed_in
    html = http.get("/account/security/").content.decode()
    tag = r'<script src="/static/mfa/webauthn\.[0-9a-f]+\.js" nonce="[^"]+" defer></script>'
    assert re.search(tag, html)
    assert re.findall(r"<script(?![^>]*\ssrc=)", html) == []
    assert ' style="' not in html
    form = re.search(r'<form[^>]*data-webauthn="create"[^>]*>', html)
    assert form is not None
    assert 'data-options-url="/account/security/passkeys/options"' in form.group(0)
    assert 'action="/account/security/passkeys"' in form.group(0)
    for hidden in ('name="ceremony"', 'name="credential"', "data-webauthn-error"):
        assert hidden in html
    assert 'action="/account/sessions/sign-out-others"' in html
    assert "old codes stop working" in html


def test_passkey_is_added_through_the_pages_and_listed(signed_in: Any, person: Any) -> None:
    http, _ = signed_in
    data = options(http, "/account/security/passkeys/options")
    assert data["publicKey"]["rp"]["id"] == "id.example.com"
    assert data["publicKey"]["extensions"] == {"credProps": True}  # WebAuthn L2 §10.4

    authenticator = soft_authenticator(backup_eligible=True, backed_up=True)
    credential = authenticator.create(json.dumps(data["publicKey"]))
    added = http.post(
        "/account/security/passkeys",
        {"ceremony": data["ceremony"], "credential": json.dumps(credential), "name": " My  phone "},
    )
    assert added.status_code == 302
    assert added["Location"] == "/account/security/#factors"
    stored = WebAuthnCredential.objects.get(user=person)
    assert (stored.name, stored.discoverable, stored.backup_eligible) == ("My phone", True, True)

    html = http.get("/account/security/").content.decode()
    assert "My phone" in html
    assert "was added" in html
    assert ">passkey</span>" in html  # synced: backup eligible
    assert f'href="/account/security/remove/webauthn/{stored.pk}"' in html


def test_adding_a_factor_needs_a_recent_sign_in(signed_in: Any, person: Any) -> None:
    http, session = signed_in
    stale(session)
    page = http.get("/account/security/").content.decode()
    assert 'data-webauthn="create"' not in page
    assert "/account/security/confirm?next=" in page

    refused = http.post("/account/security/passkeys/options", HTTP_ACCEPT="application/json")
    assert refused.status_code == 403
    assert "Confirm it is you" in refused.json()["error"]
    finish = http.post("/account/security/passkeys", {"ceremony": "x", "credential": "{}"})
    assert finish.status_code == 302
    assert finish["Location"].startswith("/account/security/confirm?next=")
    totp = http.post("/account/security/totp/new", {"name": "Phone"})
    assert totp["Location"].startswith("/account/security/confirm?next=")
    codes = http.post("/account/security/recovery-codes")
    assert codes["Location"].startswith("/account/security/confirm?next=")

    confirmed = http.post(
        "/account/security/confirm",
        {"method": "password", "password": PASSWORD, "next": "/account/security/#passkeys"},
    )
    assert confirmed.status_code == 302
    assert confirmed["Location"] == "/account/security/#passkeys"
    assert add_passkey(http, soft_authenticator()).status_code == 302
    assert WebAuthnCredential.objects.filter(user=person).count() == 1


BENDS = [
    pytest.param({"origin": "https://evil.example.com"}, id="origin"),
    pytest.param({"rp_id": "evil.example.com"}, id="rp-id"),
    pytest.param({"challenge": b"not the challenge we sent"}, id="challenge"),
]


@pytest.mark.parametrize("bend", BENDS)
def test_wrong_challenge_origin_or_rp_id_is_a_clear_400(
    signed_in: Any, person: Any, bend: dict[str, Any]
) -> None:
    http, _ = signed_in
    refused = add_passkey(http, soft_authenticator(), **bend)
    assert refused.status_code == 400
    html = refused.content.decode()
    assert "could not be verified" in html
    assert 'role="alert"' in html
    assert not WebAuthnCredential.objects.filter(user=person).exists()
    assert SecurityEvent.objects.filter(event_type="mfa.failed", user_id=person.pk).exists()


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param("{not json", id="malformed-json"),
        pytest.param("[]", id="not-an-object"),
        pytest.param('{"id": "x", "rawId": "x", "type": "public-key"}', id="no-response"),
        pytest.param(json.dumps({"pad": "x" * MAX_RESPONSE_BYTES}), id="oversized"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_or_oversized_registration_is_a_clear_400(
    signed_in: Any, credential: str
) -> None:
    http, _ = signed_in
    data = options(http, "/account/security/passkeys/options")
    refused = http.post(
        "/account/security/passkeys", {"ceremony": data["ceremony"], "credential": credential}
    )
    assert refused.status_code == 400
    assert "cannot read" in refused.content.decode()


def test_unknown_or_reused_ceremony_is_a_clear_400(signed_in: Any) -> None:
    http, _ = signed_in
    authenticator = soft_authenticator()
    data = options(http, "/account/security/passkeys/options")
    body = {"ceremony": data["ceremony"], "name": "Key"}
    body["credential"] = json.dumps(authenticator.create(json.dumps(data["publicKey"])))
    assert http.post("/account/security/passkeys", body).status_code == 302
    again = http.post("/account/security/passkeys", body)
    assert again.status_code == 400
    assert "expired or was already used" in again.content.decode()
    forged = http.post("/account/security/passkeys", {**body, "ceremony": "x" * 5000})
    assert forged.status_code == 400


def test_a_ceremony_begun_by_someone_else_is_refused(signed_in: Any, person: Any) -> None:
    other = HttpClient()
    force_sign_in(other, UserFactory(email="mallory@example.com"))
    theirs = options(other, "/account/security/passkeys/options")
    http, _ = signed_in
    response = soft_authenticator().create(json.dumps(theirs["publicKey"]))
    refused = http.post(
        "/account/security/passkeys",
        {"ceremony": theirs["ceremony"], "credential": json.dumps(response)},
    )
    assert refused.status_code == 400
    assert not WebAuthnCredential.objects.exists()


def test_removing_a_factor_needs_a_fresh_authentication(signed_in: Any, person: Any) -> None:
    http, session = signed_in
    assert add_passkey(http, soft_authenticator()).status_code == 302
    credential = WebAuthnCredential.objects.get(user=person)
    remove_url = f"/account/security/remove/webauthn/{credential.pk}"
    stale(session)

    asked = http.get(remove_url)
    assert asked.status_code == 302
    assert asked["Location"] == f"/account/security/confirm?next={remove_url.replace('/', '%2F')}"
    posted = http.post(remove_url)  # straight to the POST: still refused
    assert posted.status_code == 302
    assert posted["Location"].startswith("/account/security/confirm?next=")
    assert WebAuthnCredential.objects.filter(pk=credential.pk).exists()

    page = http.get(asked["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-webauthn="get"' in html  # the passkey itself, or the password
    assert 'autocomplete="current-password"' in html

    wrong = http.post(
        "/account/security/confirm", {"method": "password", "password": "nope", "next": remove_url}
    )
    assert wrong.status_code == 400
    assert "The current password is incorrect." in wrong.content.decode()
    assert SecurityEvent.objects.filter(
        event_type="login.failed", user_id=person.pk, error_code="wrong_credentials"
    ).exists()
    assert http.get(remove_url).status_code == 302

    confirmed = http.post(
        "/account/security/confirm",
        {"method": "password", "password": PASSWORD, "next": remove_url},
    )
    assert confirmed["Location"] == remove_url
    confirm_page = http.get(remove_url)
    assert confirm_page.status_code == 200
    assert "Remove “Laptop”?" in confirm_page.content.decode()
    removed = http.post(remove_url)
    assert removed.status_code == 302
    assert not WebAuthnCredential.objects.filter(pk=credential.pk).exists()
    [event] = SecurityEvent.objects.filter(event_type="mfa.removed")
    assert event.actor_id == str(person.pk)


def test_unknown_factor_is_not_a_500(signed_in: Any) -> None:
    http, _ = signed_in
    assert http.get("/account/security/remove/webauthn/not-a-uuid").status_code == 404
    assert (
        http.get("/account/security/remove/nope/00000000-0000-0000-0000-000000000000").status_code
        == 404
    )


def test_someone_elses_factor_cannot_be_removed(signed_in: Any) -> None:
    other = HttpClient()
    force_sign_in(other, UserFactory(email="mallory@example.com"))
    assert add_passkey(other, soft_authenticator()).status_code == 302
    theirs = WebAuthnCredential.objects.get()
    http, _ = signed_in
    assert http.post(f"/account/security/remove/webauthn/{theirs.pk}").status_code == 404
    assert WebAuthnCredential.objects.filter(pk=theirs.pk).exists()
