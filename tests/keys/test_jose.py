"""apps.keys.jose.jws_sign: the compact JWS PyJWT (and so every relying party) verifies."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from apps.keys.jose import JWKError, JWSInvalid, jws_sign, jws_verify

KEYS = {
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "EdDSA": ed25519.Ed25519PrivateKey.generate(),
}
CLAIMS = {"iss": "https://idp.example", "sub": "p-1", "aud": ["a", "b"], "n": None,
          "orgs": [{"id": "o", "perms": []}], "name": "Zoë \"q\" \\"}  # fmt: skip


@pytest.mark.parametrize("alg", KEYS)
def test_signature_verifies_with_pyjwt_and_says_kid_and_typ(alg: str) -> None:
    # RFC 7515 §7.1 compact serialization; RFC 7518 §3.4 raw R||S for ES256
    token = jws_sign(CLAIMS, private_key=KEYS[alg], alg=alg, kid="kid-1", typ="at+jwt")
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": "kid-1", "typ": "at+jwt"}
    public = KEYS[alg].public_key()
    decoded = jwt.decode(token, public, algorithms=[alg], options={"verify_aud": False})
    assert decoded == CLAIMS


@pytest.mark.parametrize("alg", KEYS)
def test_same_header_and_payload_as_pyjwt(alg: str) -> None:
    ours = jws_sign(CLAIMS, private_key=KEYS[alg], alg=alg, kid="k", typ="JWT")
    theirs = jwt.encode(CLAIMS, KEYS[alg], algorithm=alg, headers={"kid": "k", "typ": "JWT"})
    assert ours.split(".")[:2] == theirs.split(".")[:2]


def test_a_signature_of_another_key_does_not_verify() -> None:
    token = jws_sign(CLAIMS, private_key=KEYS["ES256"], alg="ES256", kid="k", typ="JWT")
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=["ES256"], options={"verify_aud": False})


def test_algorithm_and_key_type_must_agree() -> None:
    # RFC 8725 §3.1: never sign under an algorithm the key is not for
    with pytest.raises(JWKError):
        jws_sign(CLAIMS, private_key=KEYS["RS256"], alg="ES256", kid="k", typ="JWT")


@pytest.mark.parametrize("alg", KEYS)
def test_verify_reads_what_sign_wrote_and_what_pyjwt_wrote(alg: str) -> None:
    public = KEYS[alg].public_key()
    ours = jws_sign(CLAIMS, private_key=KEYS[alg], alg=alg, kid="k", typ="JWT")
    theirs = jwt.encode(CLAIMS, KEYS[alg], algorithm=alg, headers={"kid": "k"})
    assert jws_verify(ours, public_key=public, alg=alg) == CLAIMS
    assert jws_verify(theirs, public_key=public, alg=alg) == CLAIMS


def _es256(claims: object) -> str:
    return jwt.api_jws.encode(
        json.dumps(claims).encode(), KEYS["ES256"], algorithm="ES256", headers={"kid": "k"}
    )


BROKEN = {
    "another key's signature": jws_sign(
        CLAIMS, private_key=ec.generate_private_key(ec.SECP256R1()), alg="ES256", kid="k", typ="JWT"
    ),
    "payload swapped": (lambda t, o: f"{t.split('.')[0]}.{o.split('.')[1]}.{t.split('.')[2]}")(
        jws_sign(CLAIMS, private_key=KEYS["ES256"], alg="ES256", kid="k", typ="JWT"),
        jws_sign({"sub": "admin"}, private_key=KEYS["ES256"], alg="ES256", kid="k", typ="JWT"),
    ),
    "payload a list": _es256(["sub", "admin"]),
    "payload not JSON": jwt.api_jws.encode(b"not json", KEYS["ES256"], algorithm="ES256"),
    "two segments": "eyJhbGciOiJFUzI1NiJ9.e30",
    "four segments": "a.b.c.d",
    "one segment": "abc",
    "empty": "",
    "non-ASCII": "ë.ë.ë",
    "signature padded": _es256({"a": 1}) + "=",
    "signature of length 1 mod 4": _es256({"a": 1})[:-86] + "A",
    "header with a bad character": "e!." + _es256({"a": 1}).split(".", 1)[1],
    "RS256 key for ES256": jws_sign(
        CLAIMS, private_key=KEYS["RS256"], alg="RS256", kid="k", typ="JWT"
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_verify_refuses_broken_and_forged_tokens(case: str) -> None:
    with pytest.raises(JWSInvalid):
        jws_verify(BROKEN[case], public_key=KEYS["ES256"].public_key(), alg="ES256")


def test_verify_refuses_an_algorithm_the_key_is_not_for() -> None:
    token = jws_sign(CLAIMS, private_key=KEYS["ES256"], alg="ES256", kid="k", typ="JWT")
    with pytest.raises(JWSInvalid):
        jws_verify(token, public_key=KEYS["ES256"].public_key(), alg="RS256")
