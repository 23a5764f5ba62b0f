"""The one access-token validation service: userinfo, introspection and any Python resource
server call validate_access_token(). Checks run in order and the first failure wins; every
malformed input ends as InvalidToken (401 invalid_token), never an exception of another kind.
A token whose revocation status cannot be read is RevocationStatusUnknown (503).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from apps.accounts.models import User
from apps.core import revocation
from apps.core.errors import Unavailable
from apps.core.precompiled import Precompiled
from apps.keys import jose, keys
from apps.tokens import clients
from apps.tokens.binding import UNBOUND, Binding, mismatch
from apps.tokens.claims import ACCESS_TOKEN_TYPE

MAX_TOKEN_BYTES = 8192  # our access tokens are ~1 KB; anything far larger is hostile
LEEWAY_SECONDS = revocation.LEEWAY_SECONDS
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "typ", "ver")


class InvalidToken(Exception):
    """RFC 6750 §3.1 invalid_token; the message is safe to return to the client."""


@dataclass
class _Candidate:
    token: str
    header: dict[str, Any] = field(default_factory=dict)
    key: keys.PublishedKey | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    any_audience: bool = False
    presented: Binding | None = UNBOUND


def _check_size(c: _Candidate, audience: str) -> None:
    if len(c.token) > MAX_TOKEN_BYTES:
        raise InvalidToken("The token is too large.")


def _check_header(c: _Candidate, audience: str) -> None:
    parts = c.token.split(".")
    if len(parts) != 3:
        raise InvalidToken("The token is not a signed JWT.")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidToken("The token header is malformed.") from None
    if not isinstance(header, dict):
        raise InvalidToken("The token header is malformed.")
    if "crit" in header:  # RFC 7515 §4.1.11: we issue none, so we understand none
        raise InvalidToken("The token header names critical extensions.")
    c.header = header


def _check_type(c: _Candidate, audience: str) -> None:
    # RFC 9068 §4 / RFC 8725 §3.11: explicit typing keeps an ID token (typ JWT) or a logout
    # token from being accepted as an access token.
    if c.header.get("typ") != ACCESS_TOKEN_TYPE:
        raise InvalidToken("The token is not an access token.")


def _check_key(c: _Candidate, audience: str) -> None:
    # RFC 8725 §3.1: the algorithm comes from our key, never from the header alone.
    kid = c.header.get("kid")
    key = keys.verification_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken("The token was not signed by a key of this issuer.")
    if c.header.get("alg") != key.alg:
        raise InvalidToken("The token's algorithm does not match its key.")
    c.key = key


def _check_signature(c: _Candidate, audience: str) -> None:
    """RFC 7515 §5.2 with the algorithm of our key (RFC 8725 §3.1), through apps.keys.jose
    rather than PyJWT's decode: measured there, a third cheaper per token."""
    assert c.key is not None
    try:
        c.claims = jose.jws_verify(c.token, public_key=c.key.public_key, alg=c.key.alg)
    except jose.JWSInvalid:
        raise InvalidToken("The token is invalid.") from None


def _check_registered_claims(c: _Candidate, audience: str) -> None:
    """RFC 9068 §4 / RFC 7519 §4.1: every claim we issue is present; issuer ours; the
    audience names this resource (unless the issuer's own bookkeeping asks); within its
    lifetime, allowing LEEWAY_SECONDS of clock skew."""
    claims = c.claims
    if any(name not in claims for name in REQUIRED_CLAIMS):
        raise InvalidToken("The token is invalid.")
    if claims["iss"] != settings.ISSUER:
        raise InvalidToken("The token is invalid.")
    times = (claims["exp"], claims["iat"], claims["nbf"])
    # RFC 7519 §2 NumericDate: a number of seconds; NaN or Infinity (which Python's JSON
    # parser reads, RFC 8259 §6 does not allow) would compare as never expiring
    if not all(
        isinstance(t, int | float)
        and not isinstance(t, bool)
        and (isinstance(t, int) or math.isfinite(t))  # a huge int is no float, and finite
        for t in times
    ):
        raise InvalidToken("The token is invalid.")
    now = time.time()
    if claims["exp"] <= now - LEEWAY_SECONDS:
        raise InvalidToken("The token has expired.")
    if claims["nbf"] > now + LEEWAY_SECONDS or claims["iat"] > now + LEEWAY_SECONDS:
        raise InvalidToken("The token is invalid.")  # not yet valid, or issued in the future
    if c.any_audience:
        return
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or audience not in audiences:
        raise InvalidToken("The token is not meant for this resource.")


def _check_claims(c: _Candidate, audience: str) -> None:
    if c.claims.get("typ") != "access":
        raise InvalidToken("The token is not an access token.")
    version = c.claims.get("ver")
    if not isinstance(version, int) or version < settings.ACCESS_TOKEN_MIN_VERSION:
        raise InvalidToken("The token format is no longer accepted; get a new token.")


class RevocationStatusUnknown(Unavailable):
    """The token passed every other check, but this process's mirror of the revocation list
    is not current (Redis unreachable), so whether it was revoked is unknown. Refused all the
    same (fail closed, unless IDP_REVOCATION_FAIL_OPEN), but as 503 temporarily_unavailable
    with Retry-After, not 401 invalid_token: RFC 6750 §3.1 invalid_token says the token is
    bad, and a relying party's library then drops it and sends the person to sign in again.
    RFC 7662 (introspection) and RFC 7009 §2.2.1 (revocation: "the client must assume the
    token still exists") read it the same way. The outage is logged once by the cache bus and
    shown by /readyz, so each refusal is a WARNING line."""

    client_message = (
        "Whether this token was revoked cannot be checked right now. Try again shortly."
    )
    log_level = logging.WARNING


def _check_revocation(c: _Candidate, audience: str) -> None:
    sid = c.claims.get("sid")
    try:
        revoked = revocation.is_revoked(jti=str(c.claims["jti"]), sid=str(sid) if sid else None)
    except revocation.RevocationUnavailable as unavailable:
        raise RevocationStatusUnknown(f"revocation list not current: {unavailable}") from None
    if revoked:
        raise InvalidToken("The token has been revoked.")


def _check_client(c: _Candidate, audience: str) -> None:
    """The client that obtained the token is still registered and enabled. Tokens of the
    client_credentials grant are never stored, so disabling or deleting a client cannot put
    their ids on the revocation list; this check ends them at once instead (RFC 7662 §2.2:
    a token is active only while it may be used). The client comes from the in-process cache
    (tokens.clients, invalidated in every process on change): no statement once warm."""
    if clients.client_by_id(str(c.claims["client_id"])) is None:
        raise InvalidToken("The client this token was issued to is disabled or deleted.")


def _check_binding(c: _Candidate, audience: str) -> None:
    """RFC 8705 §3 / RFC 9449 §7.1: a sender-constrained token is good only in a request that
    proves its certificate or key (binding.py). Skipped (presented None) only for the issuer's
    bookkeeping: introspection reports `cnf` to the resource server that asked, revocation
    ends the token whoever holds it."""
    if c.presented is None:
        return
    why = mismatch(Binding.of_claims(c.claims), c.presented)
    if why:
        raise InvalidToken(why)


CHECKS: list[Callable[[_Candidate, str], None]] = [
    _check_size,
    _check_header,
    _check_type,
    _check_key,
    _check_signature,
    _check_registered_claims,
    _check_claims,
    _check_binding,
    _check_client,
    # Last: the one check whose answer can be "unknown" (503 while the list cannot be read),
    # so a token every other check refuses is a 401 even then.
    _check_revocation,
]


def validate_access_token(
    token: str,
    *,
    audience: str | None = None,
    any_audience: bool = False,
    presented: Binding | None = UNBOUND,
) -> dict[str, Any]:
    """The verified claims of a Tessera access token meant for `audience` (default: the
    issuer, i.e. our own userinfo), used in a request that proves `presented` (binding.py;
    the default proves nothing, so a bound token is refused). `any_audience` and
    `presented=None` are for the issuer's own bookkeeping (revocation, introspection), never
    for a resource deciding whether to serve. Raises InvalidToken."""
    candidate = _Candidate(token=token, any_audience=any_audience, presented=presented)
    for check in CHECKS:
        check(candidate, audience or settings.ACCESS_TOKEN_AUDIENCE)
    return candidate.claims


class InsufficientScope(Exception):
    """RFC 6750 §3.1 insufficient_scope: a valid token that may not do this; the message is
    safe to return to the client."""


def bearer_user(
    token: str, *, scope: str, presented: Binding = UNBOUND
) -> tuple[User, dict[str, Any]]:
    """The active person an access token for our own endpoints acts for, when it carries
    `scope`. Raises InvalidToken (RFC 6750: 401) or InsufficientScope (403). A token of a
    client_credentials grant acts for no one (OIDC Core §5.3 userinfo; the admin API records
    every action against a person, OWASP ASVS 7.2.2)."""
    claims = validate_access_token(token, presented=presented)
    if scope not in str(claims.get("scope", "")).split():
        raise InsufficientScope(f"The token was not issued with the {scope} scope.")
    if not claims.get("uid"):
        raise InsufficientScope(
            "The token acts for no person (client_credentials); this needs a token issued "
            "to a user."
        )
    try:
        found = _ACTIVE_USER.models(uuid.UUID(str(claims["uid"])))
    except ValueError:
        raise InvalidToken("The token's uid is not a person's id.") from None
    if not found:
        raise InvalidToken("The token's user no longer exists or is deactivated.")
    return found[0], claims


def _active_user(user_id: uuid.UUID) -> QuerySet[User]:
    found: QuerySet[User] = User.objects.filter(pk=user_id, is_active=True)
    return found.order_by()[:1]


# Compiled once per process: the ORM took longer to compile this read than to run it, and
# userinfo runs nothing else (issue 11).
_ACTIVE_USER: Precompiled[User] = Precompiled(
    _active_user, field=User._meta.get_field("id"), samples=(uuid.UUID(int=1), uuid.UUID(int=2))
)
