from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.core import request_context, revocation
from apps.core.events import EventType, emit
from apps.sessions.models import LoginSession

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
        expires_at=now + timedelta(seconds=settings.LOGIN_SESSION_LIFETIME),
    )


def session_end(*, session: LoginSession, reason: str, actor_id: object = None) -> None:
    """Ends the session: its refresh tokens stop working (they are honoured only while their
    session is live) and its access tokens are rejected through the revocation list."""
    with transaction.atomic():
        ended = LoginSession.objects.filter(id=session.id, ended_at__isnull=True).update(
            ended_at=timezone.now(), end_reason=reason
        )
        if not ended:
            return
        # Before commit: if Redis is down the logout fails visibly instead of leaving
        # the session's access tokens valid.
        revocation.revoke_sid(str(session.id))
        emit(
            EventType.LOGOUT if reason == "logout" else EventType.SESSION_REVOKED,
            user_id=session.user_id,
            actor_id=actor_id,
            session_id=session.id,
            resource_type="session",
            resource_id=session.id,
            metadata={"reason": reason},
        )


def session_is_live(session: LoginSession, *, now: datetime | None = None) -> bool:
    return session.ended_at is None and session.expires_at > (now or timezone.now())
