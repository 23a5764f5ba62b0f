"""Per-person baselines rebuilt from the audit trail: every person's successful sign-ins of the
last THREAT_BASELINE_DAYS (core.signin_history: `login.succeeded` events from ClickHouse and
the outbox, or the database alone), folded into the Redis hash that sign-in reads and learns
(`baseline_key`, fields in apps/threat/history.py's docstring) with the very same values:
each sign-in goes through engine.located and engine.attempt_of as a live one does (country and
ASN looked up now, from the GeoIP databases configured now, unless the event names them;
network, browser and OS, UTC hour), the same caps (BASELINE_CAPS: a value past the cap stays
"new") and the same reset after BASELINE_TTL_MS without a success.

Why rebuild what sign-in learns: the incremental baseline only grows (values kept until the
cap, 180 days from the last success), and is lost with Redis. The daily rebuild
(tasks.rebuild_baselines, beat at THREAT_BASELINE_REBUILD_HOUR UTC) makes it what the last
N days say: a country not seen for N days is new again; Redis restored empty is refilled.

Each person's hash is replaced atomically: one script (BASELINE_WRITE) deletes it, writes
every field and sets its TTL (from the last success, as sign-in's PEXPIRE would have), so a
sign-in reading it sees the old baseline or the new one, never half. A sign-in that lands
while the rebuild runs is in the audit trail, so the next rebuild has it; until then it is
not lost either: the script keeps the hash as it is when its last success (`at`) is newer
than the rebuilt one's (the incremental baseline already holds everything the rebuild read,
plus that sign-in). After every person is written, the baselines whose last success is older
than the window (people with no sign-in left in it) are deleted, by the same comparison.

A first factor that then failed the second factor a rule asked for stays learned by sign-in
(a refused one is taken back at once: history.forget) but is no `login.succeeded` event, so
a rebuild forgets it. An erased person's events carry a pseudonym, not their id, and build
nothing; nor do the sign-ins of an account deleted since (one query per batch of people).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from django.conf import settings
from django.utils import timezone
from redis.commands.core import Script

from apps.accounts.models import User
from apps.core.redis import get_redis
from apps.core.risk import LoginContext
from apps.core.signin_history import PastSignIn, past_sign_ins
from apps.threat import engine
from apps.threat.history import (
    BASELINE_CAPS,
    BASELINE_TTL_MS,
    HOUR_MS,
    PREFIX,
    Attempt,
    baseline_key,
)

log = logging.getLogger("tessera.threat")

KINDS = ("c", "a", "n", "d", "b", "o")  # country, ASN, network, device, browser, OS
# People between two progress lines in the log (and the command's output).
PROGRESS_EVERY = 1000
# Baselines written per Redis round trip (each still replaced atomically on its own).
WRITE_BATCH = 200
# A window longer than the baseline's TTL would fold sign-ins the hash would have forgotten.
BASELINE_DAYS_MAX = BASELINE_TTL_MS // 86_400_000
# Keys asked per SCAN when looking for the baselines of people with no sign-in left.
SCAN_COUNT = 1000

# KEYS[1] the baseline; ARGV[1] its last success (ms), ARGV[2] TTL (ms), ARGV[3..] fields and
# values. Kept as it is when a sign-in learned since holds a newer last success.
BASELINE_WRITE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
if current > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# KEYS[1] a baseline; ARGV[1] the window's start (ms): deleted when its last success is older.
BASELINE_DROP_OLDER = """
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
if at < tonumber(ARGV[1]) then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class RebuildReport:
    since: datetime
    people: int = 0  # people with a sign-in in the window
    sign_ins: int = 0  # their sign-ins, folded
    written: int = 0  # baselines replaced
    kept_newer: int = 0  # left as they were: a sign-in was learned during the rebuild
    expired: int = 0  # last success beyond the TTL already (a window longer than it)
    removed: int = 0  # baselines of people with no sign-in left in the window
    no_account: int = 0  # sign-ins of accounts deleted since: no baseline (theirs deleted)
    seconds: float = 0.0

    @property
    def sign_ins_per_second(self) -> float:
        return self.sign_ins / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (
            f"{self.people} people, {self.sign_ins} sign-ins since {self.since.isoformat()}: "
            f"{self.written} baselines written, {self.kept_newer} kept (newer sign-in), "
            f"{self.expired} expired, {self.removed} removed (no sign-in left), "
            f"{self.no_account} without an account; "
            f"{self.seconds:.1f} s, {self.sign_ins_per_second:,.0f} sign-ins/s"
        )


@dataclass
class Baseline:
    """One person's baseline as history.lua keeps it (module docstring of history.py)."""

    values: tuple[dict[str, int], ...] = field(default_factory=lambda: tuple({} for _ in KINDS))
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    successes: int = 0
    at_ms: int | None = None
    lat: float | None = None
    lon: float | None = None

    def learn(self, values: tuple[str, ...], place: Attempt, at_ms: int) -> None:
        """What history.lua does with a success (MemoryHistory the same in memory): its
        values (KINDS order), where it came from (`place`'s lat, lon), its UTC hour."""
        for value, seen, cap in zip(values, self.values, BASELINE_CAPS, strict=True):
            if value in seen:
                seen[value] += 1
            elif value and len(seen) < cap:
                seen[value] = 1
        self.hours[at_ms // HOUR_MS % 24] += 1  # features.hour_of
        self.successes += 1
        self.at_ms = at_ms
        coordinates = place.lat is not None and place.lon is not None
        self.lat, self.lon = (place.lat, place.lon) if coordinates else (None, None)

    def fields(self) -> dict[str, str | int]:
        """The hash's fields, each only where history.lua would have written it."""
        found: dict[str, str | int] = {}
        for kind, seen in zip(KINDS, self.values, strict=True):
            found |= {f"{kind}:{value}": count for value, count in seen.items()}
            if seen:
                found[f"#{kind}"] = len(seen)
        found |= {f"h:{hour}": count for hour, count in enumerate(self.hours) if count}
        found["s"] = self.successes
        if self.at_ms is not None:
            found["at"] = self.at_ms
        if self.lat is not None and self.lon is not None:
            found["lat"], found["lon"] = repr(self.lat), repr(self.lon)
        return found


def attempt_of(sign_in: PastSignIn) -> Attempt:
    """The sign-in as the engine would have recorded it (located now, unless the event said
    where: engine.located fills only what is None)."""
    context = LoginContext(
        at=sign_in.at,
        email="",
        ip=sign_in.ip or None,
        user_agent=sign_in.user_agent,
        success=True,
        device_id=sign_in.device_id,
        country=sign_in.country,
        asn=sign_in.asn,
    )
    return engine.attempt_of(engine.located(context))


class Places:
    """What attempt_of makes of an address and a browser (GeoIP lookups, the network, the
    browser and OS parsed), kept for the rest of a rebuild: people sign in from the same few
    places, and locating is most of what a sign-in costs (benchmarks/threat_baselines.py).
    At most MAX entries (about 1 kB each), then it starts afresh: what it saves is mostly a
    person's own repeats, which a fresh start loses for one person only."""

    MAX = 20_000

    def __init__(self) -> None:
        self.found: dict[tuple[str, str | None, int | None, str], tuple[Attempt, tuple[str, ...]]]
        self.found = {}

    def of(self, sign_in: PastSignIn) -> tuple[Attempt, tuple[str, ...]]:
        key = (sign_in.ip, sign_in.country, sign_in.asn, sign_in.user_agent)
        found = self.found.get(key)
        if found is None:
            if len(self.found) >= self.MAX:
                self.found.clear()
            place = attempt_of(replace(sign_in, device_id=""))
            found = self.found[key] = (place, _values(place))
        return found


def baseline_fold(sign_ins: Iterable[PastSignIn], places: Places | None = None) -> Baseline:
    """One person's successful sign-ins, oldest first, folded as sign-in learns them: a
    success after BASELINE_TTL_MS without one starts afresh (the hash would have expired)."""
    places = places or Places()
    baseline = Baseline()
    for sign_in in sign_ins:
        place, values = places.of(sign_in)
        at_ms = int(sign_in.at.timestamp() * 1000)  # as engine.attempt_of
        if baseline.at_ms is not None and at_ms - baseline.at_ms >= BASELINE_TTL_MS:
            baseline = Baseline()
        if sign_in.device_id:  # the one value that is not the place's: index 3, the device
            values = (*values[:3], sign_in.device_id, *values[4:])
        baseline.learn(values, place, at_ms)
    return baseline


def _values(attempt: Attempt) -> tuple[str, ...]:
    """An attempt's values in KINDS order, as history.py gives them to history.lua."""
    return (
        attempt.country,
        str(attempt.asn) if attempt.asn else "",
        attempt.network,
        attempt.device,
        attempt.browser,
        attempt.os,
    )


def baselines_rebuild(
    *,
    days: int | None = None,
    now: datetime | None = None,
    progress: Callable[[RebuildReport], None] | None = None,
) -> RebuildReport:
    """Rebuilds every person's baseline from their successful sign-ins of the last `days`
    (settings.THREAT_BASELINE_DAYS), streamed person by person, and deletes the baselines
    of people with none left. Logs (and hands `progress`) the report every PROGRESS_EVERY
    people. Raises SignInHistoryUnavailable (audit store down), redis.RedisError or
    django.db.DatabaseError; what was written until then stays, and the next run does it
    all again."""
    days = settings.THREAT_BASELINE_DAYS if days is None else days
    if not 1 <= days <= BASELINE_DAYS_MAX:
        raise ValueError(f"days is from 1 to {BASELINE_DAYS_MAX} (the baseline TTL)")
    now = now or timezone.now()
    report = RebuildReport(since=now - timedelta(days=days))
    started = time.monotonic()
    redis = get_redis()
    write = redis.register_script(BASELINE_WRITE)
    now_ms = int(now.timestamp() * 1000)
    pending: list[tuple[str, Baseline]] = []
    places = Places()
    log.info("threat: rebuilding baselines from sign-ins since %s", report.since.isoformat())
    for user_id, sign_ins in groupby(past_sign_ins(since=report.since), key=_user):
        baseline = baseline_fold(_counted(sign_ins, report), places)
        report.people += 1
        pending.append((user_id, baseline))
        if len(pending) >= WRITE_BATCH:
            _write(write, pending, now_ms, report)
            pending = []
        if report.people % PROGRESS_EVERY == 0:
            report.seconds = time.monotonic() - started
            _progress(report, progress)
    _write(write, pending, now_ms, report)
    report.removed = _drop_older(int(report.since.timestamp() * 1000))
    report.seconds = time.monotonic() - started
    log.info("threat: baselines rebuilt: %s", report.summary())
    return report


def _user(sign_in: PastSignIn) -> str:
    return sign_in.user_id


def _counted(sign_ins: Iterable[PastSignIn], report: RebuildReport) -> Iterator[PastSignIn]:
    for sign_in in sign_ins:
        report.sign_ins += 1
        yield sign_in


def _progress(report: RebuildReport, progress: Callable[[RebuildReport], None] | None) -> None:
    log.info("threat: rebuilding baselines: %s", report.summary())
    if progress is not None:
        progress(report)


def _write(
    write: Script, batch: list[tuple[str, Baseline]], now_ms: int, report: RebuildReport
) -> None:
    if not batch:
        return
    pipe = get_redis().pipeline(transaction=False)
    written: list[bool] = []
    accounts = _existing({user_id for user_id, _ in batch})
    for user_id, baseline in batch:
        if user_id not in accounts:  # deleted since: keep nothing about them
            report.no_account += 1
            pipe.delete(baseline_key(user_id))
            written.append(False)
            continue
        assert baseline.at_ms is not None  # a person here has at least one sign-in
        ttl = baseline.at_ms + BASELINE_TTL_MS - now_ms
        if ttl <= 0:  # expired already, as the hash itself would be
            report.expired += 1
            pipe.delete(baseline_key(user_id))
            written.append(False)
            continue
        args: list[str | int] = [baseline.at_ms, ttl]
        for name, value in baseline.fields().items():
            args += [name, value]
        write(keys=[baseline_key(user_id)], args=args, client=pipe)
        written.append(True)
    replies = pipe.execute()
    for wanted, reply in zip(written, replies, strict=True):
        if wanted:
            if reply:
                report.written += 1
            else:
                report.kept_newer += 1


def _existing(user_ids: set[str]) -> set[str]:
    """The ids among `user_ids` that are accounts (one query per batch)."""
    valid = []
    for user_id in user_ids:
        try:
            valid.append(uuid.UUID(user_id))
        except ValueError:
            continue
    found = User.objects.filter(pk__in=valid).values_list("pk", flat=True)
    return {str(pk) for pk in found}


def _drop_older(since_ms: int) -> int:
    """Deletes the baselines whose last success is before `since_ms`; returns how many."""
    redis = get_redis()
    drop = redis.register_script(BASELINE_DROP_OLDER)
    removed = 0
    pattern = f"{PREFIX}baseline:*"
    for keys in _batches(redis.scan_iter(match=pattern, count=SCAN_COUNT), SCAN_COUNT):
        pipe = redis.pipeline(transaction=False)
        for key in keys:
            drop(keys=[key], args=[since_ms], client=pipe)
        removed += sum(int(reply) for reply in pipe.execute())
    return removed


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
