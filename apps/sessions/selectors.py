from __future__ import annotations

from django.http import HttpRequest

from apps.sessions.models import LoginSession
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
