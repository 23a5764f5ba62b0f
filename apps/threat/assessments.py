"""What a judgement leaves behind: the threat.assessed event (score, reasons, rules, action),
recorded the same way for a sign-in attempt (apps/threat/port.py) and for session activity
(apps/threat/activity.py), so the console's timeline reads one shape. Emitted outside a
transaction at sign-in: it goes to the process's journal and costs no SQL statement."""

from __future__ import annotations

import uuid
from typing import Any

from apps.core.events import EventType, emit
from apps.core.risk import Action, LoginContext, RiskDecision, SessionActivity

# The actions apps.threat.responses.respond carries out; refusing the attempt and asking the
# second factor are the sign-in's own.
RESPONDED = (Action.ALERT, Action.BLOCK, Action.INVALIDATE_SESSIONS)


def assessment_record(
    context: LoginContext,
    decision: RiskDecision,
    *,
    session_id: uuid.UUID | None,
    kind: str = "sign_in",
    activity: SessionActivity | None = None,
) -> None:
    metadata: dict[str, Any] = {
        "kind": kind,
        "email": context.email[:254],
        "success": context.success,
        "score": decision.score,
        "action": decision.action,
        "actions": list(decision.actions),
        "rules": list(decision.rules),
        "flags": list(decision.flags),
        "reasons": [
            {"signal": r.signal, "points": r.points, "detail": r.detail} for r in decision.reasons
        ],
        **{key: decision.extra.get(key) for key in ("country", "city", "asn")},
    }
    if activity is not None:
        metadata["client_id"] = activity.client_id
        metadata["ip"] = activity.ip
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
