"""Passwordless sign-in with a passkey (apps/signin/passwordless.py) against a software
authenticator: the login page's options and finish endpoints, the session they open (amr and
level, apps/sessions/levels.py), refusals that say why and record login.failed, `next` kept
on our own pages, and the per-IP rate limit."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.core.models import SecurityEvent
from apps.mfa.models import WebAuthnCredential
from apps.mfa.passkeys import (
    MAX_RESPONSE_BYTES,
    webauthn_registration_begin,
    webauthn_registration_finish,
)
from apps.ratelimit import limiter
from apps.ratelimit.rules import rules_reload
from apps.sessions.levels import ACR_HARDWARE_KEY, ACR_MFA
from apps.sessions.models import LoginSession
from tests.accounts.factories import UserFactory
from tests.mfa.authenticator import SoftAuthenticator
from tests.ratelimit.conftest import set_rule

pytestmark = pytest.mark.django_db

ORIGIN = "https://id.example.com"


@pytest.fixture(autouse=True)
def _issuer(settings: Any) -> None:
    settings.ISSUER = ORIGIN


def _registered(**kwargs: Any) -> tuple[Any, SoftAuthenticator]:
    user = UserFactory(email="ada@example.com")
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id="id.example.com", **kwargs)
    ceremony = webauthn_registration_begin(user=user)
    webauthn_registration_finish(
        user=user,
        ceremony_id=ceremony.id,
        response=authenticator.create(ceremony.options_json),
        name="Phone",
    )
    return user, authenticator


def _options(http: HttpClient) -> dict[str, Any]:
    response = http.post("/login/passkey/options", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    data: dict[str, Any] = response.json()
    return data


def _sign_in(http: HttpClient, authenticator: SoftAuthenticator, next_url: str = "", **bend: Any):
    data = _options(http)
    answer = authenticator.get(json.dumps(data["publicKey"]), **bend)
    return http.post(
        "/login/passkey",
        {"ceremony": data["ceremony"], "credential": json.dumps(answer), "next": next_url},
    )


def _failures() -> list[str | None]:
    return list(
        SecurityEvent.objects.filter(event_type="login.failed").values_list("error_code", flat=True)
    )


def test_login_page_offers_passkeys_by_autofill_and_by_button(client: HttpClient) -> None:
    html = client.get("/login?next=/account/").content.decode()
    # WebAuthn L3 §5.1.4.1: conditional mediation fills passkeys into this field.
    assert 'autocomplete="username webauthn"' in html
    form = re.search(r'<form[^>]*data-webauthn="conditional"[^>]*>', html)
    assert form is not None
    assert 'action="/login/passkey"' in form.group(0)
    assert 'data-options-url="/login/passkey/options"' in form.group(0)
    assert "Sign in with a passkey</button>" in html
    assert re.findall(r"<script(?![^>]*\ssrc=)", html) == []
    assert html.count('name="next" value="/account/"') == 2


def test_options_require_user_verification_and_name_no_one(client: HttpClient) -> None:
    _registered()
    public_key = _options(client)["publicKey"]
    assert public_key["userVerification"] == "required"  # WebAuthn L2 §6.2.3
    assert public_key.get("allowCredentials", []) == []
    assert public_key["rpId"] == "id.example.com"


def test_device_bound_passkey_signs_in_at_the_hardware_key_level(client: HttpClient) -> None:
    user, authenticator = _registered()
    signed_in = _sign_in(client, authenticator, next_url="/account/")
    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/account/"
    session = LoginSession.objects.get(user=user)
    # RFC 8176: hwk (not backup eligible) + mfa (user verified): two factors, one device-bound.
    assert session.amr == ["hwk", "mfa"]
    assert (session.security_level, session.acr) == (3, ACR_HARDWARE_KEY)
    assert client.get("/account/").status_code == 200
    [event] = SecurityEvent.objects.filter(event_type="login.succeeded")
    assert event.user_id == str(user.pk)
    assert event.metadata["amr"] == ["hwk", "mfa"]
    assert SecurityEvent.objects.filter(event_type="mfa.succeeded").count() == 1


def test_synced_passkey_signs_in_at_the_mfa_level(client: HttpClient) -> None:
    user, authenticator = _registered(backup_eligible=True, backed_up=True)
    assert _sign_in(client, authenticator).status_code == 302
    session = LoginSession.objects.get(user=user)
    assert session.amr == ["swk", "mfa"]
    assert (session.security_level, session.acr) == (2, ACR_MFA)


@pytest.mark.parametrize(
    "target", ["https://evil.example.com/", "//evil.example.com/x", "javascript:alert(1)"]
)
def test_next_stays_on_our_pages(client: HttpClient, target: str) -> None:
    _, authenticator = _registered()
    signed_in = _sign_in(client, authenticator, next_url=target)
    assert signed_in["Location"] == "/"


def test_passkey_without_user_verification_is_refused(client: HttpClient) -> None:
    user, authenticator = _registered()
    authenticator.user_verified = False
    refused = _sign_in(client, authenticator)
    assert refused.status_code == 400
    assert "could not be verified" in refused.content.decode()
    assert not LoginSession.objects.filter(user=user).exists()
    assert _failures() == ["invalid_response"]
    assert SecurityEvent.objects.filter(event_type="mfa.failed").count() == 1


BENDS = [
    pytest.param({"origin": "https://evil.example.com"}, id="origin"),
    pytest.param({"rp_id": "evil.example.com"}, id="rp-id"),
    pytest.param({"challenge": b"another challenge"}, id="challenge"),
    pytest.param({"user_handle": b"someone else"}, id="user-handle"),
]


@pytest.mark.parametrize("bend", BENDS)
def test_wrong_challenge_origin_rp_id_or_handle_is_a_clear_400(
    client: HttpClient, bend: dict[str, Any]
) -> None:
    user, authenticator = _registered()
    refused = _sign_in(client, authenticator, **bend)
    assert refused.status_code == 400
    html = refused.content.decode()
    assert 'class="error" role="alert">Your passkey could not be verified.' in html
    assert not LoginSession.objects.filter(user=user).exists()
    assert len(_failures()) == 1


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param("{not json", id="malformed-json"),
        pytest.param('"a string"', id="not-an-object"),
        pytest.param('{"id": "AA", "rawId": "AA", "type": "public-key"}', id="no-response"),
        pytest.param(json.dumps({"pad": "x" * MAX_RESPONSE_BYTES}), id="oversized"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_or_oversized_answer_is_a_clear_400(client: HttpClient, credential: str) -> None:
    data = _options(client)
    refused = client.post(
        "/login/passkey", {"ceremony": data["ceremony"], "credential": credential}
    )
    assert refused.status_code == 400
    assert "cannot read" in refused.content.decode()
    assert _failures() == ["malformed_input"]


def test_a_challenge_signs_in_once(client: HttpClient) -> None:
    _, authenticator = _registered()
    data = _options(client)
    body = {
        "ceremony": data["ceremony"],
        "credential": json.dumps(authenticator.get(json.dumps(data["publicKey"]))),
    }
    assert client.post("/login/passkey", body).status_code == 302
    replayed = HttpClient().post("/login/passkey", body)
    assert replayed.status_code == 400
    assert _failures() == ["expired_challenge"]
    unknown = HttpClient().post("/login/passkey", {**body, "ceremony": "y" * 10_000})
    assert unknown.status_code == 400


def test_cloned_passkey_is_blocked_with_a_clear_message(client: HttpClient) -> None:
    user, authenticator = _registered()
    assert _sign_in(HttpClient(), authenticator, sign_count=7).status_code == 302
    refused = _sign_in(client, authenticator, sign_count=7)  # WebAuthn L2 §6.1.1
    assert refused.status_code == 400
    assert "may have been copied" in refused.content.decode()
    assert WebAuthnCredential.objects.get(user=user).clone_detected_at is not None
    assert _failures() == ["cloned_authenticator"]
    assert LoginSession.objects.filter(user=user).count() == 1


def test_deactivated_account_is_refused_like_a_failed_passkey(client: HttpClient) -> None:
    user, authenticator = _registered()
    user.is_active = False
    user.save(update_fields=["is_active"])
    refused = _sign_in(client, authenticator)
    assert refused.status_code == 400
    assert "could not be verified" in refused.content.decode()
    assert not LoginSession.objects.filter(user=user).exists()
    assert _failures() == ["wrong_credentials"]


def test_endpoints_take_posts_under_csrf_only() -> None:
    strict = HttpClient(enforce_csrf_checks=True)
    assert strict.get("/login/passkey/options").status_code == 405
    assert strict.get("/login/passkey").status_code == 405
    assert strict.post("/login/passkey/options").status_code == 403
    assert strict.post("/login/passkey", {"ceremony": "x", "credential": "{}"}).status_code == 403


@pytest.fixture
def real_limits(settings: Any) -> Iterator[None]:
    settings.RATELIMIT_ALLOW = ()  # the suite allow-lists loopback for unrelated tests
    set_rule(settings, "passkey.ip", "3/1m burst=3")
    limiter.local_store.entries.clear()
    yield
    rules_reload()
    limiter.local_store.entries.clear()


def test_passkey_sign_in_is_rate_limited_per_client_ip(real_limits: None) -> None:
    http = HttpClient(REMOTE_ADDR="203.0.113.7")
    for _ in range(3):
        assert (
            http.post("/login/passkey/options", HTTP_ACCEPT="application/json").status_code == 200
        )
    refused = http.post("/login/passkey/options", HTTP_ACCEPT="application/json")
    assert refused.status_code == 429
    assert refused.json()["error"] == "temporarily_unavailable"
    assert "Retry-After" in refused
    finish = http.post("/login/passkey", {"ceremony": "x", "credential": "{}"})
    assert finish.status_code == 429
    other = HttpClient(REMOTE_ADDR="203.0.113.8")
    assert other.post("/login/passkey/options").status_code == 200
