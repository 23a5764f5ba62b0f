from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import User
from apps.core.cursors import KeysetCursor
from apps.sessions import binding
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


def user_lookup(*, email: str = "", user_id: uuid.UUID | None = None) -> User | None:
    """The user with this email address (any case) or this id."""
    if user_id is not None:
        return User.objects.filter(pk=user_id).first()
    # Emails are stored lower-cased (accounts.services): an exact match uses the unique index.
    return User.objects.filter(email=email.lower()).first() if email else None


@dataclass(frozen=True)
class SessionPage:
    sessions: list[LoginSession]
    next_cursor: KeysetCursor | None  # None on the last page


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
    after: KeysetCursor | None = None,
    size: int = CONSOLE_PAGE_SIZE,
    using: str = DEFAULT_DB_ALIAS,
) -> SessionPage:
    """Sessions most recently active first, filtered, one keyset page at a time: no OFFSET and
    no COUNT, so page 2,000 costs what page 1 does. Filters are exact matches, each answered
    by an index of LoginSession (or User's unique email index). `using`: the database alias
    (the console passes apps.core.replica.lagging_reads())."""
    sessions = _sessions_with_clients().using(using)
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
        sessions = sessions.filter(last_active_at__lte=after.at).exclude(
            last_active_at=after.at, id__gte=after.id
        )
    rows = list(sessions.order_by("-last_active_at", "-id")[: size + 1])
    if len(rows) <= size:
        return SessionPage(rows, None)
    last = rows[size - 1]
    return SessionPage(rows[:size], KeysetCursor(last.last_active_at, last.id))


def session_detail(*, session_id: uuid.UUID) -> LoginSession | None:
    return _sessions_with_clients().filter(pk=session_id).first()


def device_signed_in_before(*, user_id: uuid.UUID, request: HttpRequest) -> bool:
    """Whether this browser (its signed device cookie, on the same browser and platform) has
    opened a login session for this account before. The sign-in pipeline judges such an
    attempt by the (account, IP) failure counter only, so a lockout aimed at someone cannot
    keep them out of the devices they use (issue 12; Keycloak GHSA-cq42-vhv7-xr7p)."""
    try:
        cookie_id = binding.device_cookie(request)
    except binding.TamperedDeviceCookie:
        return False
    if cookie_id is None:
        return False
    device = binding.device_id(cookie_id, request)
    return LoginSession.objects.filter(user_id=user_id, device_id=device).exists()


# --- The person's own account page (apps/signin/account.py) --------------------------------

# Live sessions a person's page lists at most (LOGIN_SESSION_LIMIT, when set, is far below).
OWN_SESSIONS_MAX = 100


def sessions_live_for_user(*, user: User) -> list[LoginSession]:
    """The person's live login sessions, most recently used first (the partial index of live
    sessions by user answers the filter)."""
    live = LoginSession.objects.filter(
        user=user, ended_at__isnull=True, expires_at__gt=timezone.now()
    )
    return list(live.order_by("-last_active_at", "-id")[:OWN_SESSIONS_MAX])


def session_live_of_user(*, user: User, session_id: object) -> LoginSession | None:
    """The person's live session with this id; None for another person's, an ended one or a
    malformed id (the page answers 404 for each alike)."""
    try:
        pk = uuid.UUID(str(session_id))
    except ValueError:
        return None
    found: LoginSession | None = LoginSession.objects.filter(
        pk=pk, user=user, ended_at__isnull=True, expires_at__gt=timezone.now()
    ).first()
    return found
