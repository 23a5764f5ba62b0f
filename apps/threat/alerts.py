"""Telling operators that a threat rule matched: the `threat.alerted` event, then delivery to
the configured channels (docs/threat.md, "Responses").

- webhook: a JSON POST to settings.THREAT_WEBHOOK_URL signed in the Stripe style
  (`Tessera-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`), sent by a Celery
  worker with retries (apps/threat/tasks.py);
- e-mail: one message to each of settings.THREAT_ALERT_EMAILS through apps/core/mail.py.

Both are queued once the caller's transaction commits (an alert never announces a block that
rolled back), and neither can fail the caller: a broker outage is logged. The same rule for
the same person (or, for an unknown address, the same IP) alerts once per
settings.THREAT_ALERT_DEDUP_SECONDS, decided in Redis (SET NX EX) so that every web process
agrees: a credential-stuffing run against one account sends one alert, not thousands.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from redis.exceptions import RedisError

from apps.core.commit import after_commit, queue_after_commit
from apps.core.events import EventType, emit
from apps.core.mail import mail_send, recipient
from apps.core.redis import get_redis
from apps.core.risk import LoginContext, RiskDecision, SessionActivity

log = logging.getLogger("tessera.threat")

SIGNATURE_HEADER = "Tessera-Signature"
WEBHOOK_TASK = "apps.threat.tasks.webhook_deliver"
_DEDUP_PREFIX = "tessera:threat:alerted:"
# What a receiver should accept as the signature's age (docs/threat.md): the time a delivery
# may wait in the queue and retry is not part of it, because each attempt is signed anew.
RECOMMENDED_TOLERANCE_SECONDS = 300


def sign(body: bytes, *, timestamp: int, secrets: Iterable[str]) -> str:
    """The Tessera-Signature header value for `body` sent at `timestamp`: one v1 per secret
    (the current one first; the previous one too while a rotation is under way)."""
    signed = str(timestamp).encode("ascii") + b"." + body
    parts = [f"t={timestamp}"]
    for secret in secrets:
        if secret:
            digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
            parts.append(f"v1={digest}")
    return ",".join(parts)


def verify(
    body: bytes,
    header: str,
    *,
    secret: str,
    tolerance: int = RECOMMENDED_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """What a receiver does (docs/threat.md): parse t and every v1, refuse a t older (or
    newer) than `tolerance` seconds, and compare each v1 with its own HMAC in constant time."""
    timestamp, candidates = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():  # "²".isdigit() too
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or not secret:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(body, timestamp=timestamp, secrets=[secret]).split(",")[1][3:]
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def channels() -> list[str]:
    """The channels alerts go to, as configured."""
    found = []
    if settings.THREAT_WEBHOOK_URL:
        found.append("webhook")
    if settings.THREAT_ALERT_EMAILS:
        found.append("email")
    return found


def _fresh(rules: tuple[str, ...], subject: str) -> tuple[str, ...]:
    """The rules that have not alerted for `subject` within the dedup window (and are now
    marked as having done so). Redis unreachable: every rule alerts (a duplicate is better
    than a missed attack), and the outage is logged."""
    window = settings.THREAT_ALERT_DEDUP_SECONDS
    if window <= 0:
        return rules
    try:
        pipe = get_redis().pipeline(transaction=False)
        for rule in rules:
            key = _DEDUP_PREFIX + hashlib.sha256(f"{rule}\0{subject}".encode()).hexdigest()
            pipe.set(key, 1, nx=True, ex=window)
        return tuple(rule for rule, first in zip(rules, pipe.execute(), strict=True) if first)
    except RedisError as error:
        log.warning("threat alert dedup unavailable; alerting anyway: %s", error)
        return rules


def alert(
    decision: RiskDecision,
    *,
    user_id: uuid.UUID | None,
    email: str = "",
    context: LoginContext | None = None,
    activity: SessionActivity | None = None,
    session_id: uuid.UUID | None = None,
    actions: tuple[str, ...] = (),
) -> uuid.UUID | None:
    """Records `threat.alerted` (in the caller's transaction) and queues the deliveries for
    after its commit; returns the event id, or None when every rule already alerted for this
    person (or IP) within the dedup window. `actions` are what the response carried out."""
    ip = (context.ip if context else activity.ip if activity else None) or decision.extra.get("ip")
    subject = f"user:{user_id}" if user_id else f"ip:{ip or '-'}"
    rules = _fresh(decision.rules or (decision.action,), subject)
    if not rules:
        return None
    sent_to = channels()
    reasons = [
        {"signal": r.signal, "points": r.points, "detail": r.detail} for r in decision.reasons
    ]
    extra = decision.extra
    metadata: dict[str, Any] = {
        "rule": rules[0],
        "rules": list(rules),
        "score": decision.score,
        "action": decision.action,
        "actions": list(actions or decision.actions),
        "severity": extra.get("severity", ""),
        "reasons": reasons,
        "channels": sent_to,
        "ip": ip or "",
        "country": extra.get("country") or (context.country if context else None) or "",
        "activity": activity.kind if activity else "",
    }
    event_id = emit(
        EventType.THREAT_ALERTED,
        user_id=user_id,
        session_id=session_id or (activity.session_id if activity else None),
        resource_type="user" if user_id else "ip",
        resource_id=user_id or ip or "",
        metadata=metadata,
    )
    payload = {
        "id": str(event_id),
        "type": "threat.alerted",
        "created": timezone.now().isoformat(),
        "issuer": settings.ISSUER,
        **{k: metadata[k] for k in ("rule", "rules", "score", "action", "actions", "severity")},
        "reasons": reasons,
        "user": {"id": str(user_id), "email": email} if user_id else None,
        "ip": metadata["ip"] or None,
        "country": metadata["country"] or None,
        "city": extra.get("city") or (context.city if context else None),
        "asn": extra.get("asn") or (context.asn if context else None),
        "session_id": str(session_id) if session_id else None,
        "activity": (
            {"kind": activity.kind, "client_id": activity.client_id} if activity else None
        ),
    }
    if "webhook" in sent_to:
        queue_after_commit(WEBHOOK_TASK, settings.THREAT_WEBHOOK_URL, payload)
    if "email" in sent_to:
        after_commit(_send_mails, payload)
    return event_id


def _send_mails(payload: dict[str, Any]) -> None:
    """One message per operator; called after the commit, so mail_send queues at once."""
    context = {
        **payload,
        "user_id": (payload["user"] or {}).get("id", ""),
        "email": (payload["user"] or {}).get("email", ""),
        "when": payload["created"],
        "where": ", ".join(str(p) for p in (payload["city"], payload["country"]) if p),
        "activity": (payload["activity"] or {}).get("kind", ""),
        "person_url": _person_url(payload["user"]),
    }
    for address in settings.THREAT_ALERT_EMAILS:
        try:
            mail_send("threat_alert", to=recipient(address), context=context)
        except ValidationError as error:
            log.error("threat alert %s: operator address refused: %s", payload["id"], error)
        except Exception as error:  # a broker outage must not fail the response
            log.error("threat alert %s: e-mail not queued: %s", payload["id"], error)


def _person_url(user: dict[str, str] | None) -> str:
    if not user:
        return ""
    try:
        return settings.ISSUER + reverse("console:user", args=[user["id"]])
    except NoReverseMatch:
        return ""


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed): compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
