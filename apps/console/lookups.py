"""The user or session a console page or API path names, or a 404."""

from __future__ import annotations

import uuid

from django.http import Http404

from apps.accounts.models import User
from apps.sessions.models import LoginSession
from apps.sessions.selectors import session_detail, user_lookup


def user_or_404(user_id: uuid.UUID) -> User:
    user = user_lookup(user_id=user_id)
    if user is None:
        raise Http404("No user has this id.")
    return user


def session_or_404(session_id: uuid.UUID) -> LoginSession:
    session = session_detail(session_id=session_id)
    if session is None:
        raise Http404("No session has this id.")
    return session
