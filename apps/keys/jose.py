"""JWK encoding, RFC 7638 thumbprints and JWK parsing, through jwcrypto (Latchset/Red Hat,
already installed as django-oauth-toolkit's JOSE library) instead of our own encoding.

Measured (benchmarks/caches_and_jose.py, one shared core): jwcrypto takes 170-250 µs per key
to encode and thumbprint and 75-115 µs to parse; PyJWT's to_jwk/from_jwk take 20-40 µs and
5-25 µs but have no thumbprint (we would hash RFC 7638's members by hand again). Neither is on
a request's path: a key is encoded once, at creation, and parsed once per process (the snapshot
in apps.keys.keys keeps parsed keys across reloads), so the library that leaves no JOSE code of
our own wins. Checked against the hand-written encoding it replaced on 600 generated keys: the
same members and the same kids, so every stored kid stays what it was.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from jwcrypto.common import JWException
from jwcrypto.jwk import JWK

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

# RFC 7518 §6.2.1 / §6.3.1 and RFC 8037 §2: the members that make a public key (no kid, alg,
# use): what we store and publish, beside kid, alg and use.
_PUBLIC_MEMBERS = {
    "EC": ("kty", "crv", "x", "y"),
    "RSA": ("kty", "n", "e"),
    "OKP": ("kty", "crv", "x"),
}
_CURVES: dict[str, set[str | None]] = {"EC": {"P-256"}, "RSA": {None}, "OKP": {"Ed25519"}}


class JWKError(ValueError):
    """A JWK we do not sign with or cannot read: the message says which."""


def public_jwk(public_key: PublicKey) -> dict[str, str]:
    """The key's required public JWK members (RFC 7518 §6, RFC 8037 §2)."""
    exported: dict[str, str] = JWK.from_pyca(public_key).export_public(as_dict=True)
    return {name: exported[name] for name in _PUBLIC_MEMBERS[exported["kty"]]}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 §3 (SHA-256, base64url) over the required members; other members are ignored."""
    return str(_jwk(jwk).thumbprint())


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """The `cryptography` public key a JWK of ours describes (P-256, RSA or Ed25519)."""
    parsed = _jwk(jwk)
    try:  # jwcrypto builds the key only here: a point off the curve, a short Ed25519 key
        key = parsed.get_op_key("verify")
    except (JWException, TypeError, ValueError) as error:
        raise JWKError(f"unreadable {jwk.get('kty')} JWK: {error}") from None
    if not isinstance(key, PublicKey):
        raise JWKError(f"unsupported JWK (kty={jwk.get('kty')!r}, crv={jwk.get('crv')!r})")
    return key


def _jwk(jwk: Mapping[str, Any]) -> JWK:
    kty, crv = jwk.get("kty"), jwk.get("crv")
    # RFC 7517 §4.1 / RFC 7518 §6.2.1.1: kty and crv are strings; a list or an object is no
    # key type (and is not hashable: it must not reach the lookups below)
    if not isinstance(kty, str) or not isinstance(crv, str | None):
        raise JWKError(f"unsupported JWK (kty={kty!r}, crv={crv!r})")
    if kty not in _PUBLIC_MEMBERS or crv not in _CURVES[kty]:
        raise JWKError(f"unsupported JWK (kty={kty!r}, crv={crv!r})")
    try:
        return JWK(**{name: jwk[name] for name in _PUBLIC_MEMBERS[kty]})
    except (JWException, KeyError, TypeError, ValueError) as error:
        raise JWKError(f"unreadable {kty} JWK: {error}") from None


# --- compact JWS signing (RFC 7515 §7.1) ---------------------------------------------------
#
# Measured against PyJWT's jwt.encode on the token endpoint's own claim set (ES256, one core,
# benchmarks/caches_and_jose.py prints it as `jws_sign`): PyJWT re-validates the header and
# every registered claim, looks the algorithm up and re-checks the key type per call, which
# cost about as much again as the signature itself. Here the header segment is encoded once
# per (kid, alg, typ) and the key is used as it is; the output is the same JWS (verified with
# PyJWT in tests/keys/test_jose.py).

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_header_segments: dict[tuple[str, str, str], bytes] = {}


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _header_segment(kid: str, alg: str, typ: str) -> bytes:
    segment = _header_segments.get((kid, alg, typ))
    if segment is None:
        header = json.dumps({"alg": alg, "kid": kid, "typ": typ}, separators=(",", ":"))
        segment = _header_segments.setdefault((kid, alg, typ), _b64(header.encode()))
    return segment


def jws_sign(
    claims: Mapping[str, Any], *, private_key: PrivateKey, alg: str, kid: str, typ: str
) -> str:
    """A compact JWS of the JSON claims, signed with RS256, ES256 or EdDSA (RFC 7518 §3.3,
    §3.4; RFC 8037 §3.1)."""
    payload = json.dumps(claims, separators=(",", ":")).encode()
    signing_input = _header_segment(kid, alg, typ) + b"." + _b64(payload)
    if alg == "ES256" and isinstance(private_key, ec.EllipticCurvePrivateKey):
        # RFC 7518 §3.4: R and S as 32-byte big-endian integers, not DER
        r, s = decode_dss_signature(private_key.sign(signing_input, _ECDSA_SHA256))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif alg == "RS256" and isinstance(private_key, rsa.RSAPrivateKey):
        signature = private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "EdDSA" and isinstance(private_key, ed25519.Ed25519PrivateKey):
        signature = private_key.sign(signing_input)
    else:
        raise JWKError(f"cannot sign {alg} with a {type(private_key).__name__}")
    return (signing_input + b"." + _b64(signature)).decode("ascii")


class JWSInvalid(ValueError):
    """A compact JWS that is malformed or whose signature does not verify."""


# RFC 7515 §2 / §3.1 base64url without padding: only this alphabet, in every segment.
_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*\Z")
_SIGNATURE_BYTES = {"ES256": 64, "EdDSA": 64}


def _unb64(segment: bytes) -> bytes:
    if not _SEGMENT.match(segment) or len(segment) % 4 == 1:
        raise JWSInvalid("a segment is not base64url")
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def jws_verify(token: str, *, public_key: PublicKey, alg: str) -> dict[str, Any]:
    """The JSON payload of a compact JWS (RFC 7515 §5.2) signed with `alg` by `public_key`;
    raises JWSInvalid. The caller has chosen `alg` from its own key, never from the header
    alone (RFC 8725 §3.1), and checks the claims (RFC 7519 §7.2).

    Straight through cryptography, as jws_sign is: PyJWT's decode checks each character of
    each segment in a Python loop; measured on an ES256 access token, 239 µs for PyJWT's
    decode against 171 µs for this (the signature check itself is about 150 µs).
    """
    try:
        signing_input, _, signature_segment = token.encode("ascii").rpartition(b".")
    except UnicodeEncodeError:
        raise JWSInvalid("the token is not ASCII") from None
    header_segment, dot, payload_segment = signing_input.partition(b".")
    if not dot or b"." in payload_segment:
        raise JWSInvalid("not a compact JWS of three segments")
    if not _SEGMENT.match(header_segment):
        raise JWSInvalid("the header is not base64url")
    signature = _unb64(signature_segment)
    try:
        if alg == "ES256" and isinstance(public_key, ec.EllipticCurvePublicKey):
            if len(signature) != _SIGNATURE_BYTES[alg]:  # RFC 7518 §3.4: R and S, 32 bytes each
                raise JWSInvalid("an ES256 signature is 64 bytes")
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public_key.verify(der, signing_input, _ECDSA_SHA256)
        elif alg == "RS256" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "EdDSA" and isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, signing_input)
        else:
            raise JWSInvalid(f"cannot verify {alg} with a {type(public_key).__name__}")
    except InvalidSignature:
        raise JWSInvalid("the signature does not verify") from None
    try:
        payload = json.loads(_unb64(payload_segment))
    except (ValueError, RecursionError):
        raise JWSInvalid("the payload is not JSON") from None
    if not isinstance(payload, dict):
        raise JWSInvalid("the payload is not a JSON object")
    return payload
