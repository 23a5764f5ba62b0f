"""One attempt judged: its history (read and recorded), its signals, its score, the rules that
match, the decision. The same code runs at sign-in (apps/threat/port.py, Redis history) and in
the replay (apps/threat/replay.py, history in memory): what an operator tries on last month is
what sign-in would have decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from apps.core.risk import Action, LoginContext, RiskDecision, SessionActivity
from apps.sessions import geo
from apps.threat import features, history, scoring
from apps.threat.signals import BOOLEAN_SIGNALS

SEVERITIES = ("low", "medium", "high", "critical")
# Boolean signals that describe the attempt rather than flag it: not kept as security flags.
NOT_FLAGS = ("success", "activity", "public_client", "user_exists", "known_person")
FLAGS = tuple(name for name in BOOLEAN_SIGNALS if name not in NOT_FLAGS)


class Match(Protocol):
    name: str
    action: str
    severity: str
    block_minutes: int | None


class Rules(Protocol):
    """apps.threat.ruleset.Ruleset, as the engine uses it."""

    def decide(self, signals: Mapping[str, object]) -> tuple[Any, ...]: ...


def located(context: LoginContext) -> LoginContext:
    """The context with what the GeoIP databases know, where the caller left it None."""
    if not context.ip or (context.country is not None and context.asn is not None):
        return context
    found = geo.lookup(context.ip)
    coordinates = context.lat is not None and context.lon is not None
    return replace(
        context,
        country=context.country if context.country is not None else found.country,
        city=context.city if context.city is not None else found.city,
        lat=context.lat if coordinates else found.lat,
        lon=context.lon if coordinates else found.lon,
        asn=context.asn if context.asn is not None else found.asn,
    )


def attempt_of(context: LoginContext) -> history.Attempt:
    browser, system = features.browser_and_os(context.user_agent)
    ip = context.ip or ""
    return history.Attempt(
        at_ms=int(context.at.timestamp() * 1000),
        person=history.person_key(context.email),
        ip=ip,
        network=history.network_of(ip),
        success=context.success,
        password_digest=context.password_digest,
        baseline=str(context.user_id) if context.user_id else "",
        country=context.country or "",
        asn=context.asn or 0,
        device=context.device_id,
        browser=browser,
        os=system,
        hour=features.hour_of(context),
        lat=context.lat,
        lon=context.lon,
    )


def decide(
    context: LoginContext,
    view: history.View,
    ruleset: Rules,
    activity: SessionActivity | None = None,
) -> RiskDecision:
    """The decision for a located context and its history view; for session activity
    (apps/threat/activity.py) the signals say so (`activity`, `public_client`)."""
    signals = features.compute(context, view)
    if activity is not None:
        signals["activity"] = True
        signals["public_client"] = activity.public_client
    score, reasons = scoring.score_of(signals)
    signals["score"] = score
    matches = ruleset.decide(signals)
    actions = tuple(match.action for match in matches)
    extra: dict[str, Any] = {
        "ip": context.ip,
        "country": context.country,
        "city": context.city,
        "asn": context.asn or 0,
        "user_agent": context.user_agent[:256],
    }
    if matches:
        extra["severity"] = max((m.severity for m in matches), key=SEVERITIES.index)
    blocks = [m.block_minutes for m in matches if m.action == Action.BLOCK]
    if blocks:
        # The longest block asked; None (until an operator lifts it) is the longest of all.
        extra["block_minutes"] = None if None in blocks else max(blocks)
    return RiskDecision(
        score=score,
        action=Action.strongest(actions),
        reasons=reasons,
        rules=tuple(match.name for match in matches),
        actions=actions,
        flags=tuple(name for name in FLAGS if signals.get(name) is True),
        extra=extra,
    )


def evaluate(context: LoginContext, *, history: history.History, ruleset: Rules) -> RiskDecision:
    """Locates the attempt, records it in `history` and reads what came before (one round
    trip), computes the signals and the score, and lets `ruleset` decide. A success the
    decision refuses is taken back out of the baseline (a second round trip, only then)."""
    context = located(context)
    attempt = attempt_of(context)
    view = history.observe(attempt)
    decision = decide(context, view, ruleset)
    if decision.refuses and context.success:
        history.forget(attempt, view)  # a refused success teaches the baseline nothing
    return decision
