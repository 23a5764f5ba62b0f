"""DPoP (RFC 9449) test steps: a client's key pair that makes proofs as a client library does
(PyJWT signs them; the tests alter what an attacker or a broken client would), and the code
flow of tests/tokens with a DPoP header on the token and resource requests."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.test import Client as HttpClient
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from apps.tokens import dpop
from apps.tokens.clients import clients_cache_clear
from apps.tokens.models import Client
from tests.rp import REDIRECT_URI, RegisteredClient
from tests.tokens import conftest as tokens
from tests.tokens.conftest import TOKEN, USERINFO, Flow, basic, new_pkce

# tests/tokens' fixtures, here too
register, signed_in, flow = tokens.register, tokens.signed_in, tokens.flow

TOKEN_URL = settings.ISSUER + TOKEN
USERINFO_URL = settings.ISSUER + USERINFO
PAR = "/oauth/par"
PAR_URL = settings.ISSUER + PAR


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def ath(access_token: str) -> str:
    """RFC 9449 §4.2: base64url SHA-256 of the access token's ASCII."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def new_private_key(alg: str) -> Any:
    if alg.startswith("ES"):
        curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
        return ec.generate_private_key(curve[alg])
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(private_key: Any) -> dict[str, Any]:
    public = private_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(public, as_dict=True))
    if isinstance(public, ed25519.Ed25519PublicKey):
        return dict(OKPAlgorithm.to_jwk(public, as_dict=True))
    return dict(RSAAlgorithm.to_jwk(public, as_dict=True))


class DPoPKey:
    """A client's DPoP key pair: proofs as RFC 9449 §4.2 shapes them, the nonce included by
    default (the server demands one unless IDP_DPOP_NONCE_REQUIRED is off)."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        self.private_key = new_private_key(alg)
        self.jwk = public_jwk(self.private_key)

    @property
    def jkt(self) -> str:
        """RFC 7638 thumbprint, computed by jwcrypto (an implementation not ours)."""
        from jwcrypto.jwk import JWK

        return str(JWK(**self.jwk).thumbprint())

    def proof(
        self,
        method: str = "POST",
        url: str = TOKEN_URL,
        *,
        access_token: str | None = None,
        nonce: str | None = "current",
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        payload: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time()),
        }  # fmt: skip
        if access_token is not None:
            payload["ath"] = ath(access_token)
        if nonce == "current":
            nonce = dpop.current_nonce()
        if nonce is not None:
            payload["nonce"] = nonce
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        headers = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return jwt.encode(payload, self.private_key, algorithm=self.alg, headers=headers)


def token_post(
    http: HttpClient, data: dict[str, str], *, rp: RegisteredClient | None, proof: str | None
) -> Any:
    headers = {"DPoP": proof} if proof is not None else {}
    if rp is not None and rp.client_secret:
        headers["Authorization"] = basic(rp.client_id, rp.client_secret)
    elif rp is not None:
        data = {**data, "client_id": rp.client_id}
    return http.post(TOKEN, data, headers=headers)


def exchange(
    rp_flow: Flow, code: str, verifier: str, proof: str | None, rp: RegisteredClient | None = None
) -> Any:
    data = {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }  # fmt: skip
    return token_post(rp_flow.http, data, rp=rp or rp_flow.rp, proof=proof)


def bound_tokens(rp_flow: Flow, key: DPoPKey, **authorize: str) -> dict[str, Any]:
    """The code flow with a DPoP proof of `key` at the token endpoint."""
    pkce = new_pkce()
    response = exchange(rp_flow, rp_flow.code(pkce, **authorize), pkce.verifier, key.proof())
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def dpop_userinfo(http: HttpClient, access_token: str, proof: str | None) -> Any:
    headers = {"Authorization": f"DPoP {access_token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return http.get(USERINFO, headers=headers)


def claims_of(access_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return claims


def error_of(response: Any) -> str:
    return str(json.loads(response.content).get("error"))


def require_dpop(rp: RegisteredClient) -> None:
    """RFC 9449 §5.2 dpop_bound_access_tokens for a registered client."""
    client = Client.objects.get(client_id=rp.client_id)
    client.dpop_bound_access_tokens = True
    client.save(update_fields=["dpop_bound_access_tokens"])
    clients_cache_clear()


@pytest.fixture
def key() -> DPoPKey:
    return DPoPKey()


@pytest.fixture
def machine(register: Any) -> RegisteredClient:
    """A confidential client of the client_credentials grant: the shortest road to the token
    endpoint, where most proof checks are tried."""
    rp: RegisteredClient = register(grant_types=["client_credentials"])
    return rp
