"""The one access-token validation service: userinfo, introspection and any Python resource
server call validate_access_token(). Checks run in order and the first failure wins; every
malformed input ends as InvalidToken (401 invalid_token), never an exception of another kind.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from django.conf import settings

from apps.accounts.models import User
from apps.core import revocation
from apps.keys import keys
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


def _check_signature_and_times(c: _Candidate, audience: str) -> None:
    assert c.key is not None
    try:
        c.claims = jwt.decode(
            c.token,
            c.key.public_key,
            algorithms=[c.key.alg],
            audience=audience,
            issuer=settings.ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": list(REQUIRED_CLAIMS), "verify_aud": not c.any_audience},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("The token has expired.") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("The token is not meant for this resource.") from None
    except (jwt.PyJWTError, TypeError, ValueError, RecursionError):
        raise InvalidToken("The token is invalid.") from None


def _check_claims(c: _Candidate, audience: str) -> None:
    if c.claims.get("typ") != "access":
        raise InvalidToken("The token is not an access token.")
    version = c.claims.get("ver")
    if not isinstance(version, int) or version < settings.ACCESS_TOKEN_MIN_VERSION:
        raise InvalidToken("The token format is no longer accepted; get a new token.")


def _check_revocation(c: _Candidate, audience: str) -> None:
    sid = c.claims.get("sid")
    try:
        revoked = revocation.is_revoked(jti=str(c.claims["jti"]), sid=str(sid) if sid else None)
    except revocation.RevocationUnavailable:
        raise InvalidToken("Revocation status is unavailable; try again shortly.") from None
    if revoked:
        raise InvalidToken("The token has been revoked.")


CHECKS: list[Callable[[_Candidate, str], None]] = [
    _check_size,
    _check_header,
    _check_type,
    _check_key,
    _check_signature_and_times,
    _check_claims,
    _check_revocation,
]


def validate_access_token(
    token: str, *, audience: str | None = None, any_audience: bool = False
) -> dict[str, Any]:
    """The verified claims of a Tessera access token meant for `audience` (default: the
    issuer, i.e. our own userinfo). `any_audience` is for the issuer's own bookkeeping
    (revocation), never for a resource deciding whether to serve. Raises InvalidToken."""
    candidate = _Candidate(token=token, any_audience=any_audience)
    for check in CHECKS:
        check(candidate, audience or settings.ACCESS_TOKEN_AUDIENCE)
    return candidate.claims


class InsufficientScope(Exception):
    """RFC 6750 §3.1 insufficient_scope: a valid token that may not do this; the message is
    safe to return to the client."""


def bearer_user(token: str, *, scope: str) -> tuple[User, dict[str, Any]]:
    """The active person an access token for our own endpoints acts for, when it carries
    `scope`. Raises InvalidToken (RFC 6750: 401) or InsufficientScope (403). A token of a
    client_credentials grant acts for no one (OIDC Core §5.3 userinfo; the admin API records
    every action against a person, OWASP ASVS 7.2.2)."""
    claims = validate_access_token(token)
    if scope not in str(claims.get("scope", "")).split():
        raise InsufficientScope(f"The token was not issued with the {scope} scope.")
    if not claims.get("uid"):
        raise InsufficientScope(
            "The token acts for no person (client_credentials); this needs a token issued "
            "to a user."
        )
    user = User.objects.filter(pk=claims["uid"], is_active=True).first()
    if user is None:
        raise InvalidToken("The token's user no longer exists or is deactivated.")
    return user, claims
