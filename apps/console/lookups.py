"""The user or session a console page or API path names, or a 404; and the record that an
operator opened a person's data."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest
from rest_framework.request import Request

from apps.accounts.models import User
from apps.audit import gdpr
from apps.audit.store import pseudonym
from apps.core.events import EventType, emit
from apps.sessions.models import LoginSession
from apps.sessions.selectors import session_detail, user_lookup
from apps.tokens import clients_admin
from apps.tokens.models import Client, OfflineGrant
from apps.tokens.selectors import offline_grant_detail


def user_or_404(user_id: uuid.UUID) -> User:
    user = user_lookup(user_id=user_id)
    if user is None:
        raise Http404("No user has this id.")
    return user


def viewed_user_or_404(request: HttpRequest | Request, user_id: uuid.UUID) -> User:
    """The user whose data the request shows an operator, with the record that it did."""
    user = user_or_404(user_id)
    operator_viewed(request, user)
    return user


def client_or_404(client_id: str) -> Client:
    """Any client, disabled or not (the console and the admin API's client pages)."""
    client = clients_admin.client_detail(client_id=client_id)
    if client is None:
        raise Http404("No client has this id.")
    return client


def session_or_404(session_id: uuid.UUID) -> LoginSession:
    session = session_detail(session_id=session_id)
    if session is None:
        raise Http404("No session has this id.")
    return session


def offline_grant_or_404(grant_id: uuid.UUID) -> OfflineGrant:
    grant = offline_grant_detail(grant_id=grant_id)
    if grant is None:
        raise Http404("No offline grant has this id.")
    return grant


def operator_viewed(request: HttpRequest | Request, person: User | str) -> None:
    """One event per request that shows a person's data to an operator (GDPR Art. 30 record
    of processing; SOC 2 CC6.1: access to personal data is logged with who had it). `person`
    is the account, or what an audit search named when it is none (a pseudonym, or an id no
    account has).

    An erased person is recorded by the pseudonym their other events carry (audit.gdpr), in
    the path too: the real id in a new event would tie them back to the person (Art. 17)."""
    recorded, path = str(person.pk) if isinstance(person, User) else person, request.path
    if isinstance(person, User) and gdpr.user_is_erased(person):
        recorded = pseudonym(recorded)
        path = path.replace(str(person.pk), recorded)
    emit(
        EventType.OPERATOR_VIEWED_USER,
        user_id=recorded,
        actor_id=request.user.pk,
        resource_type="user",
        resource_id=recorded,
        action="viewed",
        metadata={"path": path},
    )
