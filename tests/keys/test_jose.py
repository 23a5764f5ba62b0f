"""apps.keys.jose.jws_sign: the compact JWS PyJWT (and so every relying party) verifies."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from apps.keys.jose import JWKError, jws_sign

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
