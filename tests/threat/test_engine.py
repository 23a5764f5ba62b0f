"""evaluate(): history, signals, score and rules into one decision, the same code for sign-in
and the replay."""

from __future__ import annotations

import datetime as dt
import uuid

from apps.core.risk import Action, LoginContext
from apps.threat.engine import evaluate
from apps.threat.history import MemoryHistory, RedisHistory
from apps.threat.ruleset import Ruleset
from apps.threat.ruleset import RuleSpec as Rule

AT = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
ADA = uuid.uuid4()

RULES = Ruleset.of(
    [
        Rule("travel", "impossible_travel", "require_mfa", "high"),
        Rule("stuffing", "accounts_ip_1h >= 5 and not success", "alert", "medium"),
        Rule("takeover", "success and new_country and new_device", "block", "critical", 60),
        Rule(
            "takeover-forever",
            "success and new_country and new_device and score >= 40",
            "block",
            "high",
        ),
    ]
)


def attempt(minutes: float, **changes: object) -> LoginContext:
    values: dict[str, object] = {
        "at": AT + dt.timedelta(minutes=minutes),
        "email": "ada@example.com",
        "ip": "203.0.113.7",
        "user_agent": FIREFOX,
        "success": True,
        "user_id": ADA,
        "device_id": "phone",
        "country": "JP",
        "city": "Tokyo",
        "lat": 35.68,
        "lon": 139.69,
        "asn": 2516,
    }
    values.update(changes)
    return LoginContext(**values)  # type: ignore[arg-type]


def test_a_usual_sign_in_is_allowed_with_nothing_flagged() -> None:
    history = MemoryHistory()
    evaluate(attempt(0), history=history, ruleset=RULES)
    decision = evaluate(attempt(60 * 24), history=history, ruleset=RULES)
    assert (decision.score, decision.action, decision.rules, decision.flags) == (
        0,
        Action.ALLOW,
        (),
        (),
    )
    assert decision.extra["country"] == "JP"


def test_impossible_travel_asks_a_second_factor() -> None:
    history = MemoryHistory()
    evaluate(attempt(0), history=history, ruleset=RULES)
    decision = evaluate(
        attempt(120, ip="192.0.2.9", country="JP", city="Osaka", lat=34.69, lon=135.50),
        history=history,
        ruleset=RULES,
    )
    assert decision.action == Action.ALLOW  # Osaka is 400 km from Tokyo in 2 h: possible
    far = evaluate(
        attempt(240, ip="192.0.2.9", country="JP", lat=43.06, lon=141.35),  # Sapporo, 830 km
        history=history,
        ruleset=RULES,
    )
    assert far.action == Action.ALLOW  # 2 h after Osaka: 1,040 km, 370 km/h
    lyon = evaluate(attempt(300, country="JP", lat=45.76, lon=4.84), history=history, ruleset=RULES)
    assert lyon.action == Action.REQUIRE_MFA
    assert lyon.rules == ("travel",)
    assert "impossible_travel" in lyon.flags
    assert lyon.extra["severity"] == "high"


def test_the_strongest_action_wins_and_every_match_is_carried() -> None:
    history = MemoryHistory()
    evaluate(attempt(0), history=history, ruleset=RULES)
    decision = evaluate(
        attempt(
            60 * 24 * 3,
            country="BR",
            lat=-23.55,
            lon=-46.63,
            device_id="unknown",
            ip="198.51.100.4",
            asn=28573,
        ),
        history=history,
        ruleset=RULES,
    )
    assert decision.action == Action.BLOCK
    assert decision.refuses
    assert decision.actions == ("block", "block")
    assert decision.extra["block_minutes"] is None  # one of them until unblocked
    assert decision.extra["severity"] == "critical"
    assert decision.score >= 40
    # The refused success was not learned: the same place and device are still new.
    again = evaluate(
        attempt(60 * 24 * 3 + 5, country="BR", lat=-23.55, lon=-46.63, device_id="unknown",
                ip="198.51.100.4", asn=28573),
        history=history, ruleset=RULES,
    )  # fmt: skip
    assert again.action == Action.BLOCK


def test_credential_stuffing_from_one_address_raises_the_alert_rule() -> None:
    history = RedisHistory()  # the live history: the same numbers
    decisions = [
        evaluate(
            attempt(
                i / 60,
                email=f"p{i}@example.com",
                user_id=None,
                success=False,
                user_agent="python-requests/2.31",
                device_id="",
            ),
            history=history,
            ruleset=RULES,
        )
        for i in range(6)
    ]
    assert [d.action for d in decisions] == ["allow"] * 4 + ["alert"] * 2
    assert decisions[-1].score > decisions[0].score
    assert {"headless_ua", "no_device_cookie"} <= set(decisions[-1].flags)
