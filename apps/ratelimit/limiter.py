"""Where limits are kept: Redis (one Lua script per request), or, while Redis is unreachable,
a bounded per-process stand-in for the credential endpoints.

Redis: evaluate.lua checks every rule of a request and reserves its failed-attempt counters
in ONE round trip (EVALSHA through redis-py's Script, which loads the script again on
NOSCRIPT); done.lua settles a reservation. Measured against the `limits` library in
benchmarks/ratelimit.py (the figures are in the module docstring there): `limits` needs one
round trip per rule (its moving window is a list of timestamps per key, O(limit) memory; its
sliding-window counter is two keys and a round trip per rule), so ours, which is one round
trip for all rules, won.

Redis unreachable (issue 12): rules of the credential endpoints (login, token, introspection,
revocation) are kept in this process (LocalStore, at most LOCAL_MAX_KEYS keys, least
recently used dropped first), never unlimited; other rules pass. The outage is logged once
when it begins and once when it ends, and Redis is tried again at most every RETRY_SECONDS,
so an outage costs no request a connection timeout each. /readyz says `degraded`
(apps/ratelimit/health.py).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from redis.commands.core import Script
from redis.exceptions import RedisError

from apps.core.redis import get_redis
from apps.ratelimit.rules import PREFIX, REFUSING_KEY, Key

log = logging.getLogger("tessera.ratelimit")

LEASE_MS = 30_000  # an attempt not settled by then (its process died) frees its place
# How long a host that proved a client's secret stays exempt from the client id's own lockout
# (evaluate.lua): client hosts are few and stable, and a client id is public, so without it
# anyone could lock a confidential client out with LOCKOUT_THRESHOLD wrong secrets.
KNOWN_SOURCE_MS = 30 * 86_400_000
LOCAL_MAX_KEYS = 10_000
RETRY_SECONDS = 1.0
FLUSH_SECONDS = 0.01  # a success settles with the next call, or after this long

ALLOWED, RATE_LIMITED, LOCKED, BUSY = 0, 1, 2, 3

_HERE = Path(__file__).resolve().parent
EVALUATE_LUA = (_HERE / "evaluate.lua").read_text()
DONE_LUA = (_HERE / "done.lua").read_text()


@dataclass(frozen=True, slots=True)
class Counter:
    """A failed-attempt counter: per identifier, or per (identifier, IP)."""

    kind: str  # "login" (passwords), "client" (client secrets), "mfa" (second factors)
    identifier: str  # normalized and bounded (rules.identifier_value / client_value)
    ip: str = ""  # rules.ip_value; "" for the identifier's own counter

    @property
    def hash_key(self) -> str:
        scope = f"{self.identifier}:{self.ip}" if self.ip else self.identifier
        return f"{PREFIX}lock:{self.kind}:{scope}"

    @property
    def lease_key(self) -> str:
        return self.hash_key + ":inflight"

    @property
    def index_key(self) -> str:
        """The set of the identifier's per-IP counters (done.lua keeps it), so an operator's
        read of one identifier needs no SCAN. Outside the lock: prefix, which scans match."""
        return f"{PREFIX}lockips:{self.kind}:{self.identifier}"

    @property
    def known_ms(self) -> int:
        """A client's per-IP counter remembers a success this long (evaluate.lua `ok`)."""
        return KNOWN_SOURCE_MS if self.kind == "client" and self.ip else 0

    @property
    def waive_ms(self) -> int:
        """For a host known this long (a success on its per-IP counter, which must come first
        among the attempt's counters), a client's own counter is waived and its per-IP one,
        while it holds no failure, caps no attempts in flight (evaluate.lua)."""
        return KNOWN_SOURCE_MS if self.kind == "client" else 0

    @property
    def threshold(self) -> int:
        if self.kind == "mfa":
            return int(settings.MFA_LOCKOUT_THRESHOLD)
        return int(settings.LOCKOUT_IP_THRESHOLD if self.ip else settings.LOCKOUT_THRESHOLD)


@dataclass(frozen=True, slots=True)
class RuleResult:
    key: Key
    retry_ms: int
    remaining: int
    reset_ms: int
    notify: bool  # the first refusal of this key in its window: record one event


@dataclass(frozen=True, slots=True)
class Outcome:
    code: int
    rules: list[RuleResult]
    counters: list[tuple[int, int]]  # (state, retry_ms; -1 = until unlocked) per counter
    degraded: bool = False
    lease: str = ""


@dataclass(frozen=True, slots=True)
class Settled:
    locked: bool  # this failure locked the counter
    wait_ms: int
    lockouts: int
    permanent: bool
    failures: int


def _lockout_args() -> list[int]:
    return [
        settings.LOCKOUT_WAIT_INCREMENT * 1000,
        settings.LOCKOUT_MAX_WAIT * 1000,
        settings.LOCKOUT_FAILURE_RESET * 1000,
        settings.LOCKOUT_PERMANENT_AFTER,
    ]


class _Outage:
    """Whether Redis is unreachable for this process: logged once each way."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.since: float | None = None
        self.retry_at = 0.0

    def skip_redis(self) -> bool:
        return self.since is not None and time.monotonic() < self.retry_at

    def failed(self, error: Exception) -> None:
        with self.lock:
            self.retry_at = time.monotonic() + RETRY_SECONDS
            if self.since is None:
                self.since = time.time()
                log.error(
                    "rate limits: Redis unreachable (%s); credential endpoints are limited "
                    "per process, other endpoints pass, until it is back",
                    type(error).__name__,
                )

    def recovered(self) -> None:
        if self.since is None:
            return
        with self.lock:
            if self.since is not None:
                log.warning(
                    "rate limits: Redis is back after %.0fs; limits are shared again",
                    time.time() - self.since,
                )
                self.since = None


outage = _Outage()


class RedisStore:
    def __init__(self) -> None:
        self._scripts: tuple[Script, Script] | None = None

    def _script(self, done: bool) -> Script:
        if self._scripts is None:
            client = get_redis()
            self._scripts = (client.register_script(EVALUATE_LUA), client.register_script(DONE_LUA))
        return self._scripts[1 if done else 0]

    def evaluate(
        self, keys: list[Key], counters: list[Counter], lease: str, releases: list[Release]
    ) -> list[int]:
        argv: list[Any] = [len(keys), len(counters), len(releases), lease, LEASE_MS]
        argv += [key.rule.args for key in keys]
        for counter in counters:
            argv += [counter.threshold, settings.LOCKOUT_FAILURE_RESET * 1000, counter.waive_ms]
        for released, released_lease in releases:
            argv += [released_lease, released.known_ms]
        redis_keys = [key.redis_key for key in keys]
        for counter in [*counters, *(counter for counter, _ in releases)]:
            redis_keys += [counter.hash_key, counter.lease_key]
        redis_keys.append(REFUSING_KEY)
        reply: bytes = self._script(done=False)(redis_keys, argv, client=get_redis())
        # one bulk string of integers (parsing it costs less than a 20-element array's replies)
        return [int(number) for number in reply.split(b",")]

    def done(self, settled: list[Release], ok: bool) -> list[int]:
        argv: list[Any] = [len(settled), "ok" if ok else "fail"]
        redis_keys: list[str] = []
        for counter, lease in settled:
            argv += [lease, counter.threshold, *_lockout_args(), 1 if counter.ip else 0]
            argv.append(counter.known_ms)
            redis_keys += [counter.hash_key, counter.lease_key, counter.index_key]
        result: list[int] = self._script(done=True)(redis_keys, argv, client=get_redis())
        return result


Release = tuple[Counter, str]  # a counter and the lease of an attempt that succeeded


class _Releases:
    """Successful attempts waiting to be settled: sent with this process's next evaluate
    call (no round trip of their own), or by a flusher thread after FLUSH_SECONDS when no
    call comes, so another process never waits long on a lease already done with."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.pending: list[Release] = []
        self.pid = 0

    def add(self, releases: list[Release]) -> None:
        with self.lock:
            self.pending += releases
            if self.pid != os.getpid():  # first use in this process (or after a fork)
                self.pid = os.getpid()
                threading.Thread(target=self._flush, name="ratelimit-release", daemon=True).start()
            self.lock.notify()

    def take(self) -> list[Release]:
        with self.lock:
            taken, self.pending = self.pending, []
        return taken

    def _flush(self) -> None:
        while True:
            with self.lock:
                while not self.pending:
                    self.lock.wait()
            time.sleep(FLUSH_SECONDS)  # a request of this process may take them first
            taken = self.take()
            if taken:
                try:
                    redis_store.done(taken, ok=True)
                except RedisError as error:
                    outage.failed(error)  # their leases expire after LEASE_MS


releases = _Releases()


@dataclass
class _LocalRule:
    tat: float = 0.0


@dataclass
class _LocalCounter:
    failures: int = 0
    locked_until: float = 0.0
    lockouts: int = 0
    last: float = 0.0
    in_flight: dict[str, float] = field(default_factory=dict)  # lease → expiry (ms)


class LocalStore:
    """The per-process stand-in while Redis is unreachable: the same GCRA and lockout
    arithmetic (without backoff), bounded to LOCAL_MAX_KEYS keys."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, Any] = OrderedDict()

    def _get(self, name: str, factory: type) -> Any:
        entry = self.entries.get(name)
        if entry is None:
            entry = self.entries[name] = factory()
            while len(self.entries) > LOCAL_MAX_KEYS:
                self.entries.popitem(last=False)
        else:
            self.entries.move_to_end(name)
        return entry

    def evaluate(self, keys: list[Key], counters: list[Counter], lease: str) -> list[int]:
        now = time.time() * 1000
        with self.lock:
            out: list[int] = [ALLOWED]
            states = []
            for key in keys:
                rule = self._get(key.redis_key, _LocalRule)
                interval = key.rule.period * 1000 / key.rule.limit
                new_tat = max(rule.tat, now) + interval
                retry = max(0.0, new_tat - key.rule.burst * interval - now)
                states.append((rule, new_tat, retry, interval))
            if any(retry > 0 for _, _, retry, _ in states):
                out[0] = RATE_LIMITED
            else:
                for counter in counters:
                    state = self._get(counter.hash_key, _LocalCounter)
                    if now - state.last > settings.LOCKOUT_FAILURE_RESET * 1000:
                        state.failures = 0
                    for lease_id in [k for k, v in state.in_flight.items() if v < now]:
                        del state.in_flight[lease_id]  # its process never settled it
                    if state.locked_until > now:
                        out[0] = LOCKED
                    elif state.failures + len(state.in_flight) >= counter.threshold:
                        out[0] = max(out[0], BUSY)
            for (rule, new_tat, retry, interval), key in zip(states, keys, strict=True):
                allow_at = new_tat - key.rule.burst * interval
                remaining = max(0, math.floor((now - allow_at) / interval))
                out += [math.ceil(retry), 0 if retry else remaining, math.ceil(new_tat - now), 0]
                if out[0] in (ALLOWED, LOCKED):
                    rule.tat = new_tat
            for counter in counters:
                state = self._get(counter.hash_key, _LocalCounter)
                wait = math.ceil(state.locked_until - now) if state.locked_until > now else 0
                out += [LOCKED if wait else 0, wait]
                if out[0] == ALLOWED:
                    state.in_flight[lease] = now + LEASE_MS
            return out

    def done(self, counters: list[Counter], lease: str, ok: bool) -> list[int]:
        now = time.time() * 1000
        increment, max_wait, _, _ = _lockout_args()
        out: list[int] = []
        with self.lock:
            for counter in counters:
                state = self._get(counter.hash_key, _LocalCounter)
                state.in_flight.pop(lease, None)
                if ok:
                    state.failures = state.lockouts = 0
                    state.locked_until = 0.0
                    out += [0, 0, 0, 0, 0]
                    continue
                state.failures += 1
                state.last = now
                failures, locked, wait = state.failures, 0, 0
                if state.failures >= counter.threshold:
                    state.lockouts += 1
                    state.failures = 0
                    wait = min(max_wait, increment * state.lockouts)
                    state.locked_until = now + wait
                    locked = 1
                out += [locked, wait, state.lockouts, 0, failures]
        return out


_lease_prefix = ""
_lease_numbers = itertools.count()


def _lease_id() -> str:
    """Unique across processes and hosts: a random prefix drawn once per process (after a
    fork too) and a counter; not uuid4, whose read of urandom per call was measured."""
    global _lease_prefix
    if not _lease_prefix.startswith(f"{os.getpid()}-"):
        _lease_prefix = f"{os.getpid()}-{secrets.token_hex(8)}-"
    return f"{_lease_prefix}{next(_lease_numbers)}"


redis_store = RedisStore()
local_store = LocalStore()


def evaluate(keys: list[Key], counters: list[Counter]) -> Outcome:
    """Checks `keys` and reserves an attempt on each of `counters`, in one round trip."""
    lease = _lease_id()
    degraded = False
    raw: list[int] | None = None
    if not outage.skip_redis():
        try:
            raw = redis_store.evaluate(keys, counters, lease, releases.take())
        except RedisError as error:
            outage.failed(error)
        else:
            outage.recovered()
    if raw is None:
        degraded = True
        keys = [key for key in keys if key.rule.credential]
        raw = local_store.evaluate(keys, counters, lease)
    results = [
        RuleResult(key, raw[1 + 4 * i], raw[2 + 4 * i], raw[3 + 4 * i], bool(raw[4 + 4 * i]))
        for i, key in enumerate(keys)
    ]
    start = 1 + 4 * len(keys)
    states = [(raw[start + 2 * j], raw[start + 2 * j + 1]) for j in range(len(counters))]
    return Outcome(raw[0], results, states, degraded, lease)


def settle(counters: list[Counter], lease: str, *, ok: bool) -> list[Settled]:
    """Settles the attempt reserved under `lease`: success clears (sent with the next call:
    see _Releases), failure counts (at once: the caller needs to know whether it locked)."""
    if ok and not outage.skip_redis():
        releases.add([(counter, lease) for counter in counters])
        return [Settled(False, 0, 0, False, 0) for _ in counters]
    raw: list[int] | None = None
    if not outage.skip_redis():
        try:
            raw = redis_store.done([(counter, lease) for counter in counters], ok)
        except RedisError as error:
            outage.failed(error)
    if raw is None:
        raw = local_store.done(counters, lease, ok)
    rows = [raw[5 * j : 5 * j + 5] for j in range(len(counters))]
    return [Settled(bool(a), b, c, bool(d), e) for a, b, c, d, e in rows]
