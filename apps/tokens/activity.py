"""Session activity after sign-in, handed to threat scoring through the port in core
(apps/core/risk.py, `observe_activity`): a code exchange, a refresh, a userinfo call. The
port returns at once (a worker judges the activity); a failure to hand it over is logged and
never fails the request that reported it: the token was rightly issued."""

from __future__ import annotations

import logging
import uuid

from django.utils import timezone

from apps.core import request_context
from apps.core.risk import SessionActivity, risk_assessor

log = logging.getLogger("tessera.tokens")


def activity_report(
    *,
    kind: str,
    user_id: uuid.UUID,
    session_id: uuid.UUID | None,
    session_ip: str | None = None,
    client_id: str = "",
    family: object = "",
    public_client: bool = False,
) -> None:
    context = request_context.current()
    activity = SessionActivity(
        at=timezone.now(),
        kind=kind,
        user_id=user_id,
        session_id=session_id,
        ip=context.client_ip if context else None,
        user_agent=context.user_agent if context else "",
        client_id=client_id,
        family=str(family or ""),
        public_client=public_client,
        session_ip=session_ip,
    )
    try:
        risk_assessor().observe_activity(activity)
    except Exception:  # the port promises not to raise; a bug there must not fail a token
        log.exception("session activity of %s not handed to threat scoring", user_id)
