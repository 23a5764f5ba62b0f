"""The user or session a console page or API path names, or a 404; and the record that an
operator opened a person's data."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest
from rest_framework.request import Request

from apps.accounts.models import User
from apps.core.events import EventType, emit
from apps.sessions.models import LoginSession
from apps.sessions.selectors import session_detail, user_lookup


def user_or_404(user_id: uuid.UUID) -> User:
    user = user_lookup(user_id=user_id)
    if user is None:
        raise Http404("No user has this id.")
    return user


def viewed_user_or_404(request: HttpRequest | Request, user_id: uuid.UUID) -> User:
    """The user whose data the request shows an operator, with the record that it did."""
    user = user_or_404(user_id)
    operator_viewed(request, user.pk)
    return user


def session_or_404(session_id: uuid.UUID) -> LoginSession:
    session = session_detail(session_id=session_id)
    if session is None:
        raise Http404("No session has this id.")
    return session


def operator_viewed(request: HttpRequest | Request, person_id: object) -> None:
    """One event per request that shows a person's data to an operator (GDPR Art. 30 record
    of processing; SOC 2 CC6.1: access to personal data is logged with who had it)."""
    emit(
        EventType.OPERATOR_VIEWED_USER,
        user_id=person_id,
        actor_id=request.user.pk,
        resource_type="user",
        resource_id=person_id,
        action="viewed",
        metadata={"path": request.path},
    )
