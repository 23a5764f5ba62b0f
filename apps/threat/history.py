"""What the attempts before this one say: sliding-window counts per person, IP and network,
and the person's baseline (where, with what and when they sign in). Read and written in ONE
Redis round trip per attempt (history.lua: EVALSHA), so scoring adds a fraction of a
millisecond to a sign-in; `MemoryHistory` keeps the same numbers in this process for the
replay (apps/threat/replay.py), which writes nothing anywhere.

Keys (all under `tessera:threat:`; `tessera:{threat}:` in a Redis Cluster, one hash slot for
history.lua), each with a TTL of its longest window and at most `CAP` members, so memory
stays bounded whatever an attacker sends:

    f:p:<person>  failures of a person (7 d)     f:ip:<ip>  failures of an IP (24 h)
    a:ip:<ip>     attempts of an IP (1 h)        f:net:<network>  failures of a network (1 h)
    acc:ip:<ip>   accounts tried from an IP      acc:net:<network>  ... from a network (1 h)
    ips:p:<person>  IPs that tried a person      pw:<digest>  accounts a password was tried
    baseline:<user id>  the person's baseline, a hash (below; `baseline_key`)

A person is the address as typed, lower-cased and hashed (an unknown address has failures
too); a network is the IP's /24 (IPv4) or /48 (IPv6). Counts include the attempt being
judged: the fifth failure in an hour sees `failures_user_1h == 5`.

The baseline hash (kept 180 days from the last success; apps/threat tasks may build it from
the audit store with the same fields): `c:<country>`, `a:<asn>`, `n:<network>`,
`d:<device id>`, `b:<browser family>`, `o:<os>` → sign-ins seen with it; `#c` ... `#o` how many
distinct values are kept (at most BASELINE_CAPS: a value beyond the cap stays "new"); `h:<0-23>`
successes per UTC hour; `s` successes; `at` (ms), `lat`, `lon` of the last success. Only a
successful first factor is learned, and it is read BEFORE being learned; a success a rule
refuses is taken back out (`forget`, forget.lua).
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from redis.commands.core import Script

from apps.core.redis import get_redis, key_prefix

PREFIX = key_prefix("threat")  # history.lua touches several of these keys at once
HOUR_MS, DAY_MS, WEEK_MS = 3_600_000, 86_400_000, 604_800_000
CAP = 5000  # members kept per window key: counts saturate there (an attack, whatever size)
BASELINE_TTL_MS = 180 * DAY_MS
# Distinct values kept per person: countries, ASNs, networks, devices, browsers, systems.
BASELINE_CAPS = (64, 128, 256, 64, 32, 16)
LUA = (Path(__file__).parent / "history.lua").read_text()
FORGET_LUA = (Path(__file__).parent / "forget.lua").read_text()


@dataclass(frozen=True)
class Attempt:
    """One attempt as history records it (built by apps.threat.engine from a LoginContext)."""

    at_ms: int
    person: str  # person_key(email)
    ip: str  # "" when unknown
    network: str  # network_of(ip)
    success: bool
    password_digest: str = ""
    baseline: str = ""  # the user id whose baseline is read (and learned on success); "" none
    country: str = ""
    asn: int = 0
    device: str = ""
    browser: str = ""
    os: str = ""
    hour: int = 0  # UTC hour of the attempt
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class View:
    """The history as this attempt sees it (counts include it; the baseline does not)."""

    failures_user_1h: int = 0
    failures_user_24h: int = 0
    failures_user_7d: int = 0
    attempts_ip_1h: int = 0
    failures_ip_1h: int = 0
    failures_ip_24h: int = 0
    failures_network_1h: int = 0
    accounts_ip_1h: int = 0
    accounts_network_1h: int = 0
    ips_user_1h: int = 0
    spray_accounts_1h: int = 0
    # The baseline (all zero/False for a person without one)
    successes: int = 0
    known_country: bool = False
    known_asn: bool = False
    known_network: bool = False
    known_device: bool = False
    known_browser: bool = False
    known_os: bool = False
    hours: tuple[int, ...] = (0,) * 24
    last_at_ms: int | None = None
    last_lat: float | None = None
    last_lon: float | None = None


EMPTY = View()


class History(Protocol):
    def observe(self, attempt: Attempt) -> View:
        """Records the attempt and returns the view of it (one round trip for Redis)."""
        ...

    def forget(self, attempt: Attempt, view: View) -> None:
        """Takes back what `observe` learned into the baseline from this success (`view` is
        what observe returned): for a success a rule refused. A second round trip, only then."""
        ...

    def learn(self, attempt: Attempt) -> None:
        """Learns a success into the baseline and counts nothing (a success whose second
        factor was proven after a rule asked for it, and `forget` took back meanwhile)."""
        ...


def _counted(counts: Sequence[int], known: Sequence[bool] = (False,) * 6, **baseline: Any) -> View:
    c = counts
    return View(
        failures_user_1h=c[0],
        failures_user_24h=c[1],
        failures_user_7d=c[2],
        attempts_ip_1h=c[3],
        failures_ip_1h=c[4],
        failures_ip_24h=c[5],
        failures_network_1h=c[6],
        accounts_ip_1h=c[7],
        accounts_network_1h=c[8],
        ips_user_1h=c[9],
        spray_accounts_1h=c[10],
        known_country=known[0],
        known_asn=known[1],
        known_network=known[2],
        known_device=known[3],
        known_browser=known[4],
        known_os=known[5],
        **baseline,
    )


def person_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def network_of(ip: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) of `ip`, or "" for none or not an address."""
    if not ip:
        return ""
    parts = ip.split(".")
    if len(parts) == 4 and all(
        p.isascii() and p.isdigit() and len(p) <= 3 and int(p) < 256 for p in parts
    ):
        return f"{parts[0]}.{parts[1]}.{parts[2]}.0/24"  # the common case, 10x cheaper
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def baseline_key(user_id: object) -> str:
    """The Redis hash of a person's baseline (fields in the module docstring)."""
    return f"{PREFIX}baseline:{user_id}"


def _keys(attempt: Attempt) -> list[str]:
    p, ip, net = attempt.person, attempt.ip, attempt.network
    return [
        f"{PREFIX}f:p:{p}",
        f"{PREFIX}f:ip:{ip}",
        f"{PREFIX}a:ip:{ip}",
        f"{PREFIX}f:net:{net}",
        f"{PREFIX}acc:ip:{ip}",
        f"{PREFIX}acc:net:{net}",
        f"{PREFIX}ips:p:{p}",
        f"{PREFIX}pw:{attempt.password_digest}",
        baseline_key(attempt.baseline),
    ]


def _values(attempt: Attempt) -> tuple[str, ...]:
    return (
        attempt.country,
        str(attempt.asn) if attempt.asn else "",
        attempt.network,
        attempt.device,
        attempt.browser,
        attempt.os,
    )


class RedisHistory:
    """History in Redis (history.lua). Raises redis.RedisError when Redis is unreachable: the
    assessor (apps/threat/port.py) then decides without history."""

    def observe(self, attempt: Attempt) -> View:
        return _view(_text(self._run(attempt, learn_only=False)).split(","))

    def learn(self, attempt: Attempt) -> None:
        """Learns a success into the baseline, counting nothing: for a success whose second
        factor, asked by a rule, was proven after the decision (port.ThreatAssessor.learn);
        `assess` forgot it meanwhile. One round trip."""
        if attempt.success and attempt.baseline:
            self._run(attempt, learn_only=True)

    def _run(self, attempt: Attempt, *, learn_only: bool) -> object:
        coordinates = attempt.lat is not None and attempt.lon is not None
        args: list[str | int] = [
            attempt.at_ms,
            uuid.uuid4().hex[:16],
            int(attempt.success),
            attempt.person,
            attempt.ip,
            int(bool(attempt.password_digest)),
            int(bool(attempt.baseline)),
            CAP,
            BASELINE_TTL_MS,
            *_values(attempt),
            attempt.hour,
            repr(attempt.lat) if coordinates else "",
            repr(attempt.lon) if coordinates else "",
            *BASELINE_CAPS,
            int(learn_only),
        ]
        return _script()(keys=_keys(attempt), args=args, client=get_redis())

    def forget(self, attempt: Attempt, view: View) -> None:
        if not (attempt.success and attempt.baseline):
            return
        args: list[str | int] = [
            *_values(attempt),
            *(int(known) for known in _known(view)),
            attempt.hour,
            view.last_at_ms if view.last_at_ms is not None else "",
            repr(view.last_lat) if view.last_lat is not None else "",
            repr(view.last_lon) if view.last_lon is not None else "",
        ]
        _forget_script()(keys=[baseline_key(attempt.baseline)], args=args, client=get_redis())

    def baseline(self, attempt: Attempt) -> View:
        """The person's baseline as this attempt would see it, recording nothing and
        counting nothing (session activity is judged against it, apps/threat/activity.py):
        one HMGET."""
        fields = [f"{kind}:{value}" for kind, value in zip("candbo", _values(attempt), strict=True)]
        fields += [f"h:{hour}" for hour in range(24)] + ["s", "at", "lat", "lon"]
        reply = get_redis().hmget(baseline_key(attempt.baseline), fields)
        return _view(["0"] * 11 + [_text(value) if value is not None else "" for value in reply])


@cache
def _script() -> Script:
    return get_redis().register_script(LUA)


@cache
def _forget_script() -> Script:
    return get_redis().register_script(FORGET_LUA)


def _known(view: View) -> tuple[bool, ...]:
    return (
        view.known_country,
        view.known_asn,
        view.known_network,
        view.known_device,
        view.known_browser,
        view.known_os,
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _view(reply: list[str]) -> View:
    counts = [int(value) for value in reply[:11]]
    if len(reply) == 11:
        return _counted(counts)
    base = reply[11:]
    known = [value != "" for value in base[:6]]
    hours = tuple(int(value) if value else 0 for value in base[6:30])
    successes, at, lat, lon = base[30:34]
    return _counted(
        counts,
        known,
        successes=int(successes or 0),
        hours=hours,
        last_at_ms=int(at) if at else None,
        last_lat=float(lat) if lat else None,
        last_lon=float(lon) if lon else None,
    )


class _Window:
    """Times of events, oldest first (attempts arrive in time order in the replay)."""

    __slots__ = ("start", "times")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.start = 0

    def add(self, now: int, keep: int) -> None:
        self.times.append(now)
        self.prune(now, keep)

    def prune(self, now: int, keep: int) -> None:
        times = self.times
        start = bisect_right(times, now - keep, lo=self.start)
        start = max(start, len(times) - CAP)
        if start > 4096 and start * 2 > len(times):
            del times[:start]
            start = 0
        self.start = start

    def count(self, now: int, since: int) -> int:
        return len(self.times) - bisect_right(self.times, now - since, lo=self.start)


class _Distinct:
    """Distinct members, each with its latest time, oldest first."""

    __slots__ = ("members",)

    def __init__(self) -> None:
        self.members: OrderedDict[str, int] = OrderedDict()

    def add(self, member: str, now: int, keep: int) -> int:
        members = self.members
        members[member] = now
        members.move_to_end(member)
        while members:
            oldest, at = next(iter(members.items()))
            if at > now - keep and len(members) <= CAP:
                break
            del members[oldest]
        return len(members)


@dataclass
class _Baseline:
    values: tuple[dict[str, int], ...] = field(default_factory=lambda: tuple({} for _ in range(6)))
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    successes: int = 0
    at: int | None = None
    lat: float | None = None
    lon: float | None = None


class MemoryHistory:
    """The same numbers as RedisHistory, kept in this process (the replay): attempts must be
    observed in time order. Nothing is written anywhere; a new instance starts empty."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._distinct: dict[str, _Distinct] = {}
        self._baselines: dict[str, _Baseline] = {}

    def _window(self, key: str, now: int, keep: int, add: bool) -> _Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
        if add:
            window.add(now, keep)
        else:
            window.prune(now, keep)
        return window

    def _count_distinct(self, key: str, member: str, now: int) -> int:
        found = self._distinct.get(key)
        if found is None:
            found = self._distinct[key] = _Distinct()
        return found.add(member, now, HOUR_MS)

    def observe(self, attempt: Attempt) -> View:
        now, ip, failed = attempt.at_ms, attempt.ip, not attempt.success
        person = self._window("f:p:" + attempt.person, now, WEEK_MS, failed)
        fail_ip = self._window("f:ip:" + ip, now, DAY_MS, failed and bool(ip))
        tries_ip = self._window("a:ip:" + ip, now, HOUR_MS, bool(ip))
        fail_net = self._window("f:net:" + attempt.network, now, HOUR_MS, failed and bool(ip))
        accounts_ip = accounts_net = ips_user = spray = 0
        if ip:
            accounts_ip = self._count_distinct("acc:ip:" + ip, attempt.person, now)
            accounts_net = self._count_distinct("acc:net:" + attempt.network, attempt.person, now)
            ips_user = self._count_distinct("ips:p:" + attempt.person, ip, now)
        if attempt.password_digest:
            spray = self._count_distinct("pw:" + attempt.password_digest, attempt.person, now)
        counts = (
            person.count(now, HOUR_MS),
            person.count(now, DAY_MS),
            person.count(now, WEEK_MS),
            tries_ip.count(now, HOUR_MS),
            fail_ip.count(now, HOUR_MS),
            fail_ip.count(now, DAY_MS),
            fail_net.count(now, HOUR_MS),
            accounts_ip,
            accounts_net,
            ips_user,
            spray,
        )
        if not attempt.baseline:
            return _counted(counts)
        base = self._baselines.get(attempt.baseline)
        if base is None:
            base = self._baselines[attempt.baseline] = _Baseline()
        values = _values(attempt)
        if base.at is not None and now - base.at >= BASELINE_TTL_MS:
            base = self._baselines[attempt.baseline] = _Baseline()  # expired, as in Redis
        view = _counted(
            counts,
            [value in seen for value, seen in zip(values, base.values, strict=True)],
            successes=base.successes,
            hours=tuple(base.hours),
            last_at_ms=base.at,
            last_lat=base.lat,
            last_lon=base.lon,
        )
        if attempt.success:
            _learn(base, attempt)
        return view

    def learn(self, attempt: Attempt) -> None:
        if attempt.success and attempt.baseline:
            _learn(self._baselines.setdefault(attempt.baseline, _Baseline()), attempt)

    def forget(self, attempt: Attempt, view: View) -> None:
        base = self._baselines.get(attempt.baseline)
        if not (attempt.success and attempt.baseline) or base is None:
            return
        for value, seen, known in zip(_values(attempt), base.values, _known(view), strict=True):
            if not value:
                continue
            if known:
                seen[value] -= 1
            else:
                seen.pop(value, None)
        base.hours[attempt.hour] -= 1
        base.successes -= 1
        if base.successes <= 0:
            del self._baselines[attempt.baseline]
            return
        base.at, base.lat, base.lon = view.last_at_ms, view.last_lat, view.last_lon


def _learn(base: _Baseline, attempt: Attempt) -> None:
    """A success into a baseline in memory, as history.lua learns it."""
    for value, seen, cap in zip(_values(attempt), base.values, BASELINE_CAPS, strict=True):
        if value in seen:
            seen[value] += 1
        elif value and len(seen) < cap:
            seen[value] = 1
    base.hours[attempt.hour] += 1
    base.successes += 1
    base.at = attempt.at_ms
    coordinates = attempt.lat is not None and attempt.lon is not None
    base.lat, base.lon = (attempt.lat, attempt.lon) if coordinates else (None, None)
