"""A process whose key-encryption key cannot open the signing keys (a wrong
IDP_KEY_ENCRYPTION_KEY, a restore without the old key): the token endpoint answers RFC 6749
§5.2 temporarily_unavailable with 503 and Retry-After, never a 500, logs what to check, and
spends nothing, so the same code works once the key is right again."""

from __future__ import annotations

import logging
import os

import pytest
import requests

from apps.core.models import SecurityEvent
from apps.keys import keys
from apps.tokens.services import client_create
from tests.tokens.conftest import Flow, new_pkce

pytestmark = pytest.mark.django_db

WRONG = os.urandom(32)


def _restart_with_kek(settings, kek: bytes) -> None:
    """As a process started with IDP_KEY_ENCRYPTION_KEY=kek and no old keys: the keys were
    created in this test, so the reload has no key it opened before to reuse. (A separate
    server process: tests/operations/test_kek_wrong_key.py.)"""
    settings.KEY_ENCRYPTION_KEY, settings.KEY_ENCRYPTION_KEYS_OLD = kek, ()
    keys.keys_cache_clear()


def _assert_unavailable(status: int, headers, body: dict[str, str]) -> None:
    assert status == 503, body
    assert body["error"] == "temporarily_unavailable"
    assert "access_token" not in body
    assert headers["Retry-After"] == "30"
    assert headers["Cache-Control"] == "no-store"


def test_code_exchange_is_503_and_the_code_still_works_once_the_key_opens(
    flow: Flow, settings, caplog
) -> None:
    caplog.set_level(logging.ERROR, logger="tessera.unavailable")
    keys.jwks()  # the signing keys exist, sealed under the right key
    right = settings.KEY_ENCRYPTION_KEY
    pkce = new_pkce()
    code = flow.code(pkce)

    _restart_with_kek(settings, WRONG)
    refused = flow.exchange(code, pkce.verifier)
    _assert_unavailable(refused.status_code, refused, refused.json())
    assert not SecurityEvent.objects.filter(event_type="token.issued").exists()
    logged = [r.getMessage() for r in caplog.records if "refused with 503" in r.getMessage()]
    assert len(logged) == 1
    assert "IDP_KEY_ENCRYPTION_KEY" in logged[0]

    _restart_with_kek(settings, right)  # the operator fixed the key: nothing was spent
    issued = flow.exchange(code, pkce.verifier)
    assert issued.status_code == 200, issued.content
    assert {"access_token", "id_token", "refresh_token"} <= set(issued.json())


def test_client_credentials_over_http_is_503_not_500(live_server, settings) -> None:
    keys.jwks()
    client, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    _restart_with_kek(settings, WRONG)
    response = requests.post(
        f"{live_server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, secret),
        timeout=30,
    )
    _assert_unavailable(response.status_code, response.headers, response.json())
