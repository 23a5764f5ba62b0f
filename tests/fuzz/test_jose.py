"""The JWS we read back: access tokens (apps.tokens.validation, every resource of ours), ID
token hints (apps.tokens.id_tokens, RP-Initiated Logout 1.0 §2), compact JWS verification and
JWK parsing (apps.keys.jose). Whatever arrives, the answer is the module's own refusal
(InvalidToken, None, JWSInvalid, JWKError), never another exception."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import pytest
from django.conf import settings
from hypothesis import example, given
from hypothesis import strategies as st

from apps.keys import jose, keys
from apps.tokens import id_tokens
from apps.tokens.claims import ACCESS_TOKEN_TYPE
from apps.tokens.validation import (
    InsufficientScope,
    InvalidToken,
    bearer_user,
    validate_access_token,
)
from tests.fuzz import budget
from tests.fuzz.strategies import (
    b64url,
    compact_jws,
    json_bytes,
    json_objects,
    json_values,
    segments,
)
from tests.rp import RegisteredClient

ALGS = ("RS256", "ES256")


def _signed(alg: str, claims: dict[str, Any], typ: str) -> str:
    active = keys.signing_key(alg)
    return jose.jws_sign(claims, private_key=active.private_key, alg=alg, kid=active.kid, typ=typ)


@budget(150)
@given(token=compact_jws)
@example(token="e30.e30.e30")
@example(token=b64url(b"[" * 5000) + ".e30.")
def test_garbage_access_token_is_invalid_token(db: None, token: str) -> None:
    # RFC 6750 §3.1: whatever is presented as a bearer token, invalid_token
    with pytest.raises(InvalidToken):
        validate_access_token(token)


@budget(100)
@given(alg=st.sampled_from(ALGS), header=json_objects, payload=segments, signature=segments)
def test_our_kid_with_any_header_payload_and_signature_is_invalid_token(
    db: None, alg: str, header: dict[str, Any], payload: str, signature: str
) -> None:
    # RFC 8725 §3.1: the kid names our key; the rest of the header, the payload and the
    # signature are the attacker's
    header = {**header, "kid": keys.signing_key(alg).kid, "typ": ACCESS_TOKEN_TYPE}
    header.setdefault("alg", alg)
    token = f"{b64url(json_bytes(header))}.{payload}.{signature}"
    with pytest.raises(InvalidToken):
        validate_access_token(token)


def _claims_base(now: int, client_id: str = "c", uid: str = "") -> dict[str, Any]:
    return {
        "iss": settings.ISSUER, "sub": "s", "aud": settings.ACCESS_TOKEN_AUDIENCE,
        "exp": now + 300, "iat": now, "nbf": now, "jti": "j", "client_id": client_id,
        "typ": "access", "ver": settings.ACCESS_TOKEN_MIN_VERSION, "scope": "openid",
        "uid": uid,
    }  # fmt: skip


_CLAIM_NAMES = st.sampled_from([*sorted(_claims_base(0)), "cnf", "sid", "act"])


@budget(100)
@given(
    alg=st.sampled_from(ALGS),
    changes=st.dictionaries(_CLAIM_NAMES, json_values, max_size=4),
    removed=st.sets(_CLAIM_NAMES, max_size=2),
)
@example(alg="ES256", changes={"exp": math.nan}, removed=set())
@example(alg="ES256", changes={"exp": math.inf, "cnf": []}, removed=set())
@example(alg="RS256", changes={"exp": 2**1100}, removed=set())  # isfinite(): OverflowError
def test_signed_claims_of_any_shape_are_valid_or_invalid_token(
    rp: RegisteredClient, person: Any, alg: str, changes: dict[str, Any], removed: set[str]
) -> None:
    """Our own signature over claims of every shape (the payload is parsed after the
    signature verifies): RFC 7519 §4.1 types are checked, never assumed."""
    claims = {**_claims_base(int(time.time()), rp.client_id, str(person.pk)), **changes}
    for name in removed:
        claims.pop(name, None)
    token = _signed(alg, claims, ACCESS_TOKEN_TYPE)
    try:
        verified = validate_access_token(token)
    except InvalidToken:
        return
    # RFC 7519 §2: a NumericDate is a number; a token that passed lives a finite time
    assert isinstance(verified["exp"], int) or math.isfinite(verified["exp"])
    assert verified["exp"] > time.time() - 120
    with contextlib.suppress(InvalidToken, InsufficientScope):
        bearer_user(token, scope="openid")


@budget(150)
@given(token=st.one_of(compact_jws, json_objects.map(lambda h: f"{b64url(json_bytes(h))}.e30.")))
@example(token="")
def test_garbage_id_token_hint_is_no_hint(db: None, token: str) -> None:
    assert id_tokens.verify_hint(token) is None


@budget(75)
@given(header=json_objects, claims=json_objects)
def test_id_token_hint_with_our_kid_and_a_forged_header_is_no_hint(
    db: None, header: dict[str, Any], claims: dict[str, Any]
) -> None:
    active = keys.signing_key("RS256")
    header = {**header, "kid": active.kid, "typ": "JWT"}
    token = f"{b64url(json_bytes(header))}.{b64url(json_bytes(claims))}.{b64url(b'x' * 256)}"
    assert id_tokens.verify_hint(token) is None


@budget(150)
@given(token=compact_jws, alg=st.sampled_from(ALGS))
def test_jws_verify_refuses_garbage_with_jwsinvalid(db: None, token: str, alg: str) -> None:
    public_key = keys.signing_key(alg).private_key.public_key()
    with pytest.raises(jose.JWSInvalid):
        jose.jws_verify(token, public_key=public_key, alg=alg)


_JWK_SHAPES = st.one_of(
    json_objects,
    st.fixed_dictionaries(
        {"kty": st.one_of(st.sampled_from(["EC", "RSA", "OKP", "oct"]), json_values)},
        optional={
            "crv": st.one_of(st.sampled_from(["P-256", "Ed25519"]), json_values),
            "x": st.one_of(segments, json_values),
            "y": st.one_of(segments, json_values),
            "n": st.one_of(segments, json_values),
            "e": st.one_of(segments, json_values),
        },
    ),
)


@budget(200)
@given(jwk=_JWK_SHAPES)
@example(jwk={"kty": []})  # was TypeError: unhashable type: 'list'
@example(jwk={"kty": "EC", "crv": {}})  # was TypeError: unhashable type: 'dict'
@example(jwk={"kty": "OKP", "crv": "Ed25519", "x": "e30"})  # was ValueError: 32 bytes long
def test_jwk_of_any_shape_is_a_key_or_jwkerror(jwk: dict[str, Any]) -> None:
    with contextlib.suppress(jose.JWKError):
        jose.public_key_from_jwk(jwk)
    with contextlib.suppress(jose.JWKError):
        jose.jwk_thumbprint(jwk)
