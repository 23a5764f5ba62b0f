"""A browser signed in without typing a password, for tests about what comes after."""

from __future__ import annotations

from django.test import Client as HttpClient

from apps.accounts.models import User
from apps.sessions.models import LoginSession
from apps.sessions.selectors import SESSION_KEY
from apps.sessions.services import session_start


def force_sign_in(http: HttpClient, user: User) -> LoginSession:
    """Django's force_login plus what the sign-in pipeline's session step adds to it (apps/
    signin/pipeline.py open_session): a login session, named in the browser session. Opened
    outside a request, so bound to no device (as an API-driven login is)."""
    session = session_start(user=user, amr=["pwd"])
    assert isinstance(session, LoginSession), session  # the session limit refused it
    http.force_login(user)
    browser = http.session
    browser[SESSION_KEY] = str(session.pk)
    browser.save()
    return session
