"""What threat detection holds about a person, for their GDPR export and erasure (core.privacy):
their baseline in Redis (where, with what and when they sign in: apps/threat/history.py) and
the recent attempts counted under their address (failed sign-ins of the last 7 days, the IP
addresses that tried their account in the last hour). The assessments themselves are audit
events (threat.assessed), exported and pseudonymized with the others.

Erasure deletes the baseline and every key named by their address's key (person_key), and
takes that key out of the sets of accounts tried per IP and per network (the IPs are those
that tried them) and per password: nothing says which passwords were tried at their account,
so every such set of the last hour is scanned (SCAN, SCAN_COUNT keys a round trip; a second or
two after a large spraying attack, an erasure is rare). The counts per IP and network keep
attempt ids, not people. Redis not answering stops the erasure (RedisError), before the
account changes: nothing claims done what is not.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from redis import RedisError

from apps.accounts.models import User
from apps.core.privacy import Section
from apps.core.redis import get_redis
from apps.threat.history import PREFIX, baseline_key, network_of, person_key

log = logging.getLogger("tessera.threat")

# Keys asked per SCAN round trip while looking for the sets of accounts a password was tried.
SCAN_COUNT = 1000
# The baseline's kinds of values, as the export names them (history.lua's field prefixes).
KINDS = (
    ("c", "countries", "country"),
    ("a", "network_operators", "asn"),
    ("n", "networks", "network"),
    ("d", "devices", "device_id"),
    ("b", "browsers", "browser"),
    ("o", "operating_systems", "os"),
)


class ThreatData:
    def export(self, user: User) -> dict[str, Section]:
        try:
            return {"threat": _export(user)}
        except RedisError as error:
            log.warning("threat: GDPR export could not read Redis: %s", error)
            return {"threat": {"unavailable": "Redis did not answer: export again to get it."}}

    def erase(self, user: User, *, pseudonym: str, actor_id: object) -> None:
        redis = get_redis()
        person = person_key(user.email)
        tried_from = [_text(ip) for ip in redis.zrange(f"{PREFIX}ips:p:{person}", 0, -1)]
        pipe = redis.pipeline(transaction=True)
        pipe.delete(baseline_key(user.pk), f"{PREFIX}f:p:{person}", f"{PREFIX}ips:p:{person}")
        for ip in tried_from:
            pipe.zrem(f"{PREFIX}acc:ip:{ip}", person)
            pipe.zrem(f"{PREFIX}acc:net:{network_of(ip)}", person)
        pipe.execute()
        pipe = redis.pipeline(transaction=False)
        for index, key in enumerate(redis.scan_iter(match=f"{PREFIX}pw:*", count=SCAN_COUNT)):
            pipe.zrem(key, person)
            if index % SCAN_COUNT == SCAN_COUNT - 1:
                pipe.execute()
        pipe.execute()


def _export(user: User) -> dict[str, Any]:
    redis = get_redis()
    person = person_key(user.email)
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(baseline_key(user.pk))
    pipe.pttl(baseline_key(user.pk))
    pipe.zrange(f"{PREFIX}f:p:{person}", 0, -1, withscores=True)
    pipe.zrange(f"{PREFIX}ips:p:{person}", 0, -1, withscores=True)
    stored, ttl, failures, tried_from = pipe.execute()
    return {
        "baseline": _baseline({_text(k): _text(v) for k, v in stored.items()}, ttl),
        "recent_failed_sign_ins": [_moment(at) for _, at in failures],
        "addresses_that_tried_recently": [
            {"ip_address": _text(ip), "last_tried_at": _moment(at)} for ip, at in tried_from
        ],
    }


def _baseline(fields: dict[str, str], ttl_ms: int) -> dict[str, Any] | None:
    """The hash as a person reads it: what they signed in from, how often, and when."""
    if not fields:
        return None
    found: dict[str, Any] = {"sign_ins_learned": int(fields.get("s", 0))}
    for prefix, name, label in KINDS:
        values = [
            (key.partition(":")[2], int(count))
            for key, count in fields.items()
            if key.startswith(prefix + ":")
        ]
        values.sort(key=lambda item: (-item[1], item[0]))
        found[name] = [
            {label: int(value) if label == "asn" else value, "sign_ins": count}
            for value, count in values
        ]
    found["sign_ins_by_utc_hour"] = [int(fields.get(f"h:{hour}", 0)) for hour in range(24)]
    last = fields.get("at")
    found["last_sign_in"] = {
        "at": _moment(int(last)) if last else None,
        "latitude": float(fields["lat"]) if "lat" in fields else None,
        "longitude": float(fields["lon"]) if "lon" in fields else None,
    }
    found["kept_until"] = (
        _moment(datetime.now(UTC).timestamp() * 1000 + ttl_ms) if ttl_ms > 0 else None
    )
    return found


def _moment(ms: float) -> str:
    at = datetime.fromtimestamp(ms / 1000, UTC)
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
