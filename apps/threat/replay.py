"""Backtesting: the exact scoring and rule code of sign-in (apps.threat.engine.evaluate) over a
recorded trace, in time order, each attempt's history made only of the lines before it
(history.MemoryHistory: nothing is written to Redis or the database, no event, no response).
Operators use it to try a rule on last month before enabling it (`manage.py threat_replay`).

Input, one attempt per line (JSON):
    {"ts": "2026-11-02T08:14:03Z", "user": "alice@example.com", "ip": "203.0.113.7",
     "user_agent": "...", "device_id": "...", "country": "JP", "city": "Tokyo",
     "lat": 35.68, "lon": 139.69, "asn": 2516, "success": true}
`ts`, `user` and `success` are required; `device_id` is absent for scripted logins; the geo
fields and `asn` are optional (else looked up in the configured GeoIP databases). Two more
optional fields: `user_exists` (default true: the address names an account) and
`password_digest` (any string naming the password tried, for spraying).

Output, one line per input line, in the input's order:
    {"line": N, "score": 0-100, "action": "allow"|..., "reasons": [{"signal", "points",
     "detail"}]}
A line that cannot be read gets `{"line": N, "error": "..."}` instead, and the others are
still judged (a bad line is no attempt); the command then ends with a non-zero status naming
how many there were.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from apps.core.risk import LoginContext
from apps.threat import engine
from apps.threat.history import MemoryHistory

# Replay identities: an account id per address, stable across runs (RFC 9562 §5.5, UUIDv5).
REPLAY_NAMESPACE = uuid.UUID("5f2c0c55-3c1b-4b8e-9f3e-6d1f4d0e7a16")
MAX_LINE = 16_384  # characters: a longer line is not an attempt


class BadLine(ValueError):
    pass


@dataclass(frozen=True)
class Result:
    line: int
    text: str  # the output line (JSON, no newline)


def _string(record: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = record.get(name)
    if value is None:
        if required:
            raise BadLine(f"{name!r} is missing")
        return None
    if not isinstance(value, str):
        raise BadLine(f"{name!r} must be a string")
    return value


def _number(record: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadLine(f"{name!r} must be a number")
    if not low <= value <= high:
        raise BadLine(f"{name!r} must be between {low:g} and {high:g}")
    return float(value)


@lru_cache(maxsize=65536)
def _replay_id(address: str) -> uuid.UUID:
    return uuid.uuid5(REPLAY_NAMESPACE, address)


def parse(text: str) -> LoginContext:
    """One input line as the attempt it records; BadLine says what is wrong."""
    if len(text) > MAX_LINE:
        raise BadLine(f"longer than {MAX_LINE} characters")
    try:
        record = json.loads(text)
    except ValueError as error:
        raise BadLine(f"not JSON: {error}") from None
    except RecursionError:  # arrays or objects nested past the parser's depth: no attempt
        raise BadLine("not JSON: nested too deeply") from None
    if not isinstance(record, dict):
        raise BadLine("not a JSON object")
    ts = _string(record, "ts", required=True) or ""
    try:
        at = dt.datetime.fromisoformat(ts)
    except ValueError:
        raise BadLine(f"'ts' is not an ISO 8601 time: {ts[:40]!r}") from None
    if at.tzinfo is None:
        raise BadLine("'ts' has no time zone (end it with Z or +00:00)")
    user = (_string(record, "user", required=True) or "").strip()
    if not user or len(user) > 254:
        raise BadLine("'user' must be an address of 1 to 254 characters")
    success = record.get("success")
    if not isinstance(success, bool):
        raise BadLine("'success' must be true or false")
    exists = record.get("user_exists", True)
    if not isinstance(exists, bool):
        raise BadLine("'user_exists' must be true or false")
    ip = _string(record, "ip")
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise BadLine(f"'ip' is not an IP address: {ip[:40]!r}") from None
    asn = record.get("asn")
    if asn is not None and (isinstance(asn, bool) or not isinstance(asn, int) or asn < 0):
        raise BadLine("'asn' must be a whole number")
    lat = _number(record, "lat", -90, 90)
    lon = _number(record, "lon", -180, 180)
    if (lat is None) != (lon is None):
        raise BadLine("'lat' and 'lon' go together")
    return LoginContext(
        at=at,
        email=user,
        ip=ip or None,
        user_agent=(_string(record, "user_agent") or "")[:512],
        success=success,
        user_id=_replay_id(user.lower()) if exists else None,
        device_id=(_string(record, "device_id") or "")[:128],
        country=_string(record, "country"),
        city=_string(record, "city"),
        lat=lat,
        lon=lon,
        asn=asn,
        password_digest=(_string(record, "password_digest") or "")[:128],
    )


def replay(
    lines: Iterable[str],
    *,
    ruleset: engine.Rules,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Result]:
    """The output line of each input line, in the input's order. Every line is read first
    (a bad one becomes its error record), then the attempts are judged in time order."""
    attempts: list[tuple[float, int, LoginContext]] = []
    results: list[str | None] = []
    for i, line in enumerate(lines):
        stripped = line.rstrip("\n")
        results.append(None)
        if not stripped.strip():
            continue  # a blank line is no attempt and has no output line
        try:
            context = parse(stripped)
        except BadLine as error:
            results[i] = json.dumps({"line": i + 1, "error": str(error)})
        else:
            attempts.append((context.at.timestamp(), i, context))
    attempts.sort(key=lambda attempt: (attempt[0], attempt[1]))
    history = MemoryHistory()
    for done, (_, i, context) in enumerate(attempts, start=1):
        decision = engine.evaluate(context, history=history, ruleset=ruleset)
        results[i] = json.dumps(
            {
                "line": i + 1,
                "score": decision.score,
                "action": decision.action,
                "reasons": [
                    {"signal": r.signal, "points": r.points, "detail": r.detail}
                    for r in decision.reasons
                ],
            }
        )
        if progress is not None:
            progress(done, len(attempts))
    for i, written in enumerate(results):
        if written is not None:
            yield Result(i + 1, written)


class Progress:
    """ "replayed N of M lines (R lines/s)" every `every` seconds, to `write`."""

    def __init__(self, write: Callable[[str], None], every: float = 2.0) -> None:
        self.write, self.every = write, every
        self.started = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every and done != total:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        self.write(f"replayed {done} of {total} lines ({rate:,.0f} lines/s)")
