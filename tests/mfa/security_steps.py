"""What the security-page tests and the re-authentication tests both do: a software
authenticator for the test issuer, a sign-in made stale, WebAuthn options fetched and a
passkey added through the security page's two POSTs."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.test import Client as HttpClient
from django.utils import timezone

from apps.sessions.models import LoginSession
from tests.mfa.authenticator import SoftAuthenticator

ORIGIN = "https://id.example.com"


def authenticator(**kwargs: Any) -> SoftAuthenticator:
    return SoftAuthenticator(origin=ORIGIN, rp_id="id.example.com", **kwargs)


def stale(session: LoginSession) -> None:
    """The sign-in was longer ago than a sensitive change allows (5 minutes)."""
    LoginSession.objects.filter(pk=session.pk).update(
        authenticated_at=timezone.now() - timedelta(minutes=10)
    )


def options(http: HttpClient, url: str) -> dict[str, Any]:
    response = http.post(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    data: dict[str, Any] = response.json()
    return data


def add_passkey(
    http: HttpClient, device: SoftAuthenticator, name: str = "Laptop", **bend: Any
) -> Any:
    data = options(http, "/account/security/passkeys/options")
    credential = device.create(json.dumps(data["publicKey"]), **bend)
    return http.post(
        "/account/security/passkeys",
        {"ceremony": data["ceremony"], "credential": json.dumps(credential), "name": name},
    )
