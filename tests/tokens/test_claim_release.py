"""What an access token says about the person: the profile claims by the scope rules userinfo
follows (OIDC Core §5.4), always the authorization picture and the security context, the
session's device in `did`, and the client IP only when the operator asks for it."""

from __future__ import annotations

import jwt
import pytest
from django.test import Client as HttpClient

from apps.sessions.models import LoginSession
from apps.tokens.validation import validate_access_token
from tests.tokens.conftest import TOKEN, Flow, form_post, new_pkce, userinfo

pytestmark = pytest.mark.django_db

ALWAYS = ("uid", "provider", "orgs", "workspaces", "groups", "perms", "sid", "did", "ver",
          "login_at", "refresh_at")  # fmt: skip


@pytest.mark.parametrize(
    ("scope", "released"),
    [
        ("openid", {}),
        ("openid email", {"email": "ada@example.com"}),
        ("openid profile", {"name": "Ada Lovelace"}),
        ("openid profile email", {"email": "ada@example.com", "name": "Ada Lovelace"}),
    ],
)
def test_profile_claims_follow_the_scope_as_at_userinfo(
    flow: Flow, scope: str, released: dict[str, str]
) -> None:
    tokens = flow.tokens(scope=scope)
    claims = validate_access_token(tokens["access_token"])

    assert {name: claims[name] for name in ("email", "name") if name in claims} == released
    for name in ALWAYS:
        assert name in claims, name
    # the same rule as userinfo (which adds email_verified to email)
    info = userinfo(flow.http, tokens["access_token"]).json()
    assert {name: info[name] for name in ("email", "name") if name in info} == released


def test_did_is_the_login_sessions_device_id(flow: Flow, person) -> None:
    pkce = new_pkce()
    code = flow.code(pkce)
    # bound at login from the device cookie (apps.sessions.binding); set here after the
    # browser's last request, which the binding check would otherwise refuse
    LoginSession.objects.filter(user=person).update(device_id="d3v1ce-1d-of-the-browser")
    relying_party = Flow(HttpClient(), flow.rp)  # the RP's server, not the browser
    tokens = relying_party.exchange(code, pkce.verifier).json()

    claims = validate_access_token(tokens["access_token"])

    assert claims["did"] == "d3v1ce-1d-of-the-browser"
    refreshed = relying_party.refresh(tokens["refresh_token"]).json()
    assert validate_access_token(refreshed["access_token"])["did"] == "d3v1ce-1d-of-the-browser"


def test_the_client_ip_is_left_out_unless_configured(flow: Flow, settings) -> None:
    # Personal data every resource server would log (GDPR Art. 5(1)(c)): off by default.
    assert "ip" not in validate_access_token(flow.tokens()["access_token"])

    settings.ACCESS_TOKEN_IP_CLAIM = True
    assert validate_access_token(flow.tokens()["access_token"])["ip"] == "127.0.0.1"


def test_a_client_credentials_token_carries_nothing_about_a_person(
    client: HttpClient, register
) -> None:
    machine = register(grant_types=["client_credentials"], redirect_uris=[])
    response = form_post(client, TOKEN, {"grant_type": "client_credentials"}, auth=machine)

    claims = validate_access_token(response.json()["access_token"])

    assert claims["sub"] == claims["client_id"] == machine.client_id
    assert (claims["uid"], claims["sid"], claims["did"]) == (None, None, "")
    assert "email" not in claims
    assert "name" not in claims
    assert "ip" not in claims


@pytest.mark.parametrize("verified", [False, True])
def test_email_verified_says_whether_the_person_verified_their_address(
    flow: Flow, person, verified: bool
) -> None:
    """OIDC Core §5.1: `email_verified` is true only once the person followed a verification
    link to this address (apps/signin/recovery.py email_verify sets the column)."""
    type(person).objects.filter(pk=person.pk).update(email_verified=verified)
    tokens = flow.tokens(scope="openid email")

    id_token = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert id_token["email_verified"] is verified
    assert userinfo(flow.http, tokens["access_token"]).json()["email_verified"] is verified
