"""The one in-process cache mechanism: values kept in a process's memory, each with a bound
on how stale it may be, invalidated in every process through one Redis pub/sub channel.

A `ProcessCache` holds entries under a name ("clients", "keys", "revocation" ...). Each entry
says how long it may be served (`max_age`, per cache or per entry). A change anywhere calls
`publish(name, key)` once it has committed (`publish_on_commit`): this process drops the entry
at once and every other process drops it when the message arrives, within milliseconds.

One subscriber thread per process (`bus`) listens on CHANNEL for every cache; a message is
"<cache name> <key>" (key `*`: the whole cache), so caches share one connection and one
thread. The thread subscribes before a cache is first read; each time it (re)subscribes, every
cache is told (`on_subscribed`): a plain cache drops what it holds (a message may have been
missed meanwhile), the revocation list loads itself again.

While Redis is unreachable, nothing fails: a publisher logs and goes on, and every process
serves what it holds no longer than its max age, so a change is seen within max_age instead
of within a second. Keep max ages short (30 s or less) for anything a change must reach.

Entries whose keys come from the network (client ids) are bounded (`max_entries`, oldest
first out); callers do not cache what was not found, so a flood of unknown ids cannot evict
real entries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from django.db import transaction
from redis.exceptions import RedisError

from apps.core.redis import get_redis

CHANNEL = "tessera:cache"
ALL = "*"  # a message key that invalidates the whole cache
# How long a process's first read waits for the subscriber's first attempt, so that a value
# loaded right after start-up cannot miss an invalidation published meanwhile.
STARTUP_WAIT_SECONDS = 2.0
PING_INTERVAL = 5.0  # a silent dead connection shows within this, and expired entries go

log = logging.getLogger("tessera.cache")

_clock = time.monotonic
V = TypeVar("V")


class Listener(Protocol):
    """What the subscriber thread tells a cache."""

    name: str

    def on_message(self, key: str) -> None: ...

    def on_subscribed(self) -> None:
        """Subscribed (first time or again): messages may have been missed before this."""

    def on_lost(self) -> None:
        """The subscription is gone: no message arrives until on_subscribed."""

    def prune(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Entry(Generic[V]):
    value: V
    loaded_at: float  # _clock()
    expires_at: float  # _clock(); served until then
    invalidated: bool = False  # kept only as `previous` for the next load, never served


class ProcessCache(Generic[V]):
    """Values by key in this process, each served until its max age or an invalidation.

    `get(key, load)` serves a fresh entry with no lock; on a miss it calls load(previous),
    where previous is the entry's last value (expired or invalidated) or None, so a loader
    can reuse what it parsed before. load returning None caches nothing. A load that began
    before an invalidation of this cache is returned to its caller but not kept.

    single_flight: one load at a time; while it runs, other readers get the expired value
    (if any) instead of waiting. stale_on: exception types after which the previous value is
    served again for stale_retry seconds (the database is down: keep signing) instead of
    failing; without a previous value the exception propagates.
    """

    def __init__(
        self,
        name: str,
        *,
        max_age: float,
        max_entries: int | None,
        single_flight: bool = False,
        stale_on: tuple[type[BaseException], ...] = (),
        stale_retry: float = 1.0,
    ) -> None:
        if not name or " " in name:
            raise ValueError(f"a cache name is one word: {name!r}")
        self.name = name
        self.max_age = max_age
        self.max_entries = max_entries
        self._single_flight = single_flight
        self._stale_on = stale_on
        self._stale_retry = stale_retry
        self._entries: dict[str, Entry[V]] = {}  # insertion order: oldest first out
        self._lock = threading.Lock()  # writers of _entries and _epoch
        self._load_lock = threading.Lock()  # single_flight
        self._epoch = 0  # bumped by every invalidation: a load that straddles one is not kept
        bus.register(self)

    # --- reads ---------------------------------------------------------------------------

    def peek(self, key: str) -> V | None:
        """The fresh value under key, or None; never loads."""
        entry = self._entries.get(key)
        if entry is not None and not entry.invalidated and entry.expires_at > _clock():
            return entry.value
        return None

    def get(self, key: str, load: Callable[[V | None], V | None]) -> V | None:
        entry = self._entries.get(key)
        if entry is not None and not entry.invalidated and entry.expires_at > _clock():
            return entry.value
        bus.ensure_started()
        if not self._single_flight:
            return self._load(key, load)
        if entry is not None and not entry.invalidated:
            if not self._load_lock.acquire(blocking=False):
                return entry.value  # another thread is loading: serve the expired value
        else:
            self._load_lock.acquire()
        try:
            fresh = self.peek(key)  # loaded by the thread this one waited for
            return fresh if fresh is not None else self._load(key, load)
        finally:
            self._load_lock.release()

    def refresh(
        self, key: str, load: Callable[[V | None], V | None], *, min_interval: float
    ) -> V | None:
        """Load again now, unless the value was loaded less than min_interval ago: for a
        caller who finds the cached value lacking (an unknown kid), at a bounded rate."""
        entry = self._entries.get(key)
        if (
            entry is not None
            and not entry.invalidated
            and _clock() - entry.loaded_at < min_interval
        ):
            return entry.value
        bus.ensure_started()
        with self._load_lock if self._single_flight else contextlib.nullcontext():
            entry = self._entries.get(key)
            if (
                entry is not None
                and not entry.invalidated
                and _clock() - entry.loaded_at < min_interval
            ):
                return entry.value
            return self._load(key, load)

    def _load(self, key: str, load: Callable[[V | None], V | None]) -> V | None:
        epoch = self._epoch
        previous = self._entries.get(key)
        try:
            value = load(previous.value if previous is not None else None)
        except self._stale_on:
            if previous is None:
                raise
            log.exception("cache %s: loading %r failed; serving the previous value", self.name,
                          key)  # fmt: skip
            now = _clock()
            self._store(key, Entry(previous.value, now, now + self._stale_retry), epoch)
            return previous.value
        if value is not None:
            now = _clock()
            self._store(key, Entry(value, now, now + self.max_age), epoch)
        return value

    # --- writes (this process only; publish() reaches every process) ----------------------

    def put(self, key: str, value: V, *, max_age: float | None = None) -> None:
        now = _clock()
        entry = Entry(value, now, now + (self.max_age if max_age is None else max_age))
        with self._lock:
            self._insert(key, entry)

    def replace_all(self, entries: dict[str, tuple[V, float]]) -> None:
        """Hold exactly these (key -> (value, max_age)): a cache that mirrors a whole set."""
        now = _clock()
        fresh = {key: Entry(value, now, now + age) for key, (value, age) in entries.items()}
        with self._lock:
            self._epoch += 1
            self._entries = fresh

    def invalidate(self, key: str = ALL) -> None:
        """Stop serving key (ALL: every key) in this process."""
        with self._lock:
            self._epoch += 1
            if key == ALL:
                self._entries = {k: _invalidated(e) for k, e in self._entries.items()}
            elif key in self._entries:
                self._entries[key] = _invalidated(self._entries[key])

    def _store(self, key: str, entry: Entry[V], epoch: int) -> None:
        with self._lock:
            if epoch == self._epoch:  # else invalidated while loading: serve once, keep not
                self._insert(key, entry)

    def _insert(self, key: str, entry: Entry[V]) -> None:
        entries = self._entries
        entries.pop(key, None)  # re-inserted at the end: the oldest entries go first
        entries[key] = entry
        if self.max_entries is not None:
            while len(entries) > self.max_entries:
                del entries[next(iter(entries))]

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # a lock held by another thread at fork stays held
        self._load_lock = threading.Lock()
        # What came from the parent may be stale: no message has reached it since the fork.
        self._entries = {k: _invalidated(e) for k, e in self._entries.items()}

    # --- the subscriber thread's calls -----------------------------------------------------

    def on_message(self, key: str) -> None:
        self.invalidate(key)

    def on_subscribed(self) -> None:
        self.invalidate()  # what changed while no message could arrive is unknown

    def on_lost(self) -> None:
        """Entries run out by their max age meanwhile."""

    def prune(self) -> None:
        """Drop expired entries of an unbounded cache. A bounded one keeps them (its bound
        holds anyway) as the `previous` value its next load may reuse."""
        if self.max_entries is not None:
            return
        now = _clock()
        with self._lock:
            self._entries = {
                key: entry
                for key, entry in self._entries.items()
                if entry.expires_at > now and not entry.invalidated
            }


def _invalidated(entry: Entry[V]) -> Entry[V]:
    return Entry(entry.value, entry.loaded_at, float("-inf"), invalidated=True)


# --- publishing ------------------------------------------------------------------------------


def publish(name: str, key: str = ALL) -> None:
    """Invalidate key of cache `name` in this process now and in every other through CHANNEL.
    Call it after the change has committed (publish_on_commit). Never raises: with Redis
    unreachable the other processes see the change within the cache's max age."""
    listener = bus.listener(name)
    if listener is not None:
        listener.on_message(key)
    try:
        get_redis().publish(CHANNEL, f"{name} {key}")
    except (RedisError, OSError) as error:
        log.warning("cache %s: invalidation of %r not published (%s); other processes see the "
                    "change within their max age", name, key, error)  # fmt: skip


def publish_on_commit(name: str, key: str = ALL) -> None:
    """publish() once the current transaction commits (at once outside one). This process
    stops serving the key now too, so that it does not wait for the commit to see its own
    change."""
    listener = bus.listener(name)
    if listener is not None:
        listener.on_message(key)
    transaction.on_commit(lambda: publish(name, key))


# --- the subscriber thread ---------------------------------------------------------------------


class _Bus:
    """One thread per process, subscribed to CHANNEL, telling each cache what arrives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[str, Listener] = {}
        self._thread: threading.Thread | None = None
        self.current = threading.Event()  # subscribed, and every listener has caught up
        self.settled = threading.Event()  # the first attempt has ended, either way
        self.problem = "not started"

    def register(self, listener: Listener) -> None:
        with self._lock:
            if listener.name in self._listeners:
                raise ValueError(f"two caches named {listener.name!r}")
            self._listeners[listener.name] = listener

    def listener(self, name: str) -> Listener | None:
        return self._listeners.get(name)

    def ensure_started(self) -> None:
        """Start the thread unless it runs; a process's first call waits (up to
        STARTUP_WAIT_SECONDS) for its first attempt, so what is loaded after it is covered by
        the subscription. Cheap once current."""
        if self.current.is_set():
            return
        self.start()
        self.settled.wait(STARTUP_WAIT_SECONDS)

    def start(self) -> bool:
        """Starts the thread unless it runs; True when it was started now."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._thread = threading.Thread(target=self._follow, name="cache-bus", daemon=True)
            self._thread.start()
            return True

    def _follow(self) -> None:
        backoff = 0.1
        while True:
            try:
                self._subscribe_and_listen()
            except (RedisError, OSError, ValueError) as error:
                self.problem = f"Redis unreachable: {type(error).__name__}: {error}"[:200]
                if self.current.is_set():  # say it once, not on every retry
                    log.warning("cache invalidation channel lost; caches fall back to their max "
                                "age", extra={"error": self.problem})  # fmt: skip
                self.current.clear()
                for listener in list(self._listeners.values()):
                    listener.on_lost()
                self.settled.set()
            time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _subscribe_and_listen(self) -> None:
        pubsub = get_redis().pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(CHANNEL)  # subscribe first, then catch up: nothing falls between
            for listener in list(self._listeners.values()):
                listener.on_subscribed()
            if not self.current.is_set() and self.problem != "not started":
                log.warning("cache invalidation channel back")
            self.problem = ""
            self.current.set()
            self.settled.set()
            last_ping = _clock()
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message is not None and message["type"] == "message":
                    self._deliver(message["data"])
                if _clock() - last_ping > PING_INTERVAL:
                    pubsub.ping()
                    last_ping = _clock()
                    for listener in list(self._listeners.values()):
                        listener.prune()
        finally:
            pubsub.close()

    def _deliver(self, data: bytes) -> None:
        name, _, key = data.decode("utf-8", "replace").partition(" ")
        listener = self._listeners.get(name)
        if listener is None or not key:
            return  # a cache this process does not hold (or a newer release's message)
        try:
            listener.on_message(key)
        except Exception:  # one bad message must not stop every cache's invalidations
            log.exception("cache %s: message %r not applied", name, key)

    def after_fork(self) -> None:
        """In a forked child (a Celery prefork worker, gunicorn with preload): the parent's
        thread did not come along, so neither did its subscription. Start afresh, and drop
        what the parent had cached, since no message reached it since the fork."""
        self._lock = threading.Lock()
        self._thread = None
        self.current = threading.Event()
        self.settled = threading.Event()
        self.problem = "not started"
        for listener in list(self._listeners.values()):
            if isinstance(listener, ProcessCache):
                listener.after_fork()  # the revocation list too: it loads again on subscribing


bus = _Bus()
os.register_at_fork(after_in_child=bus.after_fork)
