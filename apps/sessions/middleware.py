from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from django.contrib.auth import SESSION_KEY as AUTH_USER_KEY
from django.contrib.auth import logout
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from apps.core import request_context
from apps.core.precompiled import Precompiled
from apps.sessions import binding
from apps.sessions.models import LoginSession
from apps.sessions.selectors import SESSION_KEY
from apps.sessions.services import session_end
from apps.sessions.validation import Seen, session_validate

# last_active_at is written at most this often per session: sliding expiry without a write
# per request.
TOUCH_INTERVAL = timedelta(seconds=60)


class LoginSessionMiddleware:
    """Validates the login session of every browser request that carries one, and gives
    browsers their device cookie.

    A browser whose login session ended (logout elsewhere, an operator, expiry) or fails a
    check (apps.sessions.validation) is signed out of Django at once, so the page it asked for
    sees an anonymous visitor and asks for login. After it, `request.login_session` is the
    live, validated session or None (read it through selectors.session_current).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            cookie_id, stale = binding.device_cookie_read(request)
            tampered = False
        except binding.TamperedDeviceCookie:
            cookie_id, stale, tampered = None, False, True
        request.login_session = self._validated(request, cookie_id, tampered)  # type: ignore[attr-defined]
        response = self.get_response(request)
        if (cookie_id is None or tampered) and _is_page(response):
            # A browser gets one with the first page it sees (the login page, at the latest),
            # so its login binds the session to it.
            binding.set_device_cookie(response, binding.new_device_cookie())
        elif stale and cookie_id is not None and binding.DEVICE_COOKIE not in response.cookies:
            binding.set_device_cookie(response, cookie_id)  # signed again under the current key
        return response

    def _validated(
        self, request: HttpRequest, cookie_id: str | None, tampered: bool
    ) -> LoginSession | None:
        browser_session = request.session
        user_id = browser_session.get(AUTH_USER_KEY)
        if user_id is None:
            return None  # not signed in: nothing to validate (no query)
        session = _login_session(browser_session.get(SESSION_KEY))
        if session is None or session.ended_at is not None:
            logout(request)  # a Django login without a live login session is none at all
            return None
        context = request_context.current()
        seen = Seen(
            user_id=str(user_id),
            ip=context.client_ip if context else None,
            user_agent=request.headers.get("User-Agent", "")[:512],
            device_id=binding.device_id(cookie_id, request) if cookie_id else None,
            device_cookie_tampered=tampered,
            now=timezone.now(),
        )
        reason = session_validate(session, seen)
        if reason:
            session_end(session=session, reason=reason)
            logout(request)
            return None
        if seen.now - session.last_active_at >= TOUCH_INTERVAL:
            LoginSession.objects.filter(pk=session.pk).update(last_active_at=seen.now)
            session.last_active_at = seen.now
        return session


def _login_session(sid: object) -> LoginSession | None:
    """The browser session's login session, with its user (authorize issues codes for
    session.user: one statement fewer); None for a missing or malformed id."""
    try:
        found = _BY_ID.models(uuid.UUID(str(sid))) if sid else []
    except ValueError:
        return None
    return found[0] if found else None


def _by_id(sid: uuid.UUID) -> QuerySet[LoginSession]:
    found: QuerySet[LoginSession] = LoginSession.objects.select_related("user").filter(pk=sid)
    return found.order_by()[:1]


# Compiled once per process: it runs on every signed-in browser request, and the ORM took
# longer to compile it than PostgreSQL to answer it (issue 11, the sign-in benchmark).
_BY_ID: Precompiled[LoginSession] = Precompiled(
    _by_id, field=LoginSession._meta.get_field("id"), samples=(uuid.UUID(int=1), uuid.UUID(int=2))
)


def _is_page(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("text/html")
