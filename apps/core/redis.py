"""The process's Redis client: one connection pool shared by every caller."""

from __future__ import annotations

from typing import cast

from django_redis import get_redis_connection  # type: ignore[import-untyped]
from redis import Redis


def get_redis() -> Redis:
    return cast(Redis, get_redis_connection("default"))
