"""DPoP proofs (RFC 9449 §4.3, apps.tokens.dpop): headers, claims and jwk of every shape,
base64 garbage, huge integers, NaN and Infinity, signed by the key the proof names or not.
The answer is InvalidProof (invalid_dpop_proof, or its UseNonce) or a proof, never another
exception."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.test import RequestFactory
from hypothesis import event, example, given
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from apps.tokens import dpop
from tests.fuzz import budget
from tests.fuzz.strategies import (
    any_text,
    b64url,
    compact_jws,
    hostile_text,
    huge_ints,
    json_bytes,
    json_values,
    mostly,
    segments,
)

TOKEN_PATH = "/oauth/token"
TOKEN_URL = settings.ISSUER + TOKEN_PATH
ABSENT = object()  # a member left out of the proof
absent = st.just(ABSENT)
NOW = "now"  # replaced by the time of the example: a proof's iat must be current

_PRIVATE = {
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
_PRIVATE["PS256"] = _PRIVATE["RS256"]
_JWK = {
    "ES256": dict(ECAlgorithm.to_jwk(_PRIVATE["ES256"].public_key(), as_dict=True)),
    "EdDSA": dict(OKPAlgorithm.to_jwk(_PRIVATE["EdDSA"].public_key(), as_dict=True)),
    "RS256": dict(RSAAlgorithm.to_jwk(_PRIVATE["RS256"].public_key(), as_dict=True)),
}
_JWK["PS256"] = _JWK["RS256"]
_ALGS = sorted(_PRIVATE)
_MEMBERS = ["kty", "crv", "x", "y", "n", "e", "d", "k", "alg", "use", "kid"]


def _jwks(alg: str) -> st.SearchStrategy[Any]:
    """The proof's key, unchanged or with members replaced by anything, or no key at all."""
    real = _JWK[alg]
    changed = st.dictionaries(
        st.sampled_from(_MEMBERS), st.one_of(segments, json_values), min_size=1, max_size=3
    ).map(lambda changes: {**real, **changes})
    return mostly(real, st.one_of(changed, changed, json_values))


@st.composite
def proofs(draw: st.DrawFn) -> str:
    alg = draw(st.sampled_from(_ALGS))
    header: dict[str, Any] = {
        "typ": draw(mostly(dpop.TYP, json_values)),
        "alg": draw(mostly(alg, st.one_of(st.sampled_from(["none", "HS256"]), json_values))),
        "jwk": draw(_jwks(alg)),
    }
    if draw(st.booleans()):
        header[draw(st.sampled_from(["crit", "kid", "x5c", "jku"]))] = draw(json_values)
    payload: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {
                "jti": mostly("j-1", st.one_of(absent, st.text(max_size=300), json_values)),
                "htm": mostly("POST", st.one_of(absent, json_values)),
                "htu": mostly(TOKEN_URL, st.one_of(absent, hostile_text, json_values, urls)),
                "iat": mostly(NOW, st.one_of(absent, huge_ints, st.floats(), json_values)),
                "ath": st.one_of(absent, json_values),
                "nonce": st.one_of(absent, st.builds(dpop.current_nonce), json_values),
            },
        )
    )
    payload = {name: value for name, value in payload.items() if value is not ABSENT}
    if payload.get("iat") == NOW:
        payload["iat"] = int(time.time())
    signing_input = f"{b64url(json_bytes(header))}.{b64url(json_bytes(payload))}"
    if draw(mostly(True, st.just(False))):
        algorithm = jwt.get_algorithm_by_name(alg)
        signature = b64url(algorithm.sign(signing_input.encode(), _PRIVATE[alg]))
    else:
        signature = draw(segments)
    return f"{signing_input}.{signature}"


def _unsigned(header: dict[str, Any]) -> str:
    return f"{b64url(json_bytes(header))}.e30.{b64url(bytes(64))}"


# URLs near the token endpoint's: other schemes, ports, userinfo, escapes, IPv6, huge ports
urls = st.one_of(
    st.from_regex(
        r"(https?|ftp|)://[a-z0-9.\[\]:@%-]{0,30}(:[0-9]{0,12})?(/[a-zA-Z0-9%._~-]{0,10}){0,3}",
        fullmatch=True,
    ),
    st.builds(lambda tail: TOKEN_URL + tail, st.text(max_size=12)),
)


def _request() -> Any:
    return RequestFactory().post(TOKEN_PATH)


def _check(proof: str, *, nonce: bool, access_token: str | None) -> None:
    try:
        checked = dpop.check(_request(), proof, nonce=nonce, access_token=access_token)
    except dpop.InvalidProof as refusal:
        event(f"refused: {str(refusal)[:40]}")
        return
    event("accepted")
    assert isinstance(checked.jkt, str)
    assert checked.jkt


@budget(200)
@given(proof=compact_jws)
@example(proof="e30.e30.")
def test_garbage_proof_is_invalid_proof(db: None, proof: str) -> None:
    with pytest.raises(dpop.InvalidProof):
        dpop.check(_request(), proof)


@budget(200)
@given(proof=proofs(), nonce=st.booleans(), access_token=st.one_of(st.none(), any_text))
@example(
    proof=_unsigned({"typ": dpop.TYP, "alg": "ES256", "jwk": {"kty": []}}),
    nonce=False,
    access_token=None,
)
def test_proof_of_any_shape_is_checked_or_invalid_proof(
    db: None, proof: str, nonce: bool, access_token: str | None
) -> None:
    _check(proof, nonce=nonce, access_token=access_token)


@budget(150)
@given(url=st.one_of(urls, any_text, hostile_text))
@example(url="https://[::1")
@example(url="https://h:99999999999999999999/")
def test_normalized_url_of_anything_is_a_url_or_empty(url: str) -> None:
    normalized = dpop.normalized_url(url)
    assert normalized == "" or normalized.startswith(("http://", "https://"))


@budget(150)
@given(value=st.one_of(hostile_text, compact_jws))
def test_dpop_header_of_anything_is_a_proof_or_invalid_proof(value: str) -> None:
    request = RequestFactory().post(TOKEN_PATH, HTTP_DPOP=value)
    try:
        header = dpop.proof_header(request)
    except dpop.InvalidProof:
        return
    assert header == value.strip()
