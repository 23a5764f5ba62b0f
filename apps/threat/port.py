"""The risk port's implementation (apps.core.risk.RiskAssessor; settings.RISK_ASSESSOR): sign-in
asks it before a session exists. One attempt costs one Redis round trip (the history,
apps/threat/history.lua), the rules held in this process (apps.threat.ruleset.ruleset_current)
and one event, threat.assessed, which is written to this process's journal (no SQL statement:
sign-in calls it outside a transaction). The matched rules' actions that outlive the request
(alert, block, invalidate_sessions) are carried out by apps.threat.responses.respond; refusing
the attempt and asking the second factor are the sign-in's own.

Redis down: the attempt is judged from itself alone (its place, its client, reputation lists;
every count 0 and no baseline, so no rule on history fires), a warning is logged and the
decision says so (extra["history"] == "unavailable"); it never raises for it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from apps.core.events import EventType, emit
from apps.core.risk import Action, LoginContext, RiskDecision, SessionActivity
from apps.threat import engine, history
from apps.threat.ruleset import ruleset_current

log = logging.getLogger("tessera.threat")

# The actions respond() carries out; require_mfa and the refusal are the sign-in's own.
RESPONDED = (Action.ALERT, Action.BLOCK, Action.INVALIDATE_SESSIONS)


def _current_rules() -> engine.Rules:
    return ruleset_current()


class ThreatAssessor:
    def __init__(self, rules: Callable[[], engine.Rules] | None = None) -> None:
        self.history: history.History = history.RedisHistory()
        self.rules = rules or _current_rules

    def assess(self, context: LoginContext, *, session_id: uuid.UUID | None = None) -> RiskDecision:
        ruleset = self.rules()
        located = engine.located(context)
        try:
            view = self.history.observe(engine.attempt_of(located))
        except RedisError as error:
            log.warning("threat history unavailable, judging the attempt alone: %s", error)
            decision = engine.decide(located, history.EMPTY, ruleset)
            decision.extra["history"] = "unavailable"
        else:
            decision = engine.decide(located, view, ruleset)
        self._record(located, decision, session_id)
        if any(action in RESPONDED for action in decision.actions):
            # An unknown address (no user_id) can only be alerted about (respond says so).
            from apps.threat.responses import respond

            respond(decision, user_id=context.user_id, context=located, session_id=session_id)
        return decision

    def _record(
        self, context: LoginContext, decision: RiskDecision, session_id: uuid.UUID | None
    ) -> None:
        metadata: dict[str, Any] = {
            "kind": "sign_in",
            "email": context.email[:254],
            "success": context.success,
            "score": decision.score,
            "action": decision.action,
            "actions": list(decision.actions),
            "rules": list(decision.rules),
            "flags": list(decision.flags),
            "reasons": [
                {"signal": r.signal, "points": r.points, "detail": r.detail}
                for r in decision.reasons
            ],
            **{key: decision.extra.get(key) for key in ("country", "city", "asn")},
        }
        if "history" in decision.extra:
            metadata["history"] = decision.extra["history"]
        emit(
            EventType.THREAT_ASSESSED,
            user_id=context.user_id,
            session_id=session_id,
            resource_type="user",
            resource_id=context.user_id,
            metadata=metadata,
        )

    def observe_activity(self, activity: SessionActivity) -> None:
        # Session activity is not assessed yet: the lead adds the Celery path (threat-activity).
        return None
