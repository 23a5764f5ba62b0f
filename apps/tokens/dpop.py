"""DPoP proofs (RFC 9449): the `DPoP` header of a request, checked as §4.3 says, and the
server nonces of §8 / §9.

- `verify(request, ...)` checks one proof and returns what it proves (the RFC 7638
  thumbprint of its key). The token endpoint (possession.token_endpoint_binding) binds the
  tokens it issues to that thumbprint; a resource (possession.resource_binding) hands it to
  validation.validate_access_token, which compares it with the token's `cnf.jkt`.
- The JWS is checked with PyJWT (its PyJWK builds the key from the header's `jwk` and checks
  the key type against `alg`; its algorithm object verifies), never with an algorithm the
  header names outside settings.DPOP_SIGNING_ALGS (RFC 8725 §3.1).
- A proof's `jti` is remembered in Redis (SET NX, for as long as its `iat` is acceptable):
  a second use is refused (§11.1). While Redis cannot be reached no proof is accepted
  (ReplayCacheUnavailable: fail closed; a replay cannot be told from a first use).
- Nonces are stateless: an HMAC of the current time window under a key derived from
  SECRET_KEY (salted_hmac), so every process hands out and accepts the same ones without a
  store; the current and the previous window's are accepted, under the current key or one of
  its fallbacks while it rotates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import jwt
from django.conf import settings
from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from jwt.exceptions import InvalidKeyError, PyJWKError
from redis.exceptions import RedisError
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from apps.core.redis import get_redis
from apps.core.secret_keys import secret_keys

TYP = "dpop+jwt"  # RFC 9449 §4.2
# A proof with an RSA-4096 key is under 2.5 KB: a header far larger is hostile and is refused
# before it is decoded.
MAX_PROOF_BYTES = 8192
MAX_JTI_LENGTH = 256  # ours, and every library's, are 16-43 characters
_JTI_PREFIX = "tessera:dpop:jti:"
# RFC 7517 §4 / RFC 7518 §6: members only a private (or symmetric) key has.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# RFC 7638 §3.2: the required members of each key type, the thumbprint's input.
_REQUIRED_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
# The key each algorithm is used with: EC curves per RFC 7518 §3.4, RSA of at least 2048 bits
# (RFC 7518 §3.3, §3.5), EdDSA's curves per RFC 8037 §3.1.
_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_MIN_RSA_BITS = 2048
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*\Z")
_UNRESERVED_ESCAPE = re.compile(r"%(2[DdEe]|3[0-9]|[46][1-9A-Fa-f]|[57][0-9Aa]|5[Ff]|7[Ee])")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidProof(Exception):
    """RFC 9449 §7.1 / §5: invalid_dpop_proof; the message is safe to return to the client."""

    error = "invalid_dpop_proof"


class UseNonce(InvalidProof):
    """RFC 9449 §8 / §9: the proof lacks the server's current nonce; the answer carries one."""

    error = "use_dpop_nonce"


class ReplayCacheUnavailable(Exception):
    """The jti replay cache (Redis) cannot be reached: no proof can be accepted."""


@dataclass(frozen=True)
class Proof:
    jkt: str  # RFC 7638 SHA-256 thumbprint of the proof's key (RFC 9449 §6.1)
    claims: dict[str, Any]


def proof_header(request: HttpRequest) -> str | None:
    """The request's one DPoP header, or None when it sent none. RFC 9449 §4.3 step 1: more
    than one is an error; servers join repeated fields with commas (RFC 9110 §5.3), which a
    compact JWS never contains."""
    value = request.META.get("HTTP_DPOP")
    if not isinstance(value, str):
        return None
    if len(value) > MAX_PROOF_BYTES:
        raise InvalidProof("The DPoP header is too large.")
    if "," in value:
        raise InvalidProof("Send exactly one DPoP header.")
    return value.strip()


def verify(
    request: HttpRequest, proof: str, *, access_token: str | None = None, nonce: bool = False
) -> Proof:
    """The RFC 9449 §4.3 checks of `proof` (the DPoP header of `request`), in the RFC's order;
    with `access_token`, §4.3 step 12 / §7.1 too (`ath`); with `nonce`, the proof must carry a
    current server nonce (§8, §9); then its jti is spent (§11.1). Raises InvalidProof,
    UseNonce or ReplayCacheUnavailable."""
    checked = check(request, proof, access_token=access_token, nonce=nonce)
    _remember_jti(checked.jkt, checked.claims["jti"])
    return checked


def check(
    request: HttpRequest, proof: str, *, access_token: str | None = None, nonce: bool = False
) -> Proof:
    """verify() without the replay cache: everything a proof says about itself and this
    request, in memory (benchmarks/dpop_proofs.py measures it)."""
    header, payload, signing_input, signature = _parts(proof)
    alg = _check_header(header)
    jwk = header["jwk"]
    key = _public_key(jwk, alg)
    try:
        valid = key.Algorithm.verify(signing_input, key.key, signature)
    except (ValueError, TypeError):  # a signature of the wrong length or form
        valid = False
    if not valid:
        raise InvalidProof("The DPoP proof's signature does not verify with its jwk.")
    _check_claims(request, payload, access_token)
    if nonce:
        _check_nonce(payload)
    return Proof(jkt=thumbprint(jwk), claims=payload)


def _b64decode(segment: str) -> bytes:
    if not _SEGMENT.match(segment) or len(segment) % 4 == 1:
        raise InvalidProof("The DPoP proof is not a JWS in compact form (RFC 7515 section 7.1).")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _no_constant(name: str) -> None:
    # RFC 8259 §6: NaN and Infinity are not JSON; Python's parser takes them, and a NaN `iat`
    # would compare neither before nor after any time.
    raise ValueError(f"{name} is not JSON")


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise InvalidProof(f"The DPoP proof's {what} is not JSON.") from None
    if not isinstance(value, dict):
        raise InvalidProof(f"The DPoP proof's {what} is not a JSON object.")
    return value


def _parts(proof: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """RFC 9449 §4.3 step 2: a well-formed JWS (header, payload, signing input, signature)."""
    parts = proof.split(".")
    if len(parts) != 3 or not proof.isascii():
        raise InvalidProof("The DPoP proof is not a JWS in compact form (RFC 7515 section 7.1).")
    header = _json_object(parts[0], "header")
    payload = _json_object(parts[1], "payload")
    signature = _b64decode(parts[2])
    return header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def _check_header(header: dict[str, Any]) -> str:
    """RFC 9449 §4.3 steps 3-7: typ dpop+jwt; an asymmetric alg this server accepts (never
    none nor a MAC: §4.2); a public jwk; no critical extension we would not understand."""
    if header.get("typ") != TYP:
        raise InvalidProof("The DPoP proof's typ is not dpop+jwt.")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in settings.DPOP_SIGNING_ALGS:
        raise InvalidProof(
            f"The DPoP proof's alg must be one of {' '.join(settings.DPOP_SIGNING_ALGS)}."
        )
    if "crit" in header:  # RFC 7515 §4.1.11
        raise InvalidProof("The DPoP proof names critical header parameters.")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise InvalidProof("The DPoP proof's header has no jwk.")
    if _PRIVATE_MEMBERS & jwk.keys():
        raise InvalidProof("The DPoP proof's jwk must be a public key (RFC 9449 section 4.3).")
    return alg


def _public_key(jwk: dict[str, Any], alg: str) -> jwt.PyJWK:
    """The proof's key as PyJWT reads it, of the type and size `alg` is used with."""
    kty = jwk.get("kty")
    # RFC 7517 §4.1: kty is a string (a list or an object would not even be hashable)
    if (
        not isinstance(kty, str)
        or kty not in _REQUIRED_MEMBERS
        or not all(isinstance(jwk.get(name), str) for name in _REQUIRED_MEMBERS[kty])
    ):
        raise InvalidProof("The DPoP proof's jwk is not an EC, RSA or OKP public key.")
    if alg in _CURVES and jwk.get("crv") != _CURVES[alg]:
        raise InvalidProof(f"{alg} is used with a {_CURVES[alg]} key (RFC 7518 section 3.4).")
    try:
        key = jwt.PyJWK(jwk, algorithm=alg)
    except (PyJWKError, InvalidKeyError, ValueError, TypeError, KeyError):
        raise InvalidProof(f"The DPoP proof's jwk is not a {alg} public key.") from None
    if kty == "RSA" and key.key.key_size < _MIN_RSA_BITS:
        raise InvalidProof(f"The DPoP proof's RSA key is shorter than {_MIN_RSA_BITS} bits.")
    return key


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3: base64url SHA-256 of the key's required members, in lexicographic order,
    as JSON without whitespace (§3.3). Checked against jwcrypto's and RFC 7638 §3.1's
    example in tests/dpop; a sixth of jwcrypto's cost, and it reads every key type we accept
    (apps.keys.jose.jwk_thumbprint reads only the key types we sign with)."""
    members = {name: jwk[name] for name in _REQUIRED_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _check_claims(request: HttpRequest, payload: dict[str, Any], access_token: str | None) -> None:
    """RFC 9449 §4.3 steps 8-12."""
    jti, htm, htu, iat = (payload.get(name) for name in ("jti", "htm", "htu", "iat"))
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise InvalidProof("The DPoP proof has no usable jti.")
    if htm != request.method:
        raise InvalidProof(f"The DPoP proof's htm is not {request.method}.")
    if not isinstance(htu, str) or normalized_url(htu) != endpoint_url(request):
        raise InvalidProof(f"The DPoP proof's htu is not {endpoint_url(request)}.")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise InvalidProof("The DPoP proof has no iat.")
    now = time.time()
    if iat < now - settings.DPOP_PROOF_MAX_AGE or iat > now + settings.DPOP_PROOF_MAX_SKEW:
        raise InvalidProof(
            f"The DPoP proof's iat is not within {settings.DPOP_PROOF_MAX_AGE} seconds of "
            "this server's time; make a new proof."
        )
    if access_token is not None:
        ath = payload.get("ath")
        if not isinstance(ath, str):
            raise InvalidProof("The DPoP proof has no ath (the access token's hash).")
        expected = _b64(hashlib.sha256(access_token.encode("ascii", "replace")).digest())
        if not hmac.compare_digest(ath.encode("ascii", "replace"), expected.encode("ascii")):
            raise InvalidProof("The DPoP proof's ath is not the hash of this access token.")


def endpoint_url(request: HttpRequest) -> str:
    """The URL the client called, without query and fragment (RFC 9449 §4.3 step 9), as the
    issuer's external URL names it: behind a proxy the request's own host and scheme may be
    the proxy's, but the endpoints a client knows are the issuer's (OIDC Discovery §3), or,
    for a request made to the mutual-TLS origin, the RFC 8705 §5 alias discovery names."""
    return _endpoint_url(_origin(request.get_host()), request.path)


def _origin(host: str) -> str:
    """The external origin a request was made to: the mTLS aliases' when its Host is theirs
    (a client calling both, DPoP over mutual TLS, signs the alias's URL), else the issuer's."""
    mtls = settings.MTLS_BASE_URL
    if mtls and host.lower() == urlsplit(mtls).netloc.lower():
        return mtls.rstrip("/")
    return settings.ISSUER


@lru_cache(maxsize=256)  # the few endpoints that take proofs, normalized once each
def _endpoint_url(issuer: str, path: str) -> str:
    return normalized_url(issuer + path)


def normalized_url(url: str) -> str:
    """RFC 3986 §6.2.2 and §6.2.3 normalization, without query and fragment: scheme and host
    lowercased, dot segments removed, percent-escapes in upper case and decoded where they
    stand for an unreserved character, the scheme's default port dropped, an empty path '/'.
    A URL that does not parse becomes "" (which matches nothing)."""
    if len(url) > MAX_PROOF_BYTES:
        return ""
    try:
        parts = parse_url(url)
    except (LocationParseError, ValueError):
        return ""
    scheme, host = (parts.scheme or "").lower(), (parts.host or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.auth is not None:
        return ""  # no request URL of ours has userinfo (RFC 3986 §3.2.1)
    port = "" if parts.port in (None, _DEFAULT_PORTS[scheme]) else f":{parts.port}"
    path = _UNRESERVED_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), parts.path or "/")
    return f"{scheme}://{host}{port}{path}"


# --- server nonces (RFC 9449 §8, §9) -----------------------------------------------------


def nonce_required() -> bool:
    return bool(settings.DPOP_NONCE_REQUIRED)


def _nonce_for(window: int) -> str:
    return _nonce_of(window, settings.SECRET_KEY)


@lru_cache(maxsize=16)  # the current and the previous window's, per key, computed once each
def _nonce_of(window: int, secret: str) -> str:
    mac = salted_hmac("tessera.dpop.nonce", str(window), secret=secret, algorithm="sha256")
    return _b64(mac.digest()[:18])  # 144 bits: not guessable for the window it lives


def current_nonce() -> str:
    """The nonce handed out now (the DPoP-Nonce header); it changes every
    DPOP_NONCE_LIFETIME seconds (§8.2: the server decides when a nonce changes)."""
    return _nonce_for(int(time.time()) // settings.DPOP_NONCE_LIFETIME)


def _check_nonce(payload: dict[str, Any]) -> None:
    """§8 / §9: the proof's nonce is the current or the previous window's, under the current
    IDP_SECRET_KEY or a fallback (a process not yet on the new key hands out the old one's)."""
    nonce = payload.get("nonce")
    if nonce is None:
        raise UseNonce("Authorization server requires nonce in DPoP proof.")
    window = int(time.time()) // settings.DPOP_NONCE_LIFETIME
    if not isinstance(nonce, str) or not any(
        hmac.compare_digest(nonce.encode("ascii", "replace"), _nonce_of(w, key).encode("ascii"))
        for w in (window, window - 1)
        for key in secret_keys()
    ):
        raise UseNonce("The DPoP proof's nonce is stale or not ours; use the DPoP-Nonce sent.")


# --- replay (RFC 9449 §11.1) ---------------------------------------------------------------


def _remember_jti(jkt: str, jti: str) -> None:
    """A proof is used once: its jti, per key, is kept as long as its iat is acceptable
    (past and future), so a replay is refused for as long as it could otherwise pass."""
    digest = hashlib.sha256(f"{jkt}:{jti}".encode()).hexdigest()
    ttl = settings.DPOP_PROOF_MAX_AGE + settings.DPOP_PROOF_MAX_SKEW
    try:
        first = get_redis().set(_JTI_PREFIX + digest, 1, nx=True, ex=ttl)
    except RedisError:
        raise ReplayCacheUnavailable(
            "DPoP proofs cannot be checked for replay right now; try again shortly."
        ) from None
    if not first:
        raise InvalidProof("The DPoP proof was already used (jti); make a new proof per request.")
