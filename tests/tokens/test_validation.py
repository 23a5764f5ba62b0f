"""The access-token validation service (apps/tokens/validation.py), called directly and
through /oauth/userinfo, and token introspection (RFC 7662).

Every forged or broken token must end as InvalidToken / 401 invalid_token (RFC 6750 §3.1),
never as another exception. Forgeries follow RFC 8725 §2 (alg none, algorithm confusion,
cross-JWT confusion) and RFC 9068 §4 (validating JWT access tokens).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.test import Client as HttpClient
from django.utils import timezone

from apps.core import revocation
from apps.keys import keys
from apps.sessions.models import LoginSession
from apps.tokens.claims import new_jti
from apps.tokens.services import client_create
from apps.tokens.validation import InvalidToken, validate_access_token
from tests.rp import RegisteredClient
from tests.tokens.conftest import (
    INTROSPECT,
    USERINFO,
    Flow,
    b64json,
    b64url,
    form_post,
    hs256_token,
    public_key_secrets,
    unsigned_token,
    userinfo,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _rp() -> None:
    """The client the minted tokens name: validation refuses a token of an unknown client."""
    client_create(name="RP", redirect_uris=["https://rp.example/cb"], client_id="rp")


class Minter:
    """Mints access tokens with our own signing keys (apps.keys.keys.signing_key)."""

    def __init__(self, user) -> None:
        self.user = user

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": settings.ISSUER, "sub": str(self.user.pk), "aud": settings.ISSUER,
            "exp": now + 600, "iat": now, "nbf": now, "jti": new_jti(), "client_id": "rp",
            "scope": "openid email", "typ": "access", "ver": 1, "uid": str(self.user.pk),
            "sid": str(uuid.uuid4()),
        }  # fmt: skip
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def token(
        self,
        claims: dict[str, Any] | None = None,
        *,
        alg: str | None = None,
        typ: str = "at+jwt",
        kid: str | None = "ours",
        extra_headers: dict[str, Any] | None = None,
    ) -> str:
        key = keys.signing_key(alg or settings.ACCESS_TOKEN_ALG)
        headers: dict[str, Any] = {"typ": typ, **(extra_headers or {})}
        if kid is not None:
            headers["kid"] = key.kid if kid == "ours" else kid
        return jwt.encode(claims or self.claims(), key.private_key, key.alg, headers)


@pytest.fixture
def minter(person) -> Minter:
    return Minter(person)


def assert_refused(http: HttpClient, token: str) -> None:
    """Both doors: the service raises InvalidToken, userinfo answers 401 invalid_token."""
    with pytest.raises(InvalidToken):
        validate_access_token(token)
    response = userinfo(http, token)
    assert response.status_code == 401
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert response.json()["error"] == "invalid_token"


def test_minted_token_is_valid_so_the_forgeries_below_fail_for_their_own_reason(
    client: HttpClient, minter: Minter, person
) -> None:
    # RFC 9068 §4: the control case
    token = minter.token()
    assert validate_access_token(token)["uid"] == str(person.pk)
    response = userinfo(client, token)
    assert response.status_code == 200
    assert response.json() == {"sub": str(person.pk), "email": person.email,
                               "email_verified": False}  # fmt: skip


def _tamper(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims.update(changes)
    return f"{header}.{b64json(claims)}.{signature}"


def _foreign_es256(m: Minter) -> str:
    foreign = ec.generate_private_key(ec.SECP256R1())
    kid = keys.signing_key("ES256").kid
    return jwt.encode(m.claims(), foreign, "ES256", {"kid": kid, "typ": "at+jwt"})


def _hs256_with_public_key(alg: str, index: int) -> Callable[[Minter], str]:
    def forge(m: Minter) -> str:
        kid = keys.signing_key(alg).kid
        secret = public_key_secrets(alg)[index]
        return hs256_token({"alg": "HS256", "typ": "at+jwt", "kid": kid}, m.claims(), secret)

    return forge


def _alg_none(spelling: str) -> Callable[[Minter], str]:
    def forge(m: Minter) -> str:
        kid = keys.signing_key(settings.ACCESS_TOKEN_ALG).kid
        return unsigned_token({"alg": spelling, "typ": "at+jwt", "kid": kid}, m.claims())

    return forge


def _header(value: str) -> Callable[[Minter], str]:
    def forge(m: Minter) -> str:
        _, payload, signature = m.token().split(".")
        return f"{value}.{payload}.{signature}"

    return forge


def _payload_char(token: str, char: str) -> str:
    header, payload, signature = token.split(".")
    return ".".join((header, payload[:5] + char + payload[6:], signature))


FORGERIES: dict[str, Callable[[Minter], str]] = {
    # RFC 8725 §2.1 / §3.1: alg none in any spelling
    "alg none": _alg_none("none"),
    "alg noNE": _alg_none("noNE"),
    "alg None": _alg_none("None"),
    "alg NONE, signature kept": lambda m: _header(
        b64json({"alg": "NONE", "typ": "at+jwt", "kid": keys.signing_key("ES256").kid})
    )(m),
    # RFC 8725 §2.1: HS256 keyed with our public key (PEM, DER, JWK JSON)
    "HS256 with ES256 public PEM": _hs256_with_public_key("ES256", 0),
    "HS256 with ES256 public DER": _hs256_with_public_key("ES256", 1),
    "HS256 with ES256 public JWK": _hs256_with_public_key("ES256", 2),
    "HS256 with RS256 public PEM": _hs256_with_public_key("RS256", 0),
    "HS256 with RS256 public DER": _hs256_with_public_key("RS256", 1),
    # RFC 8725 §3.1: the algorithm is the key's
    "RS256 token naming the ES256 kid": lambda m: _header(
        b64json({"alg": "RS256", "typ": "at+jwt", "kid": keys.signing_key("ES256").kid})
    )(m),
    "foreign key, our kid": _foreign_es256,
    "unknown kid": lambda m: m.token(kid="c0ffee-unknown-kid"),
    "no kid": lambda m: m.token(kid=None),
    "kid not a string": lambda m: _header(b64json({"alg": "ES256", "typ": "at+jwt", "kid": 7}))(m),
    # RFC 7519 §4.1.4 / §4.1.5 (beyond the 30 s leeway)
    "expired": lambda m: m.token(m.claims(exp=int(time.time()) - 120)),
    "nbf in the future": lambda m: m.token(m.claims(nbf=int(time.time()) + 120)),
    "iat in the future": lambda m: m.token(m.claims(iat=int(time.time()) + 120)),
    # RFC 7519 §2: NumericDate is a number
    "exp a string": lambda m: m.token(m.claims(exp=str(int(time.time()) + 600))),
    "exp true": lambda m: m.token(m.claims(exp=True)),
    "no nbf": lambda m: m.token(m.claims(nbf=None)),
    "aud a number": lambda m: m.token(m.claims(aud=7)),
    "aud an object": lambda m: m.token(m.claims(aud={"aud": settings.ISSUER})),
    # RFC 7515 §4.1.11: a critical extension we do not understand
    "crit header": lambda m: m.token(extra_headers={"crit": ["exp"], "exp": 1}),
    # RFC 7515 §2: base64url without padding or other characters
    "signature with padding": lambda m: m.token() + "==",
    "signature with a space": lambda m: m.token()[:-4] + " " + m.token()[-3:],
    "payload with a plus": lambda m: _payload_char(m.token(), "+"),
    # RFC 9068 §4: aud and iss
    "wrong aud": lambda m: m.token(m.claims(aud="https://other-api.example.com")),
    "wrong iss": lambda m: m.token(m.claims(iss="https://evil.example")),
    "iss with trailing slash": lambda m: m.token(m.claims(iss=settings.ISSUER + "/")),
    "no exp": lambda m: m.token(m.claims(exp=None)),
    "no jti": lambda m: m.token(m.claims(jti=None)),
    # RFC 8725 §3.11 / RFC 9068 §2.1: an ID token (typ JWT) is no access token
    "ID token (typ JWT)": lambda m: m.token(alg="RS256", typ="JWT"),
    "no typ header": lambda m: _header(
        b64json({"alg": "ES256", "kid": keys.signing_key("ES256").kid})
    )(m),
    "typ claim not access": lambda m: m.token(m.claims(typ="id")),
    # RFC 7515 §5.2: the signature covers the payload
    "tampered payload": lambda m: _tamper(m.token(), uid=str(uuid.uuid4()), scope="openid admin"),
    "truncated signature": lambda m: m.token()[:-6],
    "no signature": lambda m: m.token().rsplit(".", 1)[0] + ".",
    "two parts": lambda m: m.token().rsplit(".", 1)[0],
    "four parts": lambda m: m.token() + ".AAAA",
    "100 KB": lambda m: m.token(m.claims(pad="A" * 100_000)),
    "100 KB of dots": lambda m: "." * 100_000,
    # RFC 7515 §5.2 step 3: the header must be a JSON object
    "non-JSON header": _header(b64url("not json at all")),
    "header is a JSON list": _header(b64url('["alg", "ES256"]')),
    "header is a JSON string": _header(b64url('"ES256"')),
    "header is null": _header(b64url("null")),
    "header not base64": _header("!!!$$$"),
    "header not UTF-8": _header(b64url(b"\xff\xfe\xfa")),
    "header non-ASCII": _header("ëÿ"),
    "header deeply nested JSON": _header(b64url("[" * 5000)),
}


@pytest.mark.parametrize("forgery", FORGERIES.keys())
def test_forged_and_broken_tokens_are_invalid_token(
    client: HttpClient, minter: Minter, forgery: str
) -> None:
    # RFC 6750 §3.1 invalid_token; RFC 8725 §3.1; RFC 9068 §4
    assert_refused(client, FORGERIES[forgery](minter))


def test_token_older_than_the_minimum_version_is_refused(
    client: HttpClient, minter: Minter, settings
) -> None:
    # settings.ACCESS_TOKEN_MIN_VERSION retires old token formats
    token = minter.token(minter.claims(ver=1))
    settings.ACCESS_TOKEN_MIN_VERSION = 2
    assert_refused(client, token)
    assert_refused(client, minter.token(minter.claims(ver="2")))  # not an integer
    assert validate_access_token(minter.token(minter.claims(ver=2)))["ver"] == 2


def test_revoked_jti_is_refused(client: HttpClient, minter: Minter) -> None:
    # RFC 7009 §2.2 (the revocation list of apps/core/revocation.py)
    claims = minter.claims()
    token = minter.token(claims)
    assert validate_access_token(token)
    revocation.revoke_jti(claims["jti"], expires_in=600)
    assert_refused(client, token)


def test_revoked_session_is_refused(client: HttpClient, minter: Minter) -> None:
    # OIDC RP-Initiated Logout / session revocation: every token of the sid dies
    claims = minter.claims()
    token = minter.token(claims)
    assert validate_access_token(token)
    revocation.revoke_sid(claims["sid"])
    assert_refused(client, token)


def test_other_audience_is_accepted_only_when_asked_for(minter: Minter) -> None:
    # RFC 9068 §4 step 3 / RFC 8707: a resource server validates its own audience
    token = minter.token(minter.claims(aud="https://api.example.com"))
    assert validate_access_token(token, audience="https://api.example.com")["aud"]
    with pytest.raises(InvalidToken):
        validate_access_token(token)


# --- userinfo: how the token travels (RFC 6750 §2) ---------------------------------------


def test_token_in_the_query_string_is_not_accepted(client: HttpClient, minter: Minter) -> None:
    # RFC 9700 §4.3.2: no access tokens in query strings (RFC 6750 §2.3): refused with a
    # clear invalid_request, not mistaken for a missing token
    response = client.get(USERINFO, {"access_token": minter.token()})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "URL" in response.json()["error_description"]
    assert 'error="invalid_request"' in response["WWW-Authenticate"]
    assert "sub" not in response.json()


def test_userinfo_without_a_token_is_a_bare_bearer_challenge(client: HttpClient) -> None:
    # RFC 6750 §3.1: no error code when the request had no authentication
    with pytest.raises(InvalidToken):
        validate_access_token("")
    response = client.get(USERINFO)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer ")
    assert "error=" not in response["WWW-Authenticate"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(client: HttpClient, minter: Minter, scheme) -> None:
    # RFC 7235 §2.1: auth-scheme is case-insensitive; oidcc-userinfo-get
    response = client.get(USERINFO, headers={"Authorization": f"{scheme} {minter.token()}"})
    assert response.status_code == 200


def test_userinfo_by_post_with_the_header(client: HttpClient, minter: Minter) -> None:
    # OIDC Core §5.3.1; oidcc-userinfo-post-header
    response = client.post(USERINFO, headers={"Authorization": f"Bearer {minter.token()}"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"


def test_basic_credentials_are_no_bearer_token(client: HttpClient, minter: Minter) -> None:
    # RFC 6750 §2.1
    response = client.get(USERINFO, headers={"Authorization": f"Basic {minter.token()}"})
    assert response.status_code == 401


def test_token_without_openid_scope_is_insufficient_scope(client, minter: Minter) -> None:
    # OIDC Core §5.3: userinfo needs the openid scope; RFC 6750 §3.1 insufficient_scope
    response = userinfo(client, minter.token(minter.claims(scope="email")))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]


def test_token_of_a_deactivated_user_is_refused(client: HttpClient, minter: Minter, person):
    # OIDC Core §5.3.3: the user behind the token no longer exists for us
    token = minter.token()
    person.is_active = False
    person.save(update_fields=["is_active"])
    assert userinfo(client, token).status_code == 401


def test_issued_token_is_refused_after_revocation(flow: Flow) -> None:
    # RFC 7009 §2.1: revoking the refresh token also revokes its access token
    tokens = flow.tokens()
    response = form_post(
        flow.http, "/oauth/revoke", {"token": tokens["refresh_token"]}, auth=flow.rp
    )
    assert response.status_code == 200
    assert userinfo(flow.http, tokens["access_token"]).status_code == 401
    assert flow.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


# --- introspection (RFC 7662) --------------------------------------------------------------


def _introspect(http: HttpClient, rp: RegisteredClient | tuple[str, str] | None, **data: str):
    return form_post(http, INTROSPECT, data, auth=rp)


def test_introspection_of_a_live_access_token_is_active(flow: Flow, person) -> None:
    # RFC 7662 §2.2
    tokens = flow.tokens()
    response = _introspect(flow.http, flow.rp, token=tokens["access_token"])
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["sub"] == str(person.pk)
    assert body["client_id"] == flow.rp.client_id
    assert body["exp"] > time.time()


@pytest.mark.parametrize("hint", ["access_token", "refresh_token"])
def test_introspection_searches_past_a_wrong_hint(flow: Flow, hint: str) -> None:
    # RFC 7662 §2.1: "If the server is unable to locate the token using the given hint, it
    # MUST extend its search across all of its supported token types."
    tokens = flow.tokens()
    access = _introspect(flow.http, flow.rp, token=tokens["access_token"], token_type_hint=hint)
    refresh = _introspect(flow.http, flow.rp, token=tokens["refresh_token"], token_type_hint=hint)
    assert access.json()["active"] is True
    assert refresh.json()["active"] is True


def test_introspection_of_a_revoked_access_token_is_inactive(flow: Flow) -> None:
    # RFC 7662 §2.2: revoked tokens are not active
    tokens = flow.tokens()
    form_post(flow.http, "/oauth/revoke", {"token": tokens["access_token"]}, auth=flow.rp)
    response = _introspect(flow.http, flow.rp, token=tokens["access_token"])
    assert response.json() == {"active": False}


@pytest.mark.parametrize("token", ["garbage", "", "a.b.c", "A" * 100_000])
def test_introspection_of_garbage_is_inactive(flow: Flow, token: str) -> None:
    # RFC 7662 §2.2
    response = _introspect(flow.http, flow.rp, token=token)
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json() == {"active": False}


def test_introspection_of_a_refresh_token(flow: Flow, person) -> None:
    # RFC 7662 §2.2 token_type
    tokens = flow.tokens()
    body = _introspect(flow.http, flow.rp, token=tokens["refresh_token"]).json()
    assert body["active"] is True
    assert body["token_type"] == "refresh_token"
    assert body["client_id"] == flow.rp.client_id
    assert body["sub"] == str(person.pk)


def test_introspection_of_a_rotated_refresh_token_is_inactive(flow: Flow) -> None:
    # RFC 9700 §4.14.2: a rotated refresh token is no longer usable
    tokens = flow.tokens()
    assert flow.refresh(tokens["refresh_token"]).status_code == 200
    body = _introspect(flow.http, flow.rp, token=tokens["refresh_token"]).json()
    assert body == {"active": False}


def test_introspection_of_a_refresh_token_of_an_ended_session_is_inactive(flow: Flow) -> None:
    # RFC 7662 §2.2: logout ended it
    from apps.sessions.services import session_end

    tokens = flow.tokens()
    session_end(session=LoginSession.objects.get(), reason="logout")
    assert _introspect(flow.http, flow.rp, token=tokens["refresh_token"]).json() == {
        "active": False
    }


def test_introspection_of_a_refresh_token_of_an_expired_session_is_inactive(flow: Flow) -> None:
    # RFC 7662 §2.2: the token endpoint refuses it (session no longer live), so it is not
    # active; introspection and the token endpoint must agree
    tokens = flow.tokens()
    LoginSession.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert flow.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    body = _introspect(flow.http, flow.rp, token=tokens["refresh_token"]).json()
    assert body["active"] is False


def test_introspection_needs_a_confidential_client(flow: Flow, register) -> None:
    # RFC 7662 §2.1: the caller must be authorized; RFC 6749 §5.2 invalid_client
    token = flow.tokens()["access_token"]
    public = register(public=True)
    for caller in (
        (flow.rp.client_id, "wrong-secret"),
        (public.client_id, ""),
        ("no-such-client", "x"),
        None,
    ):
        response = _introspect(flow.http, caller, token=token)
        assert response.status_code == 401, caller
        assert response.json()["error"] == "invalid_client"
        assert "active" not in response.json()
    response = form_post(flow.http, INTROSPECT, {"token": token, "client_id": public.client_id})
    assert response.status_code == 401


def test_introspection_with_a_nul_byte_in_the_client_id_is_400(lenient_client) -> None:
    # RFC 6749 §5.2 invalid_request (a malformed parameter value), never a 500
    response = _introspect(lenient_client, ("abc\x00def", "x"), token="x")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    response = form_post(lenient_client, INTROSPECT, {"token": "x", "client_id": "abc\x00def"})
    assert response.status_code == 400
