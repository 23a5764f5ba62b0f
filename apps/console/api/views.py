"""The admin REST API (/api/v1/): what the console shows and does, for scripts.

Authentication is a staff session (CSRF enforced on POST) or a bearer token with the admin
scope (settings.REST_FRAMEWORK); every change is made by apps.sessions.services with the
caller as the event's actor. Ids in paths are UUIDs (anything else is a 404 from the URL
resolver) and query parameters are parsed by the console's forms (400 with field errors).
"""

from __future__ import annotations

import uuid
from typing import TypeVar

from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import User
from apps.console.api.serializers import (
    SecurityEventSerializer,
    SessionPageSerializer,
    SessionsEndedSerializer,
    SessionSerializer,
    UserSerializer,
)
from apps.console.forms import SessionFilterForm, UserLookupForm
from apps.console.lookups import (
    operator_viewed,
    session_or_404,
    user_or_404,
    viewed_user_or_404,
)
from apps.sessions.selectors import (
    CONSOLE_PAGE_SIZE,
    security_events_for_user,
    session_page,
    user_lookup,
)
from apps.sessions.services import session_end, session_end_all, session_mark_compromised

F = TypeVar("F", bound=forms.Form)

SESSION_FILTERS = [
    OpenApiParameter("email", OpenApiTypes.EMAIL, description="Sessions of the user with it."),
    OpenApiParameter("ip_address", str, description="An IPv4 or IPv6 address."),
    OpenApiParameter("device_id", str),
    OpenApiParameter("live_only", bool, description="Only sessions neither ended nor expired."),
    OpenApiParameter("after", str, description="The `next` value of the previous page."),
]


@extend_schema(
    operation_id="users_find",
    summary="Find a user by email address or id",
    parameters=[OpenApiParameter("email", OpenApiTypes.EMAIL), OpenApiParameter("id", uuid.UUID)],
    responses=inline_serializer("UserList", {"results": UserSerializer(many=True)}),
)
@api_view(["GET"])
def users(request: Request) -> Response:
    form = _valid(UserLookupForm(request.query_params))
    user = user_lookup(email=form.cleaned_data["email"], user_id=form.cleaned_data["id"])
    if user:
        operator_viewed(request, user.pk)
    return Response({"results": UserSerializer([user] if user else [], many=True).data})


@extend_schema(summary="One user", responses=UserSerializer)
@api_view(["GET"])
def user(request: Request, user_id: uuid.UUID) -> Response:
    return Response(UserSerializer(viewed_user_or_404(request, user_id)).data)


@extend_schema(
    summary="A user's sessions, most recently active first",
    parameters=SESSION_FILTERS[1:],
    responses=SessionPageSerializer,
)
@api_view(["GET"])
def user_sessions(request: Request, user_id: uuid.UUID) -> Response:
    return _session_page(request, user=viewed_user_or_404(request, user_id))


@extend_schema(
    summary=f"A user's newest security events (at most {CONSOLE_PAGE_SIZE})",
    responses=inline_serializer("EventList", {"results": SecurityEventSerializer(many=True)}),
)
@api_view(["GET"])
def user_events(request: Request, user_id: uuid.UUID) -> Response:
    events = security_events_for_user(user=viewed_user_or_404(request, user_id))
    return Response({"results": SecurityEventSerializer(events, many=True).data})


@extend_schema(
    summary="Revoke every live session of a user", request=None, responses=SessionsEndedSerializer
)
@api_view(["POST"])
def user_sessions_revoke(request: Request, user_id: uuid.UUID) -> Response:
    user = user_or_404(user_id)
    ended = session_end_all(user=user, reason="api", actor_id=request.user.pk)
    return Response({"ended": ended})


@extend_schema(
    operation_id="sessions_list",
    summary=f"Sessions of all users, most recently active first, {CONSOLE_PAGE_SIZE} a page",
    parameters=SESSION_FILTERS,
    responses=SessionPageSerializer,
)
@api_view(["GET"])
def sessions(request: Request) -> Response:
    return _session_page(request, user=None)


@extend_schema(summary="One session", responses=SessionSerializer)
@api_view(["GET"])
def session(request: Request, session_id: uuid.UUID) -> Response:
    found = session_or_404(session_id)
    operator_viewed(request, found.user_id)
    return Response(SessionSerializer(found).data)


@extend_schema(
    summary="Revoke a session (no change if it had ended)",
    request=None,
    responses=SessionSerializer,
)
@api_view(["POST"])
def session_revoke(request: Request, session_id: uuid.UUID) -> Response:
    found = session_or_404(session_id)
    session_end(session=found, reason="api", actor_id=request.user.pk)
    return Response(SessionSerializer(found).data)


@extend_schema(
    summary="Mark a session compromised and end it", request=None, responses=SessionSerializer
)
@api_view(["POST"])
def session_compromise(request: Request, session_id: uuid.UUID) -> Response:
    found = session_or_404(session_id)
    session_mark_compromised(session=found, actor_id=request.user.pk)
    return Response(SessionSerializer(found).data)


def _session_page(request: Request, *, user: User | None) -> Response:
    page = session_page(user=user, **_valid(SessionFilterForm(request.query_params)).cleaned_data)
    body = {"results": page.sessions, "next": str(page.next_cursor) if page.next_cursor else None}
    return Response(SessionPageSerializer(body).data)


def _valid(form: F) -> F:
    """The form, validated; otherwise a 400 naming each field's problem."""
    if not form.is_valid():
        errors = form.errors.get_json_data()
        raise ValidationError(
            {
                "non_field_errors" if field == "__all__" else field: [e["message"] for e in found]
                for field, found in errors.items()
            }
        )
    return form
