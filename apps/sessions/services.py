from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import User
from apps.core import request_context, revocation
from apps.core.events import EventType, emit
from apps.sessions import binding, geo
from apps.sessions.levels import amr_with, level_of
from apps.sessions.models import LoginSession, SessionClient
from apps.sessions.signals import session_ended


@dataclass(frozen=True)
class SessionRefused:
    """A login that proved who the person is but may not begin (the per-user session limit
    with the `refuse` policy). `message` is shown to the person; the login.failed event is
    already recorded."""

    message: str


def session_start(
    *,
    user: User,
    amr: list[str],
    provider: str = "local",
    request: HttpRequest | None = None,
    risk: dict[str, Any] | None = None,
) -> LoginSession | SessionRefused:
    """A new login session, bound to the browser of `request` (apps.sessions.binding), or why
    it may not begin. `risk` is the sign-in's threat decision ({"score", "flags", "reasons"},
    apps.signin.pipeline.risk_of): the score goes to threat_score, the flags and reasons to
    context["security_flags"] and context["threat_reasons"].

    The per-user limit (LOGIN_SESSION_LIMIT; OWASP Session Management Cheat Sheet,
    "Simultaneous Session Logons") holds under concurrent logins: the user's row is locked
    first, so logins of one user take turns counting and ending sessions. The statement that
    locks it is the UPDATE of the account's last_login (Django's own update_last_login
    receiver is switched off by apps.signin, which opens sessions through here): one round
    trip for both. last_login is thus the last time the person proved who they are, a login
    the limit then refused included.
    """
    context = request_context.current()
    ip = context.client_ip if context else None
    user_agent = context.user_agent if context else ""
    device_id, login_context = _binding(request, ip, user_agent)
    risk = risk or {}
    if risk:
        login_context["security_flags"] = list(risk.get("flags", []))
        login_context["threat_reasons"] = list(risk.get("reasons", []))
    with transaction.atomic():
        now = timezone.now()
        User.objects.filter(pk=user.pk).update(last_login=now)  # the row lock, and the record
        user.last_login = now
        # After the lock: creation times follow the order logins took it, so "oldest" is.
        now = timezone.now()
        refusal = _make_room(user, now, provider)
        if refusal:
            return SessionRefused(refusal)  # commits: the login.failed event is kept
        level = level_of(amr)
        return LoginSession.objects.create(
            user=user,
            provider=provider,
            acr=level.acr,
            amr=amr,
            security_level=level.security_level,
            authenticated_at=now,
            device_id=device_id,
            ip_address=ip,
            user_agent=user_agent,
            context=login_context,
            threat_score=int(risk.get("score", 0)),
            created_at=now,
            last_active_at=now,
            expires_at=now + timedelta(seconds=settings.LOGIN_SESSION_LIFETIME),
        )


def _binding(
    request: HttpRequest | None, ip: str | None, user_agent: str
) -> tuple[str, dict[str, Any]]:
    cookie_id = None
    flags = []
    if request is not None:
        try:
            cookie_id = binding.device_cookie(request)
        except binding.TamperedDeviceCookie:
            flags.append("device_cookie_tampered")
    if cookie_id is None:
        flags.append("device_unbound")  # no device cookie at login: an API-driven login
    seen = binding.device(request) if request else None
    login_context = {
        "location": geo.location(ip),
        "device": {
            "browser": seen.browser if seen else binding.browser_family(user_agent),
            "platform": seen.platform if seen else "",
            "mobile": seen.mobile if seen else False,
        },
        "network": binding.network(ip),
        "flags": flags,
    }
    device_id = binding.device_id(cookie_id, request) if cookie_id and request else ""
    return device_id, login_context


def _make_room(user: User, now: datetime, provider: str) -> str:
    """Enforces the per-user session limit; the caller holds the user's row lock. Returns why
    the login is refused, or "". Records one event: the refused login, or the eviction."""
    limit = settings.LOGIN_SESSION_LIMIT
    if not limit:
        return ""
    live = list(
        LoginSession.objects.filter(user=user, ended_at__isnull=True, expires_at__gt=now).order_by(
            "created_at"
        )
    )
    excess = len(live) - limit + 1
    if excess <= 0:
        return ""
    if settings.LOGIN_SESSION_LIMIT_POLICY == "refuse":
        refusal = (
            f"You are signed in on {len(live)} devices already, the most allowed. "
            "Sign out on one of them, then sign in here again."
        )
        emit(
            EventType.LOGIN_FAILED,
            user_id=user.pk,
            resource_type="user",
            resource_id=user.pk,
            success=False,
            error_code="session_limit",
            error_message=refusal,
            metadata={"provider": provider, "limit": limit},
        )
        return refusal
    emit(
        EventType.SESSION_LIMIT_REACHED,
        user_id=user.pk,
        resource_type="user",
        resource_id=user.pk,
        metadata={"limit": limit, "evicted": excess},
    )
    for session in live[:excess]:
        session_end(session=session, reason="session_limit")
    return ""


# Why a session ended (LoginSession.end_reason), and the event each one records.
END_REASONS = {
    "logout": EventType.LOGOUT,
    "account_page": EventType.LOGOUT,  # the person ended it from their account page
    "operator": EventType.SESSION_REVOKED,
    "api": EventType.SESSION_REVOKED,
    "compromised": EventType.SESSION_REVOKED,
    "session_limit": EventType.SESSION_REVOKED,
    "device_mismatch": EventType.SESSION_REVOKED,
    "ip_change": EventType.SESSION_REVOKED,
    "user_mismatch": EventType.SESSION_REVOKED,
    "threat": EventType.SESSION_REVOKED,
    "account_disabled": EventType.SESSION_REVOKED,
    "account_deleted": EventType.SESSION_REVOKED,
    "password_changed": EventType.SESSION_REVOKED,
    # The upstream account the session was signed in with was unlinked (apps/federation).
    "unlinked": EventType.SESSION_REVOKED,
    "idle_timeout": EventType.SESSION_EXPIRED,
    "expired": EventType.SESSION_EXPIRED,
}


def session_end(*, session: LoginSession, reason: str, actor_id: object = None) -> bool:
    """Ends the session: its refresh tokens stop working (they are honoured only while their
    session is live), its access tokens are rejected through the revocation list, and
    session_ended, sent inside the same transaction, records who to tell (the clients that
    received tokens under it), so that the end and the notices commit together. False when
    it had already ended."""
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
        session_ended.send(sender=LoginSession, session=session, reason=reason)
    return True


def session_end_all(*, user: User, reason: str, actor_id: object = None) -> int:
    """Ends every live session of the user; returns how many ended."""
    live = LoginSession.objects.filter(user=user, ended_at__isnull=True)
    return sum(session_end(session=s, reason=reason, actor_id=actor_id) for s in live)


# Sessions ended per transaction by sessions_end_everyone: a batch commits (or, on a failure,
# rolls back) as a whole, so no transaction holds row locks and outbox rows for 100,000
# sessions, and a run cut short leaves every ended session fully ended (its sid listed, its
# relying parties' deliveries recorded).
END_EVERYONE_BATCH = 500
# Seconds of work the console and the admin API give one request (sessions_end_everyone's
# `seconds`): at the measured 100-130 sessions a second, a run over a few thousand sessions
# would outlast a proxy's read timeout (deploy/'s nginx: 30 s) and answer 504 with no count.
# A request stops after the batch that crosses it and says how many are left; calling again
# goes on. manage.py end_all_sessions has no bound.
END_EVERYONE_REQUEST_SECONDS = 20.0


@dataclass(frozen=True)
class EndedEveryone:
    ended: int  # by this call
    remaining: int  # sessions begun before this call and still live (`keep` aside)


def sessions_live_count(*, exclude: uuid.UUID | None = None) -> int:
    """How many sessions have not ended (expired ones included, as sessions_end_everyone ends
    them too), `exclude` aside: the console's confirmation says it. Counted on the partial
    index of live sessions, so it costs the live sessions, not the table."""
    live = LoginSession.objects.filter(ended_at__isnull=True)
    if exclude is not None:
        live = live.exclude(pk=exclude)
    return live.count()


def sessions_end_everyone(
    *,
    reason: str,
    actor_id: object = None,
    keep: uuid.UUID | None = None,
    batch_size: int = END_EVERYONE_BATCH,
    progress: Callable[[int], None] | None = None,
    metadata: dict[str, Any] | None = None,
    seconds: float | None = None,
) -> EndedEveryone:
    """Ends every session of every person that began before this call (OWASP ASVS 7.4.5:
    an administrator terminates the active sessions of all users; incident response, such
    as a suspected compromise of the session store), the session with id `keep` aside (the
    operator's own, when the caller keeps it). Each one goes through session_end, the one road
    for ending a session: its sid is listed as revoked (JWT access tokens die), its refresh
    tokens stop working, its relying parties are told over the back channel, and its
    session.revoked event names `actor_id`. `batch_size` sessions a transaction; `progress`
    hears the running total after each batch. Sessions begun after the call (people signing
    in again) are left alone, so the run ends even while sign-ins go on. With `seconds`, no
    batch starts after that long (END_EVERYONE_REQUEST_SECONDS) and `remaining` says what is
    left for another call. Records one sessions.ended_all event with the count."""
    started = timezone.now()
    deadline = None if seconds is None else time.monotonic() + seconds
    live = LoginSession.objects.filter(ended_at__isnull=True, created_at__lte=started)
    if keep is not None:
        live = live.exclude(pk=keep)
    ended = 0
    while True:
        with transaction.atomic():
            batch = list(live.order_by()[:batch_size])
            if not batch:
                break
            ended += sum(
                session_end(session=session, reason=reason, actor_id=actor_id) for session in batch
            )
        if progress is not None:
            progress(ended)
        if deadline is not None and time.monotonic() >= deadline:
            break
    remaining = live.count()
    emit(
        EventType.SESSIONS_ENDED_ALL,
        actor_id=actor_id,
        resource_type="sessions",
        metadata={
            **(metadata or {}),
            "reason": reason,
            "ended": ended,
            "remaining": remaining,
            "kept": str(keep) if keep is not None else None,
            "seconds": round((timezone.now() - started).total_seconds(), 1),
        },
    )
    return EndedEveryone(ended=ended, remaining=remaining)


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


def session_auth_time(session: LoginSession) -> datetime:
    """OIDC Core §2 auth_time: when the person last actively authenticated in this session."""
    return session.authenticated_at or session.created_at


def session_step_up(*, session: LoginSession, amr: list[str]) -> bool:
    """Records that the person of a live session proved the methods `amr` (RFC 8176) besides
    those it holds: the session's amr gains them, its level and acr follow (apps.sessions.
    levels), and its auth_time becomes now. False when the session is no longer live.

    auth_time moves: OIDC Core §2 defines it as the time of the End-User's authentication, and
    a step-up is one, made with the person present; so a second factor given for a request
    with max_age also answers that max_age. NIST SP 800-63B §4.2.3 counts such a
    reauthentication with one factor as renewing an AAL2 session. The session keeps its id
    (`sid`): tokens already issued under it stay tied to it; the caller renews the browser
    session's key (OWASP Session Management Cheat Sheet: renew on privilege change).
    """
    now = timezone.now()
    with transaction.atomic():
        # Locked: two factors proven at once must both end up in amr.
        row = (
            LoginSession.objects.select_for_update()
            .filter(pk=session.pk, ended_at__isnull=True, expires_at__gt=now)
            .only("amr", "security_level")
            .first()
        )
        if row is None:
            return False
        before = row.security_level
        combined = amr_with(row.amr, amr)
        level = level_of(combined)
        LoginSession.objects.filter(pk=session.pk).update(
            amr=combined, acr=level.acr, security_level=level.security_level, authenticated_at=now
        )
        emit(
            EventType.SESSION_STEPPED_UP,
            user_id=session.user_id,
            session_id=session.pk,
            resource_type="session",
            resource_id=session.pk,
            metadata={
                "added": [method for method in amr if method not in row.amr],
                "amr": combined,
                "acr": level.acr,
                "level_before": before,
                "level_after": level.security_level,
            },
        )
    session.amr, session.acr, session.security_level = combined, level.acr, level.security_level
    session.authenticated_at = now
    return True
