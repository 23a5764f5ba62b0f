"""Steps shared by the protocol tests of apps/tokens: registered clients, PKCE, and the
authorize → token round trip driven through Django's test client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.test import Client as HttpClient

from apps.keys import keys
from apps.tokens.models import Client
from apps.tokens.services import client_create, consent_grant
from tests.rp import REDIRECT_URI, RegisteredClient, new_verifier
from tests.signin.browser import force_sign_in

AUTHORIZE = "/oauth/authorize"
TOKEN = "/oauth/token"
USERINFO = "/oauth/userinfo"
INTROSPECT = "/oauth/introspect"
LOGOUT = "/oauth/logout"
SCOPE = "openid profile email"
STATE = "st-8c1f"


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_pkce() -> Pkce:
    verifier = new_verifier()
    return Pkce(verifier, s256(verifier))


def b64url(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")))


def unverified_payload(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


def hs256_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """A JWT MACed by hand: PyJWT refuses a public key as an HMAC secret, attackers don't."""
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def unsigned_token(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64json(header)}.{b64json(claims)}."


def public_key_secrets(alg: str) -> list[bytes]:
    """Serializations of our public key an HMAC-confusion attacker would try as the secret
    (RFC 8725 §2.1): PEM and DER SubjectPublicKeyInfo, and the published JWK."""
    active = keys.signing_key(alg)
    public = active.private_key.public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return [
        public.public_bytes(serialization.Encoding.PEM, spki),
        public.public_bytes(serialization.Encoding.DER, spki),
        json.dumps(published_jwk(active.kid)).encode(),
    ]


def forged_id_token_hints(sub: object, client_id: str, **extra: Any) -> list[tuple[str, str]]:
    """ID tokens for `sub` that we did not sign (RFC 8725 §2.1, §3.1), named."""
    now = int(time.time())
    claims = {"iss": settings.ISSUER, "sub": str(sub), "aud": client_id, "iat": now,
              "exp": now + 3600, **extra}  # fmt: skip
    kid = keys.signing_key("RS256").kid
    forged = [
        ("alg none", unsigned_token({"alg": "none", "typ": "JWT", "kid": kid}, claims)),
        ("alg None", unsigned_token({"alg": "None", "typ": "JWT", "kid": kid}, claims)),
    ]
    for index, secret in enumerate(public_key_secrets("RS256")):
        header = {"alg": "HS256", "typ": "JWT", "kid": kid}
        forged.append((f"HS256 with public key #{index}", hs256_token(header, claims, secret)))
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged.append(
        ("foreign key, our kid", jwt.encode(claims, foreign, "RS256", {"kid": kid, "typ": "JWT"}))
    )
    forged.append(("not a JWT", "not-a-jwt"))
    return forged


def published_jwk(kid: str) -> dict[str, Any]:
    found = [jwk for jwk in keys.jwks()["keys"] if jwk["kid"] == kid]
    assert found, kid
    return found[0]


def entropy_bits(token: str) -> float:
    """Length times bits per character of the smallest usual alphabet the token fits."""
    for alphabet in (
        string.hexdigits.lower(),
        string.ascii_letters + string.digits,
        string.ascii_letters + string.digits + "-_",
    ):
        if set(token) <= set(alphabet):
            return len(token) * math.log2(len(alphabet))
    raise AssertionError(f"unexpected characters in {token!r}")


def query_of(location: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))


def client_redirect(response: Any, redirect_uri: str = REDIRECT_URI) -> dict[str, str]:
    """The parameters of a redirect back to the relying party (RFC 6749 §4.1.2)."""
    assert response.status_code == 302, (response.status_code, response.content[:500])
    location = response["Location"]
    assert location.split("?")[0] == redirect_uri, location
    return query_of(location)


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencoded id and secret, then base64."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def form_post(
    http: HttpClient,
    path: str,
    data: dict[str, str] | list[tuple[str, str]],
    *,
    auth: RegisteredClient | tuple[str, str] | None = None,
    auth_in: str = "basic",
) -> Any:
    """A form POST as a relying party sends it; auth as client_secret_basic or _post."""
    fields = list(data.items()) if isinstance(data, dict) else list(data)
    headers: dict[str, str] = {}
    if auth is not None:
        client_id, secret = (
            (auth.client_id, auth.client_secret or "")
            if isinstance(auth, RegisteredClient)
            else auth
        )
        if auth_in == "basic":
            headers["Authorization"] = basic(client_id, secret)
        else:
            fields += [("client_id", client_id), ("client_secret", secret)]
    return http.post(
        path, urlencode(fields), content_type="application/x-www-form-urlencoded", headers=headers
    )


def authorize_params(client_id: str, pkce: Pkce | None, **extra: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": STATE,
        "nonce": "n-0S6_WzA2Mj",
        "code_challenge": pkce.challenge if pkce else None,
        "code_challenge_method": "S256" if pkce else None,
    }
    params.update(extra)
    return {key: value for key, value in params.items() if value is not None}


class Flow:
    """One relying party driving the code flow through the Django test client."""

    def __init__(self, http: HttpClient, rp: RegisteredClient) -> None:
        self.http = http
        self.rp = rp

    def authorize(self, pkce: Pkce | None = None, *, method: str = "get", **extra: str | None):
        params = authorize_params(self.rp.client_id, pkce or new_pkce(), **extra)
        if method == "post":
            return self.http.post(AUTHORIZE, params)
        return self.http.get(AUTHORIZE, params)

    def code(self, pkce: Pkce, **extra: str | None) -> str:
        answer = client_redirect(self.authorize(pkce, **extra))
        assert "code" in answer, answer
        return answer["code"]

    def exchange(self, code: str, verifier: str | None, **extra: str) -> Any:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
        if verifier is not None:
            data["code_verifier"] = verifier
        data.update(extra)
        return form_post(self.http, TOKEN, data, auth=self.rp)

    def tokens(self, **extra: str | None) -> dict[str, Any]:
        pkce = new_pkce()
        response = self.exchange(self.code(pkce, **extra), pkce.verifier)
        assert response.status_code == 200, response.content
        body: dict[str, Any] = response.json()
        return body

    def refresh(self, refresh_token: str, rp: RegisteredClient | None = None) -> Any:
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return form_post(self.http, TOKEN, data, auth=rp or self.rp)


def userinfo(http: HttpClient, access_token: str) -> Any:
    return http.get(USERINFO, headers={"Authorization": f"Bearer {access_token}"})


def verify_id_token(token: str, audience: str) -> dict[str, Any]:
    """OIDC Core §3.1.3.7 with our own published key."""
    header = jwt.get_unverified_header(token)
    key = keys.verification_key(header["kid"])
    assert key is not None
    claims: dict[str, Any] = jwt.decode(
        token, key.public_key, algorithms=[key.alg], audience=audience, issuer=settings.ISSUER
    )
    return claims


@pytest.fixture
def register(db) -> Callable[..., RegisteredClient]:
    """Registers a client (apps.tokens.services.client_create) with test defaults."""
    counter = iter(range(1000))

    def _register(**kwargs: Any) -> RegisteredClient:
        kwargs.setdefault("name", f"Client {next(counter)}")
        kwargs.setdefault("redirect_uris", [REDIRECT_URI])
        client, secret = client_create(**kwargs)
        return RegisteredClient(client.client_id, secret)

    return _register


@pytest.fixture
def signed_in(client: HttpClient, person) -> HttpClient:
    """A browser signed in as `person`, with a login session (tests/signin/browser.py)."""
    force_sign_in(client, person)
    return client


@pytest.fixture
def flow(signed_in: HttpClient, rp: RegisteredClient, person) -> Flow:
    """`person` signed in, who already allowed `rp` the default scopes."""
    consent_grant(
        user_id=person.pk, client=Client.objects.get(client_id=rp.client_id), scopes=SCOPE.split()
    )
    return Flow(signed_in, rp)


@pytest.fixture
def sign_in(
    signed_in: HttpClient, person, register: Callable[..., RegisteredClient]
) -> Callable[..., Flow]:
    """Registers a client with `options`, then `person` gets its tokens in the browser."""

    def _sign_in(**options: Any) -> Flow:
        rp = register(**options)
        client = Client.objects.get(client_id=rp.client_id)
        consent_grant(user_id=person.pk, client=client, scopes=SCOPE.split())
        flow = Flow(signed_in, rp)
        flow.tokens()
        return flow

    return _sign_in


@pytest.fixture
def lenient_client() -> HttpClient:
    """A client that returns a 500 as a response instead of raising the view's exception."""
    return HttpClient(raise_request_exception=False)
