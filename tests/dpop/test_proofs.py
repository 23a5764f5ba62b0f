"""RFC 9449 §4.3 proof checks at the token endpoint (a client_credentials request, the shortest
road there): a good proof binds the token; every malformed, forged, replayed or misdirected
proof is invalid_dpop_proof, and hostile input never a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.test import Client as HttpClient
from jwcrypto.jwk import JWK
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from apps.tokens import dpop
from apps.tokens.validation import validate_access_token
from tests.dpop.conftest import (
    TOKEN_URL,
    USERINFO_URL,
    DPoPKey,
    b64url,
    claims_of,
    error_of,
    require_dpop,
    token_post,
)
from tests.tokens.conftest import TOKEN, basic

pytestmark = pytest.mark.django_db

CLIENT_CREDENTIALS = {"grant_type": "client_credentials"}


def _post(http: HttpClient, machine: Any, proof: str | None) -> Any:
    return token_post(http, CLIENT_CREDENTIALS, rp=machine, proof=proof)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_a_valid_proof_binds_the_access_token_to_its_key(client, machine, alg) -> None:
    key = DPoPKey(alg)

    response = _post(client, machine, key.proof())

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "DPoP"  # RFC 9449 §5
    assert claims_of(body["access_token"])["cnf"] == {"jkt": key.jkt}  # §6.1
    assert response["DPoP-Nonce"] == dpop.current_nonce()  # §8.2: a nonce with every answer


def test_without_a_proof_the_token_stays_bearer(client, machine) -> None:
    response = _post(client, machine, None)

    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "Bearer"
    assert "cnf" not in claims_of(response.json()["access_token"])
    assert "DPoP-Nonce" not in response


def test_the_thumbprint_is_rfc_7638s() -> None:
    # RFC 7638 §3.1's example key and thumbprint
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
        "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR"
        "0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFT"
        "WhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    example = {"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert dpop.thumbprint(example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    # and jwcrypto's, for every key type a proof may use
    for alg in ("ES256", "ES384", "EdDSA", "RS256"):
        jwk = DPoPKey(alg).jwk
        assert dpop.thumbprint(jwk) == JWK(**jwk).thumbprint(), alg


def test_a_replayed_proof_is_refused(client, machine, key) -> None:
    # RFC 9449 §11.1: jti is remembered for as long as the proof's iat is acceptable
    proof = key.proof()
    assert _post(client, machine, proof).status_code == 200

    replayed = _post(client, machine, proof)

    assert replayed.status_code == 400
    assert error_of(replayed) == "invalid_dpop_proof"
    assert "already used" in replayed.json()["error_description"]


def test_the_same_jti_of_another_key_is_its_own(client, machine) -> None:
    # the replay cache is per key: one client's jti choice cannot block another's proofs
    first, second = DPoPKey(), DPoPKey()
    assert _post(client, machine, first.proof(jti="shared-jti")).status_code == 200
    assert _post(client, machine, second.proof(jti="shared-jti")).status_code == 200


def _signed_by_another_key(key: DPoPKey) -> str:
    other = DPoPKey()
    proof = other.proof()
    header, payload, signature = proof.split(".")
    forged_header = json.loads(base64.urlsafe_b64decode(header + "=="))
    forged_header["jwk"] = key.jwk  # claims key's jwk, signed by other's private key
    return f"{b64url(json.dumps(forged_header).encode())}.{payload}.{signature}"


def _hs256(key: DPoPKey) -> str:
    header = b64url(json.dumps({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk}).encode())
    payload = b64url(
        json.dumps(
            {
                "jti": "h",
                "htm": "POST",
                "htu": TOKEN_URL,
                "iat": int(time.time()),
                "nonce": dpop.current_nonce(),
            }
        ).encode()
    )
    mac = hmac.new(json.dumps(key.jwk).encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{b64url(mac.digest())}"


def _unsigned(key: DPoPKey) -> str:
    header = b64url(json.dumps({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}).encode())
    payload = b64url(
        json.dumps({"jti": "n", "htm": "POST", "htu": TOKEN_URL, "iat": int(time.time())}).encode()
    )
    return f"{header}.{payload}."


def _with_private_jwk(key: DPoPKey) -> str:
    private = dict(ECAlgorithm.to_jwk(key.private_key, as_dict=True))  # has "d"
    return key.proof(header={"jwk": private})


def _short_rsa() -> str:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    jwk = dict(RSAAlgorithm.to_jwk(weak.public_key(), as_dict=True))
    payload = {"jti": "w", "htm": "POST", "htu": TOKEN_URL, "iat": int(time.time()),
               "nonce": dpop.current_nonce()}  # fmt: skip
    return jwt.encode(payload, weak, "RS256", headers={"typ": "dpop+jwt", "jwk": jwk})


def _curve_mismatch() -> str:
    # an ES256 proof whose jwk is a P-384 key (RFC 7518 §3.4: ES256 is P-256 only)
    p384 = ec.generate_private_key(ec.SECP384R1())
    jwk = dict(ECAlgorithm.to_jwk(p384.public_key(), as_dict=True))
    payload = {"jti": "c", "htm": "POST", "htu": TOKEN_URL, "iat": int(time.time()),
               "nonce": dpop.current_nonce()}  # fmt: skip
    header = b64url(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).encode())
    body = b64url(json.dumps(payload).encode())
    signature = p384.sign(f"{header}.{body}".encode(), ec.ECDSA(ec.hashes.SHA256()))
    return f"{header}.{body}.{b64url(signature)}"


def _segments(header: Any, payload: Any) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}.AAAA"


def _proof(**claims: Any) -> Callable[[DPoPKey], str]:
    return lambda key: key.proof(**claims)


def _header(**header: Any) -> Callable[[DPoPKey], str]:
    return lambda key: key.proof(header=header)


def _rest(key: DPoPKey) -> str:
    """A good proof's payload and signature segments, behind a header made by the test."""
    return key.proof().split(".", 1)[1]


# case: (how the proof is made, what the error description says)
BAD_PROOFS: dict[str, tuple[Callable[[DPoPKey], str], str]] = {
    "wrong htu": (_proof(htu="https://elsewhere.example/oauth/token"), "htu is not"),
    "htu of the internal host": (_proof(htu="http://testserver/oauth/token"), "htu is not"),
    "htu of another endpoint": (_proof(htu=USERINFO_URL), "htu is not"),
    "wrong htm": (lambda k: k.proof("GET"), "htm is not POST"),
    "htm in lower case": (lambda k: k.proof("post"), "htm is not POST"),
    "stale iat": (lambda k: k.proof(iat=int(time.time()) - 120), "iat is not within"),
    "future iat": (lambda k: k.proof(iat=int(time.time()) + 60), "iat is not within"),
    "iat a string": (lambda k: k.proof(iat=str(int(time.time()))), "no iat"),
    "iat true": (_proof(iat=True), "no iat"),
    "iat NaN": (_proof(iat=float("nan")), "payload is not JSON"),
    "iat Infinity": (_proof(iat=float("-inf")), "payload is not JSON"),
    "no jti": (_proof(jti=None), "no usable jti"),
    "jti a number": (_proof(jti=7), "no usable jti"),
    "jti far too long": (_proof(jti="j" * 300), "no usable jti"),
    "no htm": (_proof(htm=None), "htm is not POST"),
    "no htu": (_proof(htu=None), "htu is not"),
    "htu a list": (_proof(htu=[TOKEN_URL]), "htu is not"),
    "no iat": (_proof(iat=None), "no iat"),
    "typ JWT": (_header(typ="JWT"), "typ is not dpop+jwt"),
    "crit header": (_header(crit=["exp"], exp=1), "critical"),
    "signed by another key": (_signed_by_another_key, "signature does not verify"),
    "alg none": (_unsigned, "alg must be one of"),
    "alg HS256 keyed with the jwk": (_hs256, "alg must be one of"),
    "alg not offered (ES512)": (
        lambda k: _segments({"typ": "dpop+jwt", "alg": "ES512"}, {}),
        "alg must be one of",
    ),
    "private key in jwk": (_with_private_jwk, "must be a public key"),
    "no jwk": (_header(jwk=None), "has no jwk"),
    "jwk a string": (_header(jwk="not a key"), "has no jwk"),
    "jwk symmetric": (_header(jwk={"kty": "oct", "k": "c2VjcmV0"}), "must be a public key"),
    "jwk of another type than alg": (
        lambda k: _segments({"typ": "dpop+jwt", "alg": "RS256", "jwk": k.jwk}, {}),
        "is not a RS256 public key",
    ),
    "jwk with a point off the curve": (
        lambda k: k.proof(header={"jwk": {**k.jwk, "x": b64url(bytes(32))}}),
        "is not a ES256 public key",
    ),
    "jwk member not a string": (lambda k: k.proof(header={"jwk": {**k.jwk, "x": 5}}), "EC, RSA"),
    "RSA key of 1024 bits": (lambda k: _short_rsa(), "shorter than 2048 bits"),
    "ES256 with a P-384 key": (lambda k: _curve_mismatch(), "P-256"),
    "not a JWS": (lambda k: "not-a-jws", "compact form"),
    "four segments": (lambda k: k.proof() + ".AAAA", "compact form"),
    "header not base64url": (lambda k: "!!!." + _rest(k), "compact form"),
    "header not JSON": (lambda k: b64url(b"{nope") + "." + _rest(k), "header is not JSON"),
    "header a JSON list": (lambda k: b64url(b"[1]") + "." + _rest(k), "not a JSON object"),
    "header nested deep": (
        lambda k: b64url(b"[" * 2000 + b"]" * 2000) + "." + _rest(k),
        "header is not",
    ),
    "payload a number": (
        lambda k: _segments({"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk}, 5),
        "payload is not a JSON object",
    ),
    "signature of the wrong length": (
        lambda k: k.proof().rsplit(".", 1)[0] + ".AAAA",
        "signature does not verify",
    ),
    "non-ASCII": (lambda k: "é" + k.proof(), "compact form"),
    "oversized": (_proof(padding="x" * 9000), "too large"),
    "empty": (lambda k: "", "compact form"),
}


@pytest.mark.parametrize("case", list(BAD_PROOFS))
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the 1024-bit key
def test_a_bad_proof_is_invalid_dpop_proof(client, machine, key, case) -> None:
    make, reason = BAD_PROOFS[case]

    response = _post(client, machine, make(key))

    assert response.status_code == 400, (case, response.content)
    assert error_of(response) == "invalid_dpop_proof", case
    assert reason in response.json()["error_description"], response.json()


def test_two_dpop_headers_are_refused(client, machine, key) -> None:
    # RFC 9449 §4.3 step 1; a server joins repeated fields with ", " (RFC 9110 §5.3)
    response = _post(client, machine, f"{key.proof()}, {key.proof()}")

    assert response.status_code == 400
    assert error_of(response) == "invalid_dpop_proof"
    assert "exactly one" in response.json()["error_description"]


def test_the_htu_is_compared_after_normalization(client, machine, key, settings) -> None:
    # RFC 9449 §4.3 step 9 (RFC 3986 §6.2.2, §6.2.3): case of scheme and host, the default
    # port, dot segments and escapes of unreserved characters do not matter; query and
    # fragment are ignored
    settings.ISSUER = "https://idp.example.com"
    for htu in (
        "HTTPS://IDP.Example.COM/oauth/token",
        "https://idp.example.com:443/oauth/token",
        "https://idp.example.com/oauth/x/../token",
        "https://idp.example.com/oauth/%74oken",
        "https://idp.example.com/oauth/token?query=1#fragment",
    ):
        response = _post(client, machine, key.proof(htu=htu))
        assert response.status_code == 200, (htu, response.content)
    for htu in (
        "http://idp.example.com/oauth/token",
        "https://idp.example.com:8443/oauth/token",
        "https://someone@idp.example.com/oauth/token",
        "https://idp.example.com/oauth/token/",
        "https://idp.example.com/OAUTH/token",
        "https://idp.example.com:99999/oauth/token",
    ):
        response = _post(client, machine, key.proof(htu=htu))
        assert error_of(response) == "invalid_dpop_proof", htu


# --- server nonces (RFC 9449 §8) -----------------------------------------------------------


def test_a_proof_without_nonce_gets_use_dpop_nonce_and_the_nonce(client, machine, key) -> None:
    response = _post(client, machine, key.proof(nonce=None))

    assert response.status_code == 400
    assert error_of(response) == "use_dpop_nonce"
    nonce = response["DPoP-Nonce"]
    # the client retries with the nonce it was given, as RFC 9449 §8 Figure 6 shows
    retried = _post(client, machine, key.proof(nonce=nonce))
    assert retried.status_code == 200, retried.content
    assert retried.json()["token_type"] == "DPoP"


@pytest.mark.parametrize("nonce", ["made-up", "", 5, "x" * 500])
def test_a_foreign_nonce_is_refused(client, machine, key, nonce) -> None:
    response = _post(client, machine, key.proof(nonce=nonce))

    assert response.status_code == 400
    assert error_of(response) == "use_dpop_nonce"
    assert response["DPoP-Nonce"] == dpop.current_nonce()


def test_the_previous_nonce_is_good_and_an_older_one_stale(client, machine, key, settings) -> None:
    # stateless nonces (HMAC of the time window): the previous window's is still accepted,
    # so a nonce handed out just before it changed works; one two windows old is stale
    window = int(time.time()) // settings.DPOP_NONCE_LIFETIME
    previous = _nonce_of_window(window - 1)
    older = _nonce_of_window(window - 2)

    assert _post(client, machine, key.proof(nonce=previous)).status_code == 200
    stale = _post(client, machine, key.proof(nonce=older))
    assert error_of(stale) == "use_dpop_nonce"


def _nonce_of_window(window: int) -> str:
    """What the server handed out in another window: its HMAC of that window, with the same
    key derivation (django.utils.crypto.salted_hmac) the server uses."""
    from django.utils.crypto import salted_hmac

    mac = salted_hmac("tessera.dpop.nonce", str(window), algorithm="sha256").digest()
    return b64url(mac[:18])


def test_nonces_are_not_demanded_when_turned_off(client, machine, key, settings) -> None:
    settings.DPOP_NONCE_REQUIRED = False

    response = _post(client, machine, key.proof(nonce=None))

    assert response.status_code == 200, response.content
    assert "DPoP-Nonce" not in response


def test_a_client_that_requires_dpop_is_refused_without_a_proof(client, register, key) -> None:
    # RFC 9449 §5.2 dpop_bound_access_tokens
    rp = register(grant_types=["client_credentials"])
    require_dpop(rp)

    refused = _post(client, rp, None)
    assert refused.status_code == 400
    assert error_of(refused) == "invalid_request"
    assert "DPoP" in refused.json()["error_description"]

    bound = _post(client, rp, key.proof())
    assert bound.status_code == 200
    claims = validate_access_token(bound.json()["access_token"], presented=None)
    assert claims["cnf"] == {"jkt": key.jkt}


def test_at_the_mutual_tls_origin_the_htu_is_its_alias(client, machine, key, settings) -> None:
    # RFC 8705 §5: a client calling the token endpoint's mtls_endpoint_aliases entry signs
    # that URL; the issuer's URL stays right at the issuer's origin, and neither is taken
    # at the other's
    settings.ISSUER = "https://idp.example.com"
    settings.MTLS_BASE_URL = "https://mtls.idp.example.com:8443"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "idp.example.com", "mtls.idp.example.com"]
    alias = "https://mtls.idp.example.com:8443/oauth/token"
    issuer = "https://idp.example.com/oauth/token"

    def post(htu: str, host: str) -> Any:
        headers = {"DPoP": key.proof(htu=htu), "Host": host}
        headers["Authorization"] = basic(machine.client_id, machine.client_secret)
        return client.post(TOKEN, CLIENT_CREDENTIALS, headers=headers)

    at_alias = post(alias, "mtls.idp.example.com:8443")
    assert at_alias.status_code == 200, at_alias.content
    at_issuer = post(issuer, "idp.example.com")
    assert at_issuer.status_code == 200, at_issuer.content

    crossed = post(issuer, "mtls.idp.example.com:8443")
    assert error_of(crossed) == "invalid_dpop_proof"
    crossed = post(alias, "idp.example.com")
    assert error_of(crossed) == "invalid_dpop_proof"
