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

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
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
    key = _jwk(jwk).get_op_key("verify")
    if not isinstance(key, PublicKey):
        raise JWKError(f"unsupported JWK (kty={jwk.get('kty')!r}, crv={jwk.get('crv')!r})")
    return key


def _jwk(jwk: Mapping[str, Any]) -> JWK:
    kty = jwk.get("kty")
    if kty not in _PUBLIC_MEMBERS or jwk.get("crv") not in _CURVES[kty]:
        raise JWKError(f"unsupported JWK (kty={kty!r}, crv={jwk.get('crv')!r})")
    try:
        return JWK(**{name: jwk[name] for name in _PUBLIC_MEMBERS[kty]})
    except (JWException, KeyError, TypeError, ValueError) as error:
        raise JWKError(f"unreadable {kty} JWK: {error}") from None
