from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import User
from apps.sessions.models import LoginSession, SessionClient
from apps.sessions.services import session_is_live

# The browser session's key for the login session it belongs to.
SESSION_KEY = "tessera_sid"


def session_current(request: HttpRequest) -> LoginSession | None:
    """The live login session of this browser, or None (signed out, ended or expired), as
    LoginSessionMiddleware validated it for this request."""
    session: LoginSession | None = getattr(request, "login_session", None)
    if session is None or not session_is_live(session):
        return None
    return session


# --- The staff console and the admin API (apps/console) ------------------------------------
# Every read here is bounded and answered by an index: the console must stay fast with
# millions of sessions and events, so nothing counts or sorts a whole table.


CONSOLE_PAGE_SIZE = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def user_lookup(*, email: str = "", user_id: uuid.UUID | None = None) -> User | None:
    """The user with this email address (any case) or this id."""
    if user_id is not None:
        return User.objects.filter(pk=user_id).first()
    # Emails are stored lower-cased (accounts.services): an exact match uses the unique index.
    return User.objects.filter(email=email.lower()).first() if email else None


@dataclass(frozen=True)
class SessionCursor:
    """Where a page of sessions ends, in their order (last_active_at, id), newest first."""

    last_active_at: datetime
    id: uuid.UUID

    def __str__(self) -> str:
        micros = (self.last_active_at - _EPOCH) // timedelta(microseconds=1)
        return f"{micros}.{self.id.hex}"

    @classmethod
    def parse(cls, text: str) -> SessionCursor:
        """Raises ValueError unless `text` is what str() gave."""
        micros, _, hex_id = text.partition(".")
        if not micros.isdigit() or len(micros) > 17:  # digits only, inside datetime's range
            raise ValueError("malformed cursor")
        return cls(_EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(hex=hex_id))


@dataclass(frozen=True)
class SessionPage:
    sessions: list[LoginSession]
    next_cursor: SessionCursor | None  # None on the last page


def _sessions_with_clients() -> QuerySet[LoginSession]:
    return LoginSession.objects.select_related("user").prefetch_related(
        Prefetch("clients", queryset=SessionClient.objects.order_by("first_issued_at"))
    )


def session_page(
    *,
    user: User | None = None,
    email: str = "",
    ip_address: str = "",
    device_id: str = "",
    live_only: bool = False,
    after: SessionCursor | None = None,
    size: int = CONSOLE_PAGE_SIZE,
) -> SessionPage:
    """Sessions most recently active first, filtered, one keyset page at a time: no OFFSET and
    no COUNT, so page 2,000 costs what page 1 does. Filters are exact matches, each answered
    by an index of LoginSession (or User's unique email index)."""
    sessions = _sessions_with_clients()
    if user is not None:
        sessions = sessions.filter(user=user)
    if email:
        sessions = sessions.filter(user__email=email.lower())
    if ip_address:
        sessions = sessions.filter(ip_address=ip_address)
    if device_id:
        sessions = sessions.filter(device_id=device_id)
    if live_only:
        sessions = sessions.filter(ended_at__isnull=True, expires_at__gt=timezone.now())
    if after is not None:
        # (last_active_at, id) < after, spelled so that the index bounds the scan.
        sessions = sessions.filter(last_active_at__lte=after.last_active_at).exclude(
            last_active_at=after.last_active_at, id__gte=after.id
        )
    rows = list(sessions.order_by("-last_active_at", "-id")[: size + 1])
    if len(rows) <= size:
        return SessionPage(rows, None)
    last = rows[size - 1]
    return SessionPage(rows[:size], SessionCursor(last.last_active_at, last.id))


def session_detail(*, session_id: uuid.UUID) -> LoginSession | None:
    return _sessions_with_clients().filter(pk=session_id).first()
