"""A relying party that knows nothing about us, using Authlib (OAuth2Session) with the ID
token checked by joserfc against our JWKS, runs the whole flow against a live server.

OpenID conformance basic plan: oidcc-server, oidcc-userinfo-get, oidcc-userinfo-post-body,
oidcc-refresh-token, oidcc-scope-*, oidcc-rp-initiated-logout (RP-Initiated Logout 1.0); and
OIDC Core §11 offline access; acr_values and max_age (OIDC Core §3.1.2.1) with step-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet

from apps.accounts.models import User
from apps.sessions.levels import ACR_MFA, ACR_PASSWORD
from apps.sessions.models import LoginSession
from apps.tokens.models import OfflineGrant
from apps.tokens.services import user_access_revoke_all
from tests.rp import POST_LOGOUT_URI, REDIRECT_URI, TotpCodes, new_verifier, totp_enrolled

pytestmark = pytest.mark.django_db(transaction=True)


def _discover(live_server) -> dict:
    metadata = requests.get(
        f"{live_server.url}/.well-known/openid-configuration", timeout=10
    ).json()
    assert metadata["issuer"] == live_server.url
    return metadata


@pytest.fixture
def rp_session(rp) -> Iterator[Callable[..., OAuth2Session]]:
    """Authlib sessions for the registered client, closed after the test so that no
    kept-alive connection holds a live-server thread."""
    opened: list[OAuth2Session] = []

    def open_session(**kwargs: object) -> OAuth2Session:
        kwargs.setdefault("scope", "openid profile email")
        session = OAuth2Session(
            rp.client_id, rp.client_secret, redirect_uri=REDIRECT_URI,
            code_challenge_method="S256", **kwargs,
        )  # fmt: skip
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


def _sign_in(
    hosted_pages, metadata, client: OAuth2Session, *,
    second_factor: Callable[[], str] | None = None, **params: str,
) -> tuple[dict, str]:  # fmt: skip
    verifier, nonce = new_verifier(), new_verifier()
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **params
    )
    response = hosted_pages.visit(url, second_factor=second_factor)
    assert response.is_redirect, f"{response.status_code} {response.url}\n{response.text[:1500]}"
    location = response.headers["Location"]
    params = parse_qs(urlsplit(location).query)
    assert params["state"] == [state]
    assert params["iss"] == [metadata["issuer"]]  # RFC 9207
    token = client.fetch_token(
        metadata["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    return token, nonce


def test_whole_flow_with_authlib(live_server, hosted_pages, person, rp, rp_session) -> None:
    metadata = _discover(live_server)
    client = rp_session()

    token, nonce = _sign_in(hosted_pages, metadata, client)

    # ID token (OIDC Core §3.1.3.7) verified against the published JWKS
    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": metadata["issuer"]},
        aud={"essential": True, "value": rp.client_id},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True, "value": str(person.pk)},
        exp={"essential": True},
        auth_time={"essential": True},
    ).validate(id_token.claims)
    assert id_token.claims["amr"] == ["pwd"]
    assert id_token.claims["acr"]
    assert id_token.claims["at_hash"]
    assert id_token.claims["sid"]

    # RFC 9068 access token with the product's claim set
    access = jwt.decode(token["access_token"], keys, algorithms=["ES256"])
    assert access.header["typ"] == "at+jwt"
    for claim in ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "uid",
                  "email", "name", "provider", "orgs", "workspaces", "groups", "perms", "typ",
                  "sid", "did", "ver", "login_at", "refresh_at"):  # fmt: skip
        assert claim in access.claims, claim
    assert "ip" not in access.claims  # personal data, only with IDP_ACCESS_TOKEN_IP_CLAIM
    assert access.claims["typ"] == "access"
    assert access.claims["sid"] == id_token.claims["sid"]
    session = LoginSession.objects.get(pk=access.claims["sid"])
    assert access.claims["did"] == session.device_id != ""
    assert access.claims["exp"] - access.claims["iat"] == 900
    assert token["expires_in"] == 900

    # userinfo (OIDC Core §5.3), GET with the bearer header
    info = client.get(metadata["userinfo_endpoint"]).json()
    assert info == {
        "sub": str(person.pk), "email": "ada@example.com", "email_verified": False,
        "name": "Ada Lovelace",
    }  # fmt: skip

    # introspection (RFC 7662)
    introspected = client.introspect_token(
        metadata["introspection_endpoint"], token=token["access_token"]
    ).json()
    assert introspected["active"] is True
    assert introspected["sub"] == str(person.pk)
    assert introspected["client_id"] == rp.client_id

    # refresh rotates (RFC 9700 §4.14.2), then replaying the old one kills the whole grant
    first_refresh = token["refresh_token"]
    refreshed = client.refresh_token(metadata["token_endpoint"], refresh_token=first_refresh)
    assert refreshed["refresh_token"] != first_refresh
    assert jwt.decode(refreshed["access_token"], keys).claims["refresh_at"] is not None
    with pytest.raises(OAuthError) as replay:
        client.refresh_token(metadata["token_endpoint"], refresh_token=first_refresh)
    assert replay.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as dead:
        client.refresh_token(metadata["token_endpoint"], refresh_token=refreshed["refresh_token"])
    assert dead.value.error == "invalid_grant"
    rejected = requests.get(
        metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {refreshed['access_token']}"}, timeout=10,
    )  # fmt: skip
    assert rejected.status_code == 401

    # a new sign-in, then revocation (RFC 7009) of its access token
    token, _ = _sign_in(hosted_pages, metadata, rp_session())
    client = rp_session(token=token)
    revoked = client.revoke_token(metadata["revocation_endpoint"], token=token["access_token"])
    assert revoked.status_code == 200
    after = requests.get(
        metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10,
    )  # fmt: skip
    assert after.status_code == 401
    assert 'error="invalid_token"' in after.headers["WWW-Authenticate"]

    # RP-initiated logout with our ID token as hint and a registered redirect
    logout = hosted_pages.http.get(
        metadata["end_session_endpoint"],
        params={"id_token_hint": token["id_token"], "post_logout_redirect_uri": POST_LOGOUT_URI,
                "state": "bye"},
        allow_redirects=False, timeout=10,
    )  # fmt: skip
    assert logout.status_code == 302
    assert logout.headers["Location"] == f"{POST_LOGOUT_URI}?state=bye"

    # the browser session is over: a silent authorization request needs a login
    verifier = new_verifier()
    url, _ = rp_session().create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, prompt="none"
    )
    silent = hosted_pages.http.get(url, allow_redirects=False, timeout=10)
    assert parse_qs(urlsplit(silent.headers["Location"]).query)["error"] == ["login_required"]


def test_offline_access_with_authlib_outlives_the_sign_in(
    live_server, hosted_pages, person, rp, rp_session
) -> None:
    # OIDC Core §11 (offline_access with prompt=consent), §3.1.2.1 (an unknown scope value is
    # ignored), RFC 6749 §5.1 (the response's scope says what was granted).
    metadata = _discover(live_server)
    assert "offline_access" in metadata["scopes_supported"]
    client = rp_session(scope="openid email offline_access unknown-scope")

    token, nonce = _sign_in(hosted_pages, metadata, client, prompt="consent")

    assert token["scope"] == "openid email offline_access"
    assert token["refresh_token"]
    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": metadata["issuer"]},
        aud={"essential": True, "value": rp.client_id},
        nonce={"essential": True, "value": nonce},
    ).validate(id_token.claims)
    access = jwt.decode(token["access_token"], keys, algorithms=["ES256"]).claims
    # profile claims by scope, as userinfo releases them: email asked, name (profile) not
    assert access["email"] == "ada@example.com"
    assert "name" not in access
    assert access["sid"] is None  # the offline grant's tokens belong to the grant
    expected = {"sub": str(person.pk), "email": "ada@example.com", "email_verified": False}
    assert client.get(metadata["userinfo_endpoint"]).json() == expected
    # RFC 6750 §2.2 (pyoic's default): the token in a form-encoded POST body
    body_client = rp_session(token=token, token_placement="body")
    form = {"Content-Type": "application/x-www-form-urlencoded"}  # §2.2 requires it
    assert body_client.post(metadata["userinfo_endpoint"], headers=form).json() == expected

    # The person signs out: the login session ends, the offline grant does not.
    logout = hosted_pages.http.get(
        metadata["end_session_endpoint"], params={"id_token_hint": token["id_token"]},
        allow_redirects=False, timeout=10,
    )  # fmt: skip
    assert logout.status_code == 200
    session = LoginSession.objects.get(pk=id_token.claims["sid"])
    assert session.ended_at is not None
    refreshed = client.refresh_token(
        metadata["token_endpoint"], refresh_token=token["refresh_token"]
    )
    assert refreshed["scope"] == "openid email offline_access"
    assert client.get(metadata["userinfo_endpoint"]).json() == expected
    grant = OfflineGrant.objects.get(user=person)
    assert grant.revoked_at is None

    # "Revoke everything" ends it: no refresh, and its live access token is refused.
    revoked = user_access_revoke_all(user=User.objects.get(pk=person.pk), reason="operator")
    assert revoked.offline_grants_revoked == 1
    with pytest.raises(OAuthError) as dead:
        client.refresh_token(metadata["token_endpoint"], refresh_token=refreshed["refresh_token"])
    assert dead.value.error == "invalid_grant"
    assert dead.value.description
    after = requests.get(
        metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {refreshed['access_token']}"}, timeout=10,
    )  # fmt: skip
    assert after.status_code == 401


def test_offline_access_without_prompt_consent_is_ignored(
    live_server, hosted_pages, person, rp, rp_session
) -> None:
    # OIDC Core §11: without prompt=consent (and no consent given for it before) the request
    # for offline_access is ignored; the refresh token stays bound to the sign-in.
    metadata = _discover(live_server)
    client = rp_session(scope="openid offline_access")

    token, _ = _sign_in(hosted_pages, metadata, client)

    assert token["scope"] == "openid"
    assert not OfflineGrant.objects.exists()
    hosted_pages.http.get(
        metadata["end_session_endpoint"], params={"id_token_hint": token["id_token"]},
        timeout=10,
    )  # fmt: skip
    with pytest.raises(OAuthError) as ended:
        client.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    assert ended.value.error == "invalid_grant"
    assert "sign-in" in ended.value.description


def _id_token_claims(metadata, token: dict, **validation: object) -> dict:
    """OIDC Core §3.1.3.7 as Authlib's CodeIDToken checks it (acr values, auth_time required
    with max_age, amr an array), the signature by joserfc against our JWKS."""
    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    options = validation.pop("options", {})
    claims = CodeIDToken(decoded.claims, decoded.header, options=options, params=validation)
    claims.validate(leeway=5)
    return dict(claims)


def test_acr_values_and_max_age_with_authlib(
    live_server, hosted_pages, person, rp, rp_session
) -> None:
    # OIDC Core §3.1.2.1 acr_values and max_age, §2 acr/amr/auth_time, §3.1.3.7 (13): the RP
    # checks auth_time itself after max_age. The second factor is typed on the real
    # second-factor page (/login/second-factor), a code computed from the enrolled secret.
    metadata = _discover(live_server)
    assert ACR_MFA in metadata["acr_values_supported"]
    client = rp_session()
    token, nonce = _sign_in(hosted_pages, metadata, client)
    first = _id_token_claims(
        metadata, token, nonce=nonce, client_id=rp.client_id,
        options={"acr": {"essential": True, "values": [ACR_PASSWORD]}},
    )  # fmt: skip
    assert first["amr"] == ["pwd"]
    assert hosted_pages.filled == ["password", "consent"]

    # The person sets up an authenticator app after signing in (as on the security page).
    codes = TotpCodes(totp_enrolled(person))

    # acr_values asking for MFA: the live session is asked for the second factor alone, not
    # a whole new sign-in (step_up), and goes on to the client.
    verifier, nonce = new_verifier(), new_verifier()
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce,
        acr_values=ACR_MFA,
    )  # fmt: skip
    asked = hosted_pages.http.get(url, allow_redirects=False, timeout=10)
    assert asked.status_code == 302
    to_sign_in = parse_qs(urlsplit(asked.headers["Location"]).query)
    assert to_sign_in["step_up"] == [ACR_MFA]
    hosted_pages.filled.clear()
    back = hosted_pages.visit(urljoin(live_server.url, asked.headers["Location"]),
                              second_factor=codes)  # fmt: skip
    assert back.is_redirect, f"{back.status_code} {back.url}\n{back.text[:1500]}"
    assert hosted_pages.filled == ["second-factor"]  # no password, no consent again
    location = back.headers["Location"]
    assert parse_qs(urlsplit(location).query)["state"] == [state]
    token = client.fetch_token(
        metadata["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    stepped = _id_token_claims(
        metadata, token, nonce=nonce, client_id=rp.client_id,
        options={"acr": {"essential": True, "values": [ACR_MFA]}},
    )  # fmt: skip
    assert stepped["amr"] == ["pwd", "otp"]
    assert stepped["sid"] == first["sid"]  # the same sign-in, stepped up
    assert stepped["auth_time"] >= first["auth_time"]
    session = LoginSession.objects.get(pk=first["sid"])
    assert (session.acr, session.amr, session.security_level) == (ACR_MFA, ["pwd", "otp"], 2)
    access = jwt.decode(
        token["access_token"],
        KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json()),
        algorithms=["ES256"],
    ).claims
    assert (access["acr"], access["amr"]) == (ACR_MFA, ["pwd", "otp"])  # RFC 9068 §2.2.1
    assert access["auth_time"] == stepped["auth_time"]

    # max_age=0: the person signs in again, password and then the app (it is enrolled now),
    # with a code not used before; auth_time is after the request.
    asked_at = int(time.time())
    hosted_pages.filled.clear()
    token, nonce = _sign_in(hosted_pages, metadata, client, second_factor=codes, max_age="0")
    assert hosted_pages.filled == ["password", "second-factor"]
    # (a string, as sent: Authlib requires auth_time only for a truthy max_age)
    again = _id_token_claims(metadata, token, nonce=nonce, client_id=rp.client_id, max_age="0")
    assert again["auth_time"] >= asked_at - 1
    assert again["auth_time"] >= stepped["auth_time"]
    assert (again["acr"], again["amr"]) == (ACR_MFA, ["pwd", "otp"])
    assert again["sid"] != first["sid"]  # a new sign-in
