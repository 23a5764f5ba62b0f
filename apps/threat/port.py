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

from redis.exceptions import RedisError

from apps.core.risk import Action, LoginContext, RiskDecision, SessionActivity
from apps.threat import engine, history
from apps.threat.activity import activity_observe
from apps.threat.assessments import RESPONDED, assessment_record
from apps.threat.responses import respond
from apps.threat.ruleset import ruleset_current

log = logging.getLogger("tessera.threat")


def _current_rules() -> engine.Rules:
    return ruleset_current()


class ThreatAssessor:
    def __init__(self, rules: Callable[[], engine.Rules] | None = None) -> None:
        self.history: history.History = history.RedisHistory()
        self.rules = rules or _current_rules

    def assess(self, context: LoginContext, *, session_id: uuid.UUID | None = None) -> RiskDecision:
        ruleset = self.rules()
        located = engine.located(context)
        attempt = engine.attempt_of(located)
        try:
            view = self.history.observe(attempt)
        except RedisError as error:
            log.warning("threat history unavailable, judging the attempt alone: %s", error)
            decision = engine.decide(located, history.EMPTY, ruleset)
            decision.extra["history"] = "unavailable"
        else:
            decision = engine.decide(located, view, ruleset)
            # A refused success teaches the baseline nothing (engine.evaluate does the same);
            # one sent to a second factor is learned only once the factor is proven (`learn`,
            # from the sign-in's session step): an attacker with the password alone, who
            # fails it, must not make their country, network and device the person's.
            unproven = Action.REQUIRE_MFA in decision.actions
            if located.success and (decision.refuses or unproven):
                try:
                    self.history.forget(attempt, view)
                except RedisError as error:
                    log.warning("threat baseline not corrected: %s", error)
                else:
                    decision.extra["learn_when_proven"] = unproven and not decision.refuses
        assessment_record(located, decision, session_id=session_id)
        if any(action in RESPONDED for action in decision.actions):
            # An unknown address (no user_id) can only be alerted about (respond says so).
            respond(decision, user_id=context.user_id, context=located, session_id=session_id)
        return decision

    def learn(self, context: LoginContext) -> None:
        try:
            self.history.learn(engine.attempt_of(engine.located(context)))
        except RedisError as error:
            log.warning("threat baseline not taught a proven sign-in: %s", error)

    def observe_activity(self, activity: SessionActivity) -> None:
        activity_observe(activity)
