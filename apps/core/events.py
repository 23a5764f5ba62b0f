"""The security-event catalog and emit(), the only way to record one.

emit() writes an append-only row to the event outbox through the caller's database connection,
so the event commits or rolls back with the change it records (the transactional outbox the
audit pipeline ships). Later features add their events here, one line of doc each.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.utils import timezone

from apps.core import outbox, request_context


class EventType(models.TextChoices):
    """Closed catalog: the label is the event's one-line documentation."""

    USER_CREATED = "user.created", "An account was created (by sign-up, an operator or the CLI)."
    LOGIN_SUCCEEDED = "login.succeeded", "A user proved their identity and a session began."
    LOGIN_FAILED = "login.failed", "An attempt to sign in was refused; metadata says why."
    LOGOUT = "logout", "A user ended their session."
    SESSION_REVOKED = "session.revoked", "A session was ended by an operator, the API or a rule."
    SESSION_EXPIRED = "session.expired", "A session passed its idle timeout or absolute lifetime."
    SESSION_FLAGGED = (
        "session.flagged",
        "A request on a session changed IP network, device or browser; metadata says which.",
    )
    SESSION_COMPROMISED = (
        "session.compromised",
        "An operator or a rule marked a session compromised.",
    )
    SESSION_LIMIT_REACHED = (
        "session.limit_reached",
        "A login met the per-user session limit: the oldest was evicted or the login refused.",
    )
    TOKEN_ISSUED = "token.issued", "The token endpoint issued tokens to a client."
    TOKEN_REFRESHED = (
        "token.refreshed",
        "A refresh token was exchanged (and rotated) for new tokens.",
    )
    CONSENT_GRANTED = "consent.granted", "A user allowed a client the scopes it asked for."
    TOKEN_REVOKED = "token.revoked", "A token was revoked (RFC 7009 or as part of a session)."
    TOKEN_REUSE_DETECTED = (
        "token.reuse_detected",
        "A rotated refresh token was presented again; its whole grant was revoked.",
    )
    CLIENT_CREATED = "client.created", "An OAuth client was registered."
    KEY_ROTATED = "key.rotated", "The signing keys were rotated."


def emit(
    event_type: EventType,
    *,
    user_id: object = None,
    actor_id: object = None,
    session_id: object = None,
    resource_type: str = "",
    resource_id: object = None,
    success: bool = True,
    metadata: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Record one security event; returns the event id once the row is committed (in the
    caller's transaction when there is one: see core.outbox).

    IP address, user agent and request id come from the current request, when there is one.
    """
    if not isinstance(event_type, EventType):
        raise TypeError(f"emit() takes an EventType from the catalog, not {event_type!r}")
    context = request_context.current()
    event_id = uuid.uuid4()
    values = {
        "id": event_id,
        "occurred_at": timezone.now(),
        "event_type": event_type.value,
        "user_id": _text(user_id),
        "actor_id": _text(actor_id),
        "session_id": _text(session_id),
        "resource_type": resource_type,
        "resource_id": _text(resource_id),
        "success": success,
        "ip_address": context.client_ip if context else None,
        "user_agent": _text(context.user_agent) if context else "",
        "request_id": context.request_id if context else "",
        "metadata": metadata or {},
    }
    outbox.write(values)
    return event_id


def _text(value: object) -> str:
    # PostgreSQL refuses NUL in text, and one bad row would fail a whole group commit.
    return "" if value is None else str(value).replace("\x00", "")
