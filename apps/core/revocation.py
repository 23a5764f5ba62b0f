"""The revocation list: access-token ids (jti) and login-session ids (sid) that must no longer
be accepted, in Redis with a TTL equal to the longest remaining life of a token they cover.

JWT access tokens are validated without a database; this list is how one dies early
(RFC 7009 revocation, refresh-token reuse, logout, an operator's revoke). Each process keeps
a mirror of it in memory, kept current through the one cache channel (apps.core.cache), so
a check costs no round trip and a revocation reaches every process within milliseconds.
While the mirror cannot be kept current (Redis unreachable), checks fail closed unless
IDP_REVOCATION_FAIL_OPEN says otherwise.
"""

from __future__ import annotations

import logging
import threading
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string
from redis.commands.core import Script

from apps.core.cache import CHANNEL, ProcessCache, _clock, bus
from apps.core.redis import get_redis

_PREFIX = "tessera:revoked:"
CACHE = "revocation"  # its name on the cache channel (apps.core.cache.CHANNEL)
# Clock leeway the validators allow past exp; a listed id outlives it.
LEEWAY_SECONDS = 30
# How long a first check waits for the mirror of a process that has just started.
STARTUP_WAIT_SECONDS = 2.0

log = logging.getLogger("tessera.revocation")


class RevocationUnavailable(Exception):
    """The list cannot be read: a token's status is unknown."""


def revoke_jti(jti: str, *, expires_in: int) -> None:
    """Rejects one access token until it would have expired anyway."""
    if expires_in > 0:
        _revoke(f"{_PREFIX}jti:{jti}", expires_in + LEEWAY_SECONDS)


def revoke_sid(sid: str) -> None:
    """Rejects every access token issued under a login session."""
    _revoke(f"{_PREFIX}sid:{sid}", settings.ACCESS_TOKEN_LIFETIME + LEEWAY_SECONDS)


# Stored and announced together, in one script: atomic like MULTI, and with its one key it
# runs the same on a single primary and in a Redis Cluster (where PUBLISH reaches every node
# and a MULTI holding a keyless PUBLISH cannot be routed).
REVOKE_LUA = """
redis.call('SET', KEYS[1], 1, 'EX', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""


def _revoke(key: str, ttl: int) -> None:
    _revoke_script()(keys=[key], args=[ttl, CHANNEL, f"{CACHE} {key} {ttl}"], client=get_redis())
    _mirror.remember(key, ttl)  # this process refuses it at once, not when pub/sub arrives


@cache
def _revoke_script() -> Script:
    return get_redis().register_script(REVOKE_LUA)


class UserAccessRevoker(Protocol):
    """Port: revokes every live access token of a person, wherever they were issued; returns
    how many. accounts asks through it (it may import only core); apps.tokens implements it,
    named by settings.USER_ACCESS_TOKEN_REVOKER (a dotted path, as READINESS_CHECKS)."""

    def __call__(self, *, user_id: object, reason: str, actor_id: object) -> int: ...


def revoke_user_access_tokens(*, user_id: object, reason: str, actor_id: object = None) -> int:
    revoker: UserAccessRevoker = import_string(settings.USER_ACCESS_TOKEN_REVOKER)
    return revoker(user_id=user_id, reason=reason, actor_id=actor_id)


class UserOfflineGrantsRevoker(Protocol):
    """Port: ends every live offline grant of a person (their refresh tokens refused, their
    access tokens listed); returns how many. Threat responses ask through it (apps.threat
    may not import apps.tokens); apps.tokens implements it, named by
    settings.USER_OFFLINE_GRANTS_REVOKER."""

    def __call__(self, *, user: Any, reason: str, actor_id: object) -> int: ...


def revoke_user_offline_grants(*, user: Any, reason: str, actor_id: object = None) -> int:
    revoker: UserOfflineGrantsRevoker = import_string(settings.USER_OFFLINE_GRANTS_REVOKER)
    return revoker(user=user, reason=reason, actor_id=actor_id)


def is_revoked(*, jti: str, sid: str | None) -> bool:
    keys = [f"{_PREFIX}jti:{jti}"] + ([f"{_PREFIX}sid:{sid}"] if sid else [])
    try:
        return _mirror.contains_any(keys)
    except RevocationUnavailable:
        if settings.REVOCATION_FAIL_OPEN:
            log.warning("revocation list unavailable; accepting the token (fail-open setting)")
            return False
        raise


def mirror_state() -> str:
    """For /readyz: empty when current, else why not."""
    return "" if _mirror.is_current() else _mirror.problem


class _RevocationList(ProcessCache[bool]):
    """The list mirrored in this process: one entry per listed key, kept as long as its TTL
    in Redis. Rides the process's one cache subscription (apps.core.cache): each time it
    subscribes the whole list is loaded again; a message adds one key. Unbounded: a revoked
    id must never be evicted while its tokens live."""

    def __init__(self) -> None:
        super().__init__(CACHE, max_age=0.0, max_entries=None)  # each entry has its own TTL

    @property
    def current(self) -> threading.Event:
        return bus.current

    @property
    def problem(self) -> str:
        return bus.problem

    def remember(self, key: str, ttl: int) -> None:
        self.put(key, True, max_age=ttl)

    def is_current(self) -> bool:
        """Whether the mirror holds the list. Only a process's first looks wait (up to
        STARTUP_WAIT_SECONDS) for the subscriber's first attempt; once that has ended, the
        answer is immediate, so an outage refuses tokens without holding each request."""
        if not bus.current.is_set():
            bus.start()
            bus.settled.wait(STARTUP_WAIT_SECONDS)
        return bus.current.is_set()

    def contains_any(self, keys: list[str]) -> bool:
        if not self.is_current():
            raise RevocationUnavailable(bus.problem)
        return any(self.peek(key) for key in keys)

    def on_message(self, key: str) -> None:
        listed, ttl = key.rsplit(" ", 1)
        self.remember(listed, int(ttl))

    def on_subscribed(self) -> None:
        """Loads the list, keeping what this process already holds: nothing is ever taken
        off it early, and after a Sentinel failover the new primary may lack a revocation
        the old one took in its last moments (asynchronous replication), which the processes
        that heard it keep refusing until its own TTL."""
        redis = get_redis()
        keys = list(redis.scan_iter(match=f"{_PREFIX}*", count=1000))
        ttls = redis.pipeline(transaction=False)
        for key in keys:
            ttls.pttl(key)
        now = _clock()
        listed = {
            key: (True, entry.expires_at - now)
            for key, entry in self._entries.items()
            if not entry.invalidated and entry.expires_at > now
        }
        for key, ttl in zip(keys, ttls.execute(), strict=True):
            if ttl > 0:
                listed[key.decode()] = (True, ttl / 1000)
        self.replace_all(listed)


_mirror = _RevocationList()
