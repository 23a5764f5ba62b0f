"""The revocation list: access-token ids (jti) and login-session ids (sid) that must no longer
be accepted, in Redis with a TTL equal to the longest remaining life of a token they cover.

JWT access tokens are validated without a database; this list is how one dies early
(RFC 7009 revocation, refresh-token reuse, logout, an operator's revoke). Each process keeps
a mirror of it in memory, kept current through Redis pub/sub, so a check costs no round trip
and a revocation reaches every process within milliseconds. While the mirror cannot be kept
current (Redis unreachable), checks fail closed unless IDP_REVOCATION_FAIL_OPEN says otherwise.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from redis.exceptions import RedisError

from apps.core.redis import get_redis

_PREFIX = "tessera:revoked:"
CHANNEL = "tessera:revocations"
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


def _revoke(key: str, ttl: int) -> None:
    pipe = get_redis().pipeline(transaction=True)  # stored and announced together
    pipe.set(key, 1, ex=ttl)
    pipe.publish(CHANNEL, f"{key} {ttl}")
    pipe.execute()
    _mirror.remember(key, ttl)  # this process refuses it at once, not when pub/sub arrives


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


class _Mirror:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self.current = threading.Event()
        # Set once the follower's first attempt has ended, loaded or failed.
        self.settled = threading.Event()
        self.problem = "not started"

    def start(self) -> bool:
        """Starts the follower thread unless it runs; True when it was started now."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._thread = threading.Thread(
                target=self._follow, name="revocation-mirror", daemon=True
            )
            self._thread.start()
            return True

    def remember(self, key: str, ttl: int) -> None:
        self._entries[key] = time.monotonic() + ttl

    def is_current(self) -> bool:
        """Whether the mirror holds the list. Only a process's first looks wait (up to
        STARTUP_WAIT_SECONDS) for the follower's first attempt; once that has ended, the
        answer is immediate, so an outage refuses tokens without holding each request."""
        if not self.current.is_set():
            self.start()
            self.settled.wait(STARTUP_WAIT_SECONDS)
        return self.current.is_set()

    def contains_any(self, keys: list[str]) -> bool:
        if not self.is_current():
            raise RevocationUnavailable(self.problem)
        now = time.monotonic()
        return any(self._entries.get(key, 0.0) > now for key in keys)

    def _follow(self) -> None:
        backoff = 0.1
        while True:
            try:
                self._subscribe_and_listen()
            except (RedisError, OSError, ValueError) as error:
                self.problem = f"Redis unreachable: {type(error).__name__}: {error}"[:200]
                if self.current.is_set():  # say it once, not on every retry
                    log.warning("revocation list unavailable; tokens are refused until it is back",
                                extra={"error": self.problem})  # fmt: skip
                self.current.clear()
                self.settled.set()
            time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _subscribe_and_listen(self) -> None:
        redis = get_redis()
        pubsub = redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(CHANNEL)  # subscribe first, then load: nothing falls between
            self._load()
            if not self.current.is_set() and self.problem != "not started":
                log.warning("revocation list current again")
            self.current.set()
            self.settled.set()
            last_ping = time.monotonic()
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message is not None and message["type"] == "message":
                    key, ttl = message["data"].decode().rsplit(" ", 1)
                    self._entries[key] = time.monotonic() + int(ttl)
                if time.monotonic() - last_ping > 5:  # a silent dead connection must show
                    pubsub.ping()
                    last_ping = time.monotonic()
                    self._prune()
        finally:
            pubsub.close()

    def _load(self) -> None:
        redis = get_redis()
        keys = list(redis.scan_iter(match=f"{_PREFIX}*", count=1000))
        ttls = redis.pipeline(transaction=False)
        for key in keys:
            ttls.pttl(key)
        now = time.monotonic()
        entries = {
            key.decode(): now + ttl / 1000
            for key, ttl in zip(keys, ttls.execute(), strict=True)
            if ttl > 0
        }
        self._entries = entries

    def _prune(self) -> None:
        now = time.monotonic()
        self._entries = {key: until for key, until in self._entries.items() if until > now}


_mirror = _Mirror()
