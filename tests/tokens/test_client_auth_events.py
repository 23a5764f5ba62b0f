"""Failed client authentication at the token, introspection and revocation endpoints records
one client.auth_failed event: the client id as given, the endpoint, how the client tried, and
where from; never the secret it tried (apps/tokens/clients.authentication_failed).

RFC 6749 §2.3.1 / §5.2 invalid_client, RFC 7009 §2.1, RFC 7662 §2.1; OWASP ASVS 4.0 V7.2.1
(log authentication decisions, without the credentials).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.core.models import SecurityEvent
from apps.tokens.models import Client
from apps.tokens.services import consent_grant
from tests.events import recorded
from tests.rp import REDIRECT_URI, RegisteredClient
from tests.tokens.conftest import (
    INTROSPECT,
    SCOPE,
    TOKEN,
    Flow,
    client_redirect,
    form_post,
    new_pkce,
)

pytestmark = pytest.mark.django_db

REVOKE = "/oauth/revoke"
PAR = "/oauth/par"
WRONG_SECRET = "wrong-secret-Zq7vKp2mXw9tLr4sNe8yBh3cDf6gJa1u"
UNKNOWN_ID = "no-such-client-c41f0e"
LONG_ID = "L" * 5000
RESOURCE_ID_LENGTH = SecurityEvent._meta.get_field("resource_id").max_length


@dataclass(frozen=True)
class Endpoint:
    path: str
    data: dict[str, str]


ENDPOINTS = {
    "token (authorization_code)": Endpoint(
        TOKEN,
        {"grant_type": "authorization_code", "code": "c0de-2b9e", "redirect_uri": REDIRECT_URI,
         "code_verifier": "v" * 43},
    ),
    "token (refresh_token)": Endpoint(
        TOKEN, {"grant_type": "refresh_token", "refresh_token": "r3fresh-8d1a"}
    ),
    "token (client_credentials)": Endpoint(TOKEN, {"grant_type": "client_credentials"}),
    "introspect": Endpoint(INTROSPECT, {"token": "some-token-5f2c"}),
    "revoke": Endpoint(REVOKE, {"token": "some-token-5f2c"}),
    # RFC 9126 §2: the pushed authorization request endpoint authenticates as /token does
    "par": Endpoint(PAR, {"response_type": "code", "redirect_uri": REDIRECT_URI,
                          "scope": "openid", "code_challenge": "c" * 43,
                          "code_challenge_method": "S256"}),
}  # fmt: skip


@dataclass(frozen=True)
class Way:
    """How the client tries: its id as sent (None: rp's own), the secret it sends (None:
    no secret at all, only client_id in the body), where, and the method recorded."""

    client_id: str | None
    secret: str | None
    auth_in: str
    method: str


WAYS = {
    "basic, wrong secret": Way(None, WRONG_SECRET, "basic", "client_secret_basic"),
    "basic, unknown id": Way(UNKNOWN_ID, WRONG_SECRET, "basic", "client_secret_basic"),
    "post, wrong secret": Way(None, WRONG_SECRET, "post", "client_secret_post"),
    "post, unknown id": Way(UNKNOWN_ID, WRONG_SECRET, "post", "client_secret_post"),
    "no credentials, confidential client": Way(None, None, "body", "none"),
    "basic, 5000-character id": Way(LONG_ID, WRONG_SECRET, "basic", "client_secret_basic"),
    "post, 5000-character id": Way(LONG_ID, WRONG_SECRET, "post", "client_secret_post"),
}


def _attempt(http: HttpClient, endpoint: Endpoint, way: Way, rp: RegisteredClient) -> Any:
    client_id = way.client_id or rp.client_id
    if way.secret is None:
        return form_post(http, endpoint.path, {**endpoint.data, "client_id": client_id})
    return form_post(
        http, endpoint.path, endpoint.data, auth=(client_id, way.secret), auth_in=way.auth_in
    )


def assert_no_secret_in(event: SecurityEvent, *secrets: str) -> None:
    """No field of the event, as text, holds any of `secrets`."""
    for field in SecurityEvent._meta.concrete_fields:
        value = getattr(event, field.attname)
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        for secret in secrets:
            assert secret not in text, (field.name, text[:200])


@pytest.mark.parametrize("way", WAYS.keys())
@pytest.mark.parametrize("endpoint", ENDPOINTS.keys())
def test_failed_client_authentication_records_one_client_auth_failed(
    client: HttpClient, rp: RegisteredClient, endpoint: str, way: str
) -> None:
    # RFC 6749 §5.2 invalid_client (401 with a Basic challenge); the event says who was
    # claimed, where, how, and from which address (OWASP ASVS 4.0 V7.2.1)
    target, how = ENDPOINTS[endpoint], WAYS[way]
    given = how.client_id or rp.client_id

    with recorded() as events:
        response = _attempt(client, target, how, rp)

    assert response.status_code == 401, (response.status_code, response.content[:300])
    assert response.json()["error"] == "invalid_client"
    assert response["WWW-Authenticate"].startswith("Basic")
    [event] = events
    assert event.event_type == "client.auth_failed"
    assert (event.success, event.severity, event.error_code) == (False, "low", "invalid_client")
    assert (event.resource_type, event.resource_id) == ("client", given[:RESOURCE_ID_LENGTH])
    assert event.metadata == {"client_id": given[:200], "endpoint": target.path,
                              "method": how.method}  # fmt: skip
    assert event.ip_address == "127.0.0.1"
    assert event.user_id == ""
    assert_no_secret_in(event, WRONG_SECRET, rp.client_secret or "")


def test_long_client_id_is_cut_to_the_columns(client: HttpClient) -> None:
    # A client id as given may be any length; the event keeps what its columns hold
    # (resource_id) and the first 200 characters in metadata, and the request stays a 401.
    with recorded() as events:
        response = form_post(client, TOKEN, {"grant_type": "refresh_token", "refresh_token": "x"},
                             auth=(LONG_ID, WRONG_SECRET))  # fmt: skip
    assert response.status_code == 401
    [event] = events
    assert len(event.resource_id) == RESOURCE_ID_LENGTH < len(LONG_ID)
    assert len(event.metadata["client_id"]) == 200


# --- successful client authentication records no client.auth_failed -----------------------


def _public_flow(
    http: HttpClient, register: Callable[..., RegisteredClient], person
) -> tuple[RegisteredClient, Any]:
    public = register(public=True)
    client = Client.objects.get(client_id=public.client_id)
    consent_grant(user_id=person.pk, client=client, scopes=SCOPE.split())
    pkce = new_pkce()
    code = client_redirect(Flow(http, public).authorize(pkce))["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce.verifier, "client_id": public.client_id}  # fmt: skip
    return public, form_post(http, TOKEN, data)


def test_successful_client_authentication_records_no_client_auth_failed(
    flow: Flow, register, person
) -> None:
    # Only a failure is client.auth_failed: tokens issued, refreshed, introspected and revoked
    # by an authenticated client (Basic and POST), and a public client naming itself
    # (RFC 6749 §3.2.1), record none.
    machine = register(grant_types=["client_credentials"], redirect_uris=[])
    with recorded() as events:
        tokens = flow.tokens()
        refreshed = flow.refresh(tokens["refresh_token"])
        assert refreshed.status_code == 200
        issued = form_post(flow.http, TOKEN, {"grant_type": "client_credentials"}, auth=machine,
                           auth_in="post")  # fmt: skip
        assert issued.status_code == 200
        token = refreshed.json()["access_token"]
        introspected = form_post(flow.http, INTROSPECT, {"token": token}, auth=flow.rp)
        assert introspected.json()["active"] is True
        revoked = form_post(flow.http, REVOKE, {"token": token}, auth=flow.rp, auth_in="post")
        assert revoked.status_code == 200
        public, exchanged = _public_flow(flow.http, register, person)
        assert exchanged.status_code == 200, exchanged.content
        public_revoke = form_post(
            flow.http, REVOKE,
            {"token": exchanged.json()["access_token"], "client_id": public.client_id},
        )  # fmt: skip
        assert public_revoke.status_code == 200
    kinds = {event.event_type for event in events}
    assert "token.issued" in kinds  # the block did record events, just not this one
    assert "client.auth_failed" not in kinds


def test_authenticated_client_with_a_bad_grant_records_no_client_auth_failed(flow: Flow) -> None:
    # RFC 6749 §5.2: invalid_grant is not a failed client authentication
    with recorded() as events:
        response = flow.exchange("no-such-code-0b7e", new_pkce().verifier)
    assert response.json()["error"] == "invalid_grant"
    assert not [event for event in events if event.event_type == "client.auth_failed"]
