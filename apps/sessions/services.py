from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.core import request_context, revocation
from apps.core.events import EventType, emit
from apps.sessions.models import LoginSession, SessionClient
from apps.sessions.signals import session_ended

# OIDC Core §2 acr: this deployment's level for a password login (no MFA yet).
ACR_PASSWORD = "urn:tessera:acr:pwd"


def session_start(*, user: User, amr: list[str], provider: str = "local") -> LoginSession:
    """A new login session; the caller emits the login event in the same transaction."""
    now = timezone.now()
    context = request_context.current()
    return LoginSession.objects.create(
        user=user,
        provider=provider,
        acr=ACR_PASSWORD,
        amr=amr,
        ip_address=context.client_ip if context else None,
        user_agent=context.user_agent if context else "",
        created_at=now,
        last_active_at=now,
        expires_at=now + timedelta(seconds=settings.LOGIN_SESSION_LIFETIME),
    )


# Why a session ended (LoginSession.end_reason), and the event each one records.
END_REASONS = {
    "logout": EventType.LOGOUT,
    "operator": EventType.SESSION_REVOKED,
    "api": EventType.SESSION_REVOKED,
    "compromised": EventType.SESSION_REVOKED,
    "session_limit": EventType.SESSION_REVOKED,
    "device_mismatch": EventType.SESSION_REVOKED,
    "ip_change": EventType.SESSION_REVOKED,
    "user_mismatch": EventType.SESSION_REVOKED,
    "threat": EventType.SESSION_REVOKED,
    "idle_timeout": EventType.SESSION_EXPIRED,
    "expired": EventType.SESSION_EXPIRED,
}


def session_end(*, session: LoginSession, reason: str, actor_id: object = None) -> bool:
    """Ends the session: its refresh tokens stop working (they are honoured only while their
    session is live), its access tokens are rejected through the revocation list, and after
    commit session_ended tells the clients that received tokens under it. False when it had
    already ended."""
    event_type = END_REASONS[reason]
    now = timezone.now()
    with transaction.atomic():
        ended = LoginSession.objects.filter(id=session.id, ended_at__isnull=True).update(
            ended_at=now, end_reason=reason
        )
        if not ended:
            return False
        # Before commit: if Redis is down the logout fails visibly instead of leaving
        # the session's access tokens valid.
        revocation.revoke_sid(str(session.id))
        emit(
            event_type,
            user_id=session.user_id,
            actor_id=actor_id,
            session_id=session.id,
            resource_type="session",
            resource_id=session.id,
            metadata={"reason": reason},
        )
        session.ended_at, session.end_reason = now, reason
        transaction.on_commit(
            lambda: session_ended.send(sender=LoginSession, session=session, reason=reason)
        )
    return True


def session_end_all(*, user: User, reason: str, actor_id: object = None) -> int:
    """Ends every live session of the user; returns how many ended."""
    live = LoginSession.objects.filter(user=user, ended_at__isnull=True)
    return sum(session_end(session=s, reason=reason, actor_id=actor_id) for s in live)


def session_mark_compromised(*, session: LoginSession, actor_id: object = None) -> None:
    """Marks the session compromised (kept for the record) and ends it."""
    with transaction.atomic():
        LoginSession.objects.filter(id=session.id).update(compromised=True)
        session.compromised = True
        emit(
            EventType.SESSION_COMPROMISED,
            user_id=session.user_id,
            actor_id=actor_id,
            session_id=session.id,
            resource_type="session",
            resource_id=session.id,
        )
        session_end(session=session, reason="compromised", actor_id=actor_id)


def session_client_record(*, session: LoginSession, client_id: str) -> None:
    """Remembers that `client_id` received tokens under the session (for logout)."""
    SessionClient.objects.bulk_create(
        [SessionClient(session=session, client_id=client_id, first_issued_at=timezone.now())],
        ignore_conflicts=True,
    )


def session_is_live(session: LoginSession, *, now: datetime | None = None) -> bool:
    return session.ended_at is None and session.expires_at > (now or timezone.now())
