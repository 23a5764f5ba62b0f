"""Backoff per rule: the penalty after a refusal grows with a violation count that decays
(linear: base x v; exponential: base x multiplier^(v-1); both capped). Tested on the Lua
script in the suite's Redis; a penalty "running out" is the script's own state moved on
(blk cleared), not a sleep."""

from __future__ import annotations

from typing import Any

import pytest

from apps.ratelimit import limiter
from apps.ratelimit.limiter import ALLOWED, RATE_LIMITED
from apps.ratelimit.rules import Key, Rule

pytestmark = pytest.mark.django_db


def _rule(backoff: str, **extra: Any) -> Rule:
    spec: dict[str, Any] = {
        "limit": 5, "period": 1.0, "burst": 5, "backoff": backoff, "base": 1.0,
        "multiplier": 2.0, "cap": 60.0,
    }  # fmt: skip
    spec.update(extra)
    return Rule(name="test.ip", **spec)


def _penalties(redis_client: Any, rule: Rule, violations: int) -> list[int]:
    key = Key(rule, "192.0.2.1")
    for _ in range(rule.burst):
        assert limiter.evaluate([key], []).code == ALLOWED
    waits = []
    for _ in range(violations):
        outcome = limiter.evaluate([key], [])
        assert outcome.code == RATE_LIMITED
        waits.append(outcome.rules[0].retry_ms)
        # the penalty has run out, the quota has not come back: the next request is a
        # violation again
        seconds, micros = redis_client.time()
        now_ms = seconds * 1000 + micros // 1000
        redis_client.hset(key.redis_key, mapping={"blk": 0, "tat": now_ms + 1000})
    return waits


def _close(actual: list[int], expected: list[int]) -> bool:
    return all(e - 50 <= a <= e for a, e in zip(actual, expected, strict=True))


def test_linear_backoff_grows_by_base(redis_client) -> None:
    waits = _penalties(redis_client, _rule("linear", cap=3.5), 5)
    assert _close(waits, [1000, 2000, 3000, 3500, 3500]), waits


def test_exponential_backoff_multiplies_up_to_its_cap(redis_client) -> None:
    waits = _penalties(redis_client, _rule("exponential", multiplier=3.0, cap=20), 4)
    assert _close(waits, [1000, 3000, 9000, 20000]), waits


def test_no_backoff_waits_only_for_the_quota(redis_client) -> None:
    waits = _penalties(redis_client, _rule("none"), 3)
    assert all(a <= 200 for a in waits), waits  # one emission interval at most


def test_violations_decay_one_per_period(redis_client) -> None:
    rule = _rule("linear")
    assert _close(_penalties(redis_client, rule, 3), [1000, 2000, 3000])
    key = Key(rule, "192.0.2.1")
    seconds, micros = redis_client.time()
    now_ms = seconds * 1000 + micros // 1000
    # two periods without a violation forget two of the three
    redis_client.hset(key.redis_key, "tv", now_ms - 2000)
    outcome = limiter.evaluate([key], [])
    assert outcome.code == RATE_LIMITED
    assert 1950 <= outcome.rules[0].retry_ms <= 2000  # v = 3 - 2 + 1


def test_a_refused_request_costs_the_other_rules_nothing(redis_client) -> None:
    tight = Key(Rule("tight.ip", 1, 60.0, 1, "none", 60.0, 2.0, 60.0), "a")
    loose = Key(_rule("none"), "b")
    assert limiter.evaluate([tight, loose], []).code == ALLOWED
    for _ in range(10):
        assert limiter.evaluate([tight, loose], []).code == RATE_LIMITED
    assert limiter.evaluate([loose], []).rules[0].remaining == 3  # 5 - 1 - this one
