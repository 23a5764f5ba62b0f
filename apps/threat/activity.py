"""Session activity after sign-in (a code exchange, a refresh, a userinfo call), judged
asynchronously (issue 16): the request that reported it is never slowed by the judgement.

`activity_observe` runs in the request, through the port (ThreatAssessor.observe_activity)
and costs nothing for what is nothing new: an activity from the network the session signed in
from is not judged at all, and one from another network is handed to a worker once per
(session, network) per process per MEMO_SECONDS. `activity_assess` runs in the worker: the
same features, score and rules as a sign-in (apps/threat/engine.py), over the person's
history without counting the activity as an attempt, then the same responses.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict
from datetime import datetime
from typing import Any

from celery import current_app
from redis.exceptions import RedisError

from apps.accounts.models import User
from apps.core.risk import Action, LoginContext, RiskDecision, SessionActivity
from apps.sessions import geo
from apps.sessions.binding import network, same_network
from apps.sessions.models import LoginSession
from apps.threat import engine, history
from apps.threat.assessments import assessment_record
from apps.threat.responses import respond
from apps.threat.ruleset import ruleset_current

log = logging.getLogger("tessera.threat")

ASSESS_TASK = "apps.threat.tasks.assess_activity"
MEMO_SECONDS = 60.0  # a (session, network) handed over once a minute per process at most
MEMO_ENTRIES = 10_000  # bounded: keys come from the network (oldest first out)

_memo: OrderedDict[tuple[str, str], float] = OrderedDict()
_clock = time.monotonic


def activity_observe(activity: SessionActivity) -> bool:
    """Hands `activity` to a worker when there is something to judge; True when it did.
    Never raises: a broker outage is logged and the activity goes unjudged (the request it
    came with was rightly served)."""
    if not activity.ip:
        return False
    if activity.session_ip is not None and same_network(activity.session_ip, activity.ip):
        return False
    try:
        where = network(activity.ip)
    except ValueError:
        return False
    key = (str(activity.session_id or activity.user_id), where)
    now = _clock()
    seen = _memo.get(key)
    if seen is not None and now - seen < MEMO_SECONDS:
        return False
    _memo[key] = now
    _memo.move_to_end(key)
    while len(_memo) > MEMO_ENTRIES:
        _memo.popitem(last=False)
    try:
        # No publish retries (retry=False): with the broker down the request must not wait.
        current_app.send_task(
            ASSESS_TASK,
            args=[activity_payload(activity, located=True)],
            ignore_result=True,
            retry=False,
        )
    except Exception as error:  # the broker: the activity goes unjudged, the request is served
        _memo.pop(key, None)
        log.warning(
            "session activity not queued for judgement",
            extra={"user_id": str(activity.user_id), "error": f"{type(error).__name__}: {error}"},
        )
        return False
    return True


def activity_payload(activity: SessionActivity, *, located: bool = False) -> dict[str, Any]:
    """The activity as the task's primitive arguments (JSON); `located`: with where its
    address is (a memory-mapped GeoIP lookup, microseconds), so the worker judges the place
    the request came from with the databases of the process that saw it."""
    payload = asdict(activity)
    payload["at"] = activity.at.isoformat()
    payload["user_id"] = str(activity.user_id)
    payload["session_id"] = str(activity.session_id) if activity.session_id else None
    if located:
        payload["geo"] = asdict(geo.lookup(activity.ip))
    return payload


def activity_assess(payload: dict[str, Any]) -> RiskDecision | None:
    """Judges one handed-over activity (the worker's half): against the person's baseline
    (read, not learned: an activity is not a sign-in), with the signals saying `activity`,
    scored and decided by the same rules as a sign-in, recorded as threat.assessed (kind
    "activity"), and answered by the same responses (apps.threat.responses.respond: a
    require_mfa here makes the person's next sign-in prove a second factor and ends this
    session). None when there is nothing left to judge: the session has ended, the person is
    gone or deactivated."""
    activity = _activity_of(payload)
    user = User.objects.filter(pk=activity.user_id, is_active=True).first()
    if user is None:
        return None
    session = None
    if activity.session_id is not None:
        session = LoginSession.objects.filter(pk=activity.session_id).first()
        if session is None or session.ended_at is not None:
            return None
    place = payload.get("geo") or {}
    context = engine.located(
        LoginContext(
            at=activity.at,
            email=user.email,
            ip=activity.ip,
            user_agent=activity.user_agent,
            success=True,
            user_id=user.pk,
            device_id=session.device_id if session is not None else "",
            country=place.get("country"),
            city=place.get("city"),
            lat=place.get("lat"),
            lon=place.get("lon"),
            asn=place.get("asn"),
        )
    )
    ruleset = ruleset_current()
    try:
        view = history.RedisHistory().baseline(engine.attempt_of(context))
    except RedisError as error:
        log.warning("threat history unavailable, judging the activity alone: %s", error)
        view = history.EMPTY
    decision = engine.decide(context, view, ruleset, activity=activity)
    assessment_record(
        context, decision, session_id=activity.session_id, kind=activity.kind, activity=activity
    )
    if decision.action != Action.ALLOW:  # require_mfa too: no sign-in here to ask it
        respond(decision, user_id=user.pk, activity=activity, session_id=activity.session_id)
    return decision


def _activity_of(payload: dict[str, Any]) -> SessionActivity:
    return SessionActivity(
        at=datetime.fromisoformat(payload["at"]),
        kind=str(payload["kind"]),
        user_id=uuid.UUID(payload["user_id"]),
        session_id=uuid.UUID(payload["session_id"]) if payload.get("session_id") else None,
        ip=payload.get("ip"),
        user_agent=str(payload.get("user_agent", "")),
        client_id=str(payload.get("client_id", "")),
        family=str(payload.get("family", "")),
        public_client=bool(payload.get("public_client")),
        session_ip=payload.get("session_ip"),
    )


def memo_clear() -> None:
    _memo.clear()
