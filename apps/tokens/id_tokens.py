"""Reading back ID tokens we issued, as `id_token_hint` (OIDC Core §3.1.2.1, RP-Initiated
Logout 1.0 §2). An expired hint is still a valid hint; a forged one never is."""

from __future__ import annotations

from typing import Any

import jwt
from django.conf import settings

from apps.keys import keys

MAX_HINT_BYTES = 8192


def verify_hint(token: str) -> dict[str, Any] | None:
    """The claims of an ID token signed by one of our published keys, or None.

    RFC 8725 §3.1: the algorithm is the key's, never the header's (so `alg: none` and
    HS256-with-our-public-key fail); `typ` must be JWT so an access token is no hint.
    """
    if len(token) > MAX_HINT_BYTES:
        return None
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        key = keys.verification_key(kid) if isinstance(kid, str) else None
        if key is None or header.get("alg") != key.alg or header.get("typ") != "JWT":
            return None
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=[key.alg],
            issuer=settings.ISSUER,
            options={"verify_exp": False, "verify_aud": False, "require": ["sub", "aud", "iss"]},
        )
    except (jwt.PyJWTError, TypeError, ValueError, RecursionError):
        return None
    return claims
