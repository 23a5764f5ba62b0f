"""The score of an attempt, 0-100, and its reasons: each signal that holds adds its points
(WEIGHTS, one table, documented in docs/threat.md "Signals and scores"); a count adds `per`
points for each unit above its threshold, at most `most`. The sum is capped at 100.

The weights are a judgement, not a fit: what one signal alone should weigh when a rule
compares the score with a threshold. Impossible travel or a reputation-listed address alone
weighs most; a new device from a new country and network (an account takeover's picture) adds
up to as much.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.core.risk import RiskReason


@dataclass(frozen=True)
class Flag:
    points: int
    detail: str


@dataclass(frozen=True)
class Count:
    threshold: int  # no points up to it
    per: int  # points for each unit above it
    most: int  # at most
    detail: str


WEIGHTS: dict[str, Flag | Count] = {
    "impossible_travel": Flag(45, "travel from the last sign-in faster than an airliner"),
    "ip_listed": Flag(30, "address on a reputation list"),
    "new_country": Flag(20, "a country this person never signed in from"),
    "headless_ua": Flag(20, "headless browser or HTTP library"),
    "new_device": Flag(10, "a device this person never used"),
    "new_asn": Flag(10, "a network operator this person never used"),
    "unusual_hour": Flag(10, "an hour this person rarely signs in at"),
    "new_network": Flag(5, "a network this person never used"),
    "new_browser": Flag(5, "a browser this person never used"),
    "new_os": Flag(5, "an operating system this person never used"),
    "no_device_cookie": Flag(5, "no device cookie"),
    "failures_user_1h": Count(2, 5, 25, "failed attempts on this person in the last hour"),
    "failures_ip_1h": Count(5, 2, 15, "failed attempts from this address in the last hour"),
    "accounts_ip_1h": Count(2, 5, 25, "accounts tried from this address in the last hour"),
    "accounts_network_1h": Count(5, 2, 15, "accounts tried from this network in the last hour"),
    "ips_user_1h": Count(3, 5, 20, "addresses that tried this person in the last hour"),
    "spray_accounts_1h": Count(2, 10, 30, "accounts this password was tried against"),
}


_FLAGS = tuple((n, w) for n, w in WEIGHTS.items() if isinstance(w, Flag))
_COUNTS = tuple((n, w) for n, w in WEIGHTS.items() if isinstance(w, Count))


def score_of(signals: dict[str, object]) -> tuple[int, tuple[RiskReason, ...]]:
    """The score and the reasons (the signals that added points), the heaviest first."""
    reasons: list[RiskReason] = [
        RiskReason(name, flag.points, _detail(name, flag, signals))
        for name, flag in _FLAGS
        if signals.get(name) is True
    ]
    for name, count in _COUNTS:
        value = signals.get(name)
        if isinstance(value, int) and value > count.threshold:
            points = min(count.most, (value - count.threshold) * count.per)
            reasons.append(RiskReason(name, points, f"{value} {count.detail}"))
    if not reasons:
        return 0, ()
    reasons.sort(key=lambda reason: -reason.points)
    return min(100, sum(reason.points for reason in reasons)), tuple(reasons)


def _detail(name: str, weight: Flag, signals: dict[str, object]) -> str:
    if name == "impossible_travel":
        return f"{signals.get('distance_km')} km at {signals.get('travel_kmh')} km/h"
    if name == "ip_listed":
        return f"{weight.detail}: {signals.get('ip_list')}"
    if name == "new_country":
        return f"{weight.detail}: {signals.get('country')}"
    if name == "new_asn":
        return f"{weight.detail}: AS{signals.get('asn')}"
    return weight.detail
