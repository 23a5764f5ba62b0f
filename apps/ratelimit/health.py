"""The rate limiter's readiness check (settings.READINESS_CHECKS; apps/core/health.py)."""

from __future__ import annotations

from redis.exceptions import RedisError

from apps.core.health import Degraded
from apps.core.redis import get_redis
from apps.ratelimit.limiter import outage


def ratelimit_state() -> str:
    """Up while limits are shared in Redis; degraded while they are kept per process
    (credential endpoints limited per process, others unlimited)."""
    try:
        get_redis().ping()
    except RedisError as error:
        raise Degraded(
            f"Redis unreachable ({type(error).__name__}): credential endpoints are limited "
            "per process, other endpoints are not limited"
        ) from error
    if outage.since is not None:
        return "Redis answers again; this process returns to shared limits at its next request"
    return "limits shared in Redis"
