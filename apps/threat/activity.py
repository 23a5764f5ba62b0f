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
from collections import OrderedDict
from dataclasses import asdict
from typing import Any

from celery import current_app

from apps.core.risk import SessionActivity
from apps.sessions.binding import network, same_network

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
            ASSESS_TASK, args=[activity_payload(activity)], ignore_result=True, retry=False
        )
    except Exception as error:  # the broker: the activity goes unjudged, the request is served
        _memo.pop(key, None)
        log.warning(
            "session activity not queued for judgement",
            extra={"user_id": str(activity.user_id), "error": f"{type(error).__name__}: {error}"},
        )
        return False
    return True


def activity_payload(activity: SessionActivity) -> dict[str, Any]:
    """The activity as the task's primitive arguments (JSON)."""
    payload = asdict(activity)
    payload["at"] = activity.at.isoformat()
    payload["user_id"] = str(activity.user_id)
    payload["session_id"] = str(activity.session_id) if activity.session_id else None
    return payload


def memo_clear() -> None:
    _memo.clear()
