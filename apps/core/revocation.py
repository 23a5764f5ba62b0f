"""The revocation list: access-token ids (jti) and login-session ids (sid) that must no longer
be accepted, in Redis with a TTL equal to the longest remaining life of a token they cover.

JWT access tokens are validated without a database; this list is how one dies early
(RFC 7009 revocation, refresh-token reuse, logout, an operator's revoke).
"""

from __future__ import annotations

from django.conf import settings

from apps.core.redis import get_redis

_PREFIX = "tessera:revoked:"
# Clock leeway the validators allow past exp; a listed id outlives it.
LEEWAY_SECONDS = 30


def revoke_jti(jti: str, *, expires_in: int) -> None:
    """Rejects one access token until it would have expired anyway."""
    if expires_in > 0:
        get_redis().set(f"{_PREFIX}jti:{jti}", 1, ex=expires_in + LEEWAY_SECONDS)


def revoke_sid(sid: str) -> None:
    """Rejects every access token issued under a login session."""
    ttl = settings.ACCESS_TOKEN_LIFETIME + LEEWAY_SECONDS
    get_redis().set(f"{_PREFIX}sid:{sid}", 1, ex=ttl)


def is_revoked(*, jti: str, sid: str | None) -> bool:
    keys = [f"{_PREFIX}jti:{jti}"] + ([f"{_PREFIX}sid:{sid}"] if sid else [])
    return bool(get_redis().exists(*keys))
