"""The admin REST API (/api/v1/): what the console shows and does, for scripts.

Authentication is a staff session (CSRF enforced on POST) or a bearer token with the admin
scope (settings.REST_FRAMEWORK); every change is made by apps.sessions.services or
apps.tokens.services with the caller as the event's actor. Ids in paths are UUIDs (anything
else is a 404 from the URL resolver) and query parameters are parsed by the console's forms
(400 with field errors). Audit reads and GDPR requests go to apps.audit; when its store
(ClickHouse) does not answer, the answer is 503.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any, TypeVar

from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.decorators import api_view, content_negotiation_class, permission_classes
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.accounts.models import User
from apps.audit import gdpr
from apps.audit.selectors import event_page, events_recent_for_user
from apps.audit.store import PAGE_SIZE, PAGE_SIZE_MAX, StoreUnavailable
from apps.console.api.serializers import (
    AuditEventPageSerializer,
    AuditEventSerializer,
    BlockClearedSerializer,
    BlockClearSerializer,
    BlockListSerializer,
    ErasedSerializer,
    EverythingRevokedSerializer,
    LockoutListSerializer,
    LockoutsClearedSerializer,
    LockoutUnlockSerializer,
    MailSentSerializer,
    OfflineGrantSerializer,
    OfflineGrantsRevokedSerializer,
    SessionPageSerializer,
    SessionsEndedSerializer,
    SessionSerializer,
    UserSerializer,
)
from apps.console.downloads import events_download, person_download
from apps.console.forms import (
    AuditApiSearchForm,
    LockoutFilterForm,
    RateLimitBlockFilterForm,
    SessionFilterForm,
    UserLookupForm,
)
from apps.console.lookups import (
    offline_grant_or_404,
    operator_viewed,
    session_or_404,
    user_or_404,
    viewed_user_or_404,
)
from apps.console.permissions import (
    AdministratorOnly,
    OperatorOnly,
    OperatorWrites,
    StaffRead,
)
from apps.core.events import EventType, Severity
from apps.core.replica import lagging_reads
from apps.ratelimit.services import (
    CURRENT_LIMIT,
    KINDS,
    block_clear,
    blocks_current,
    lockout_clear,
    lockouts_current,
    lockouts_for,
)
from apps.sessions.selectors import CONSOLE_PAGE_SIZE, session_page, user_lookup
from apps.sessions.services import session_end, session_end_all, session_mark_compromised
from apps.signin import recovery
from apps.tokens import services as token_services
from apps.tokens.selectors import offline_grants_live

F = TypeVar("F", bound=forms.Form)

SESSION_FILTERS = [
    OpenApiParameter("email", OpenApiTypes.EMAIL, description="Sessions of the user with it."),
    OpenApiParameter("ip_address", str, description="An IPv4 or IPv6 address."),
    OpenApiParameter("device_id", str),
    OpenApiParameter("live_only", bool, description="Only sessions neither ended nor expired."),
    OpenApiParameter("after", str, description="The `next` value of the previous page."),
]
AUDIT_FILTERS = [
    OpenApiParameter(
        "user", str, description="An account's email address, a user id or a pseudonym (anon:…)."
    ),
    OpenApiParameter("event_type", str, enum=EventType.values),
    OpenApiParameter(
        "since", OpenApiTypes.DATETIME, description="From (inclusive); UTC without an offset."
    ),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="To (exclusive)."),
    OpenApiParameter("ip_address", str, description="An IPv4 or IPv6 address."),
    OpenApiParameter("success", str, enum=["yes", "no"]),
    OpenApiParameter("severity", str, enum=Severity.values),
]
AUDIT_PAGE = [
    OpenApiParameter("after", str, description="The `next` value of the previous page."),
    OpenApiParameter("limit", int, description=f"1 to {PAGE_SIZE_MAX}; {PAGE_SIZE} if absent."),
]

FIELD_ERRORS = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description='Bad input: each field at fault and why, {"kind": ["…"]}; a body that is not '
    'JSON: {"detail": "JSON parse error …"}.',
)


class StoreDown(APIException):
    status_code = 503
    default_detail = "The audit store (ClickHouse) did not answer; try again shortly."
    default_code = "audit_store_unavailable"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's (REST_FRAMEWORK["EXCEPTION_HANDLER"]), with an audit store that did not answer
    turned into 503 StoreDown wherever an endpoint reads it."""
    if isinstance(exc, StoreUnavailable):
        exc = StoreDown()
    return drf_exception_handler(exc, context)


class DownloadNegotiation(BaseContentNegotiation):
    """A download is its own media type whatever the client accepts; an error before it
    begins is JSON (the default would answer an Accept: text/csv with 406)."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser:
        return next(iter(parsers))

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


@extend_schema(
    operation_id="users_find",
    summary="Find a user by email address or id",
    parameters=[OpenApiParameter("email", OpenApiTypes.EMAIL), OpenApiParameter("id", uuid.UUID)],
    responses=inline_serializer("UserList", {"results": UserSerializer(many=True)}),
)
@api_view(["GET"])
@permission_classes([StaffRead])
def users(request: Request) -> Response:
    form = _valid(UserLookupForm(request.query_params))
    user = user_lookup(email=form.cleaned_data["email"], user_id=form.cleaned_data["id"])
    if user:
        operator_viewed(request, user)
    return Response({"results": UserSerializer([user] if user else [], many=True).data})


@extend_schema(summary="One user", responses=UserSerializer)
@api_view(["GET"])
@permission_classes([StaffRead])
def user(request: Request, user_id: uuid.UUID) -> Response:
    return Response(UserSerializer(viewed_user_or_404(request, user_id)).data)


@extend_schema(
    summary="A user's sessions, most recently active first",
    parameters=SESSION_FILTERS[1:],
    responses=SessionPageSerializer,
)
@api_view(["GET"])
@permission_classes([StaffRead])
def user_sessions(request: Request, user_id: uuid.UUID) -> Response:
    return _session_page(request, user=viewed_user_or_404(request, user_id))


@extend_schema(
    summary=f"A user's newest security events (at most {PAGE_SIZE}; older: /audit/events)",
    responses=inline_serializer("EventList", {"results": AuditEventSerializer(many=True)}),
)
@api_view(["GET"])
@permission_classes([StaffRead])
def user_events(request: Request, user_id: uuid.UUID) -> Response:
    user = viewed_user_or_404(request, user_id)
    events = events_recent_for_user(user_id=user.pk, limit=PAGE_SIZE)
    return Response({"results": AuditEventSerializer(events, many=True).data})


@extend_schema(
    operation_id="users_export",
    summary="Everything held about a user, one JSON document (GDPR Art. 15, 20), streamed",
    responses={(200, "application/json"): OpenApiTypes.OBJECT},
)
@api_view(["GET"])
# Operator, as on the console's page: the GDPR export hands over everything held about a
# person (least privilege, OWASP ASVS 4.1.3).
@permission_classes([OperatorOnly])
def user_export(request: Request, user_id: uuid.UUID) -> StreamingHttpResponse:
    user = user_or_404(user_id)
    return person_download(user=user, actor_id=request.user.pk)


@extend_schema(
    operation_id="users_erase",
    summary="Erase a user (GDPR Art. 17): account scrubbed, sessions ended, events pseudonymized",
    request=None,
    responses=ErasedSerializer,
)
@api_view(["POST"])
# Administrator, as on the console's page: erasure cannot be undone (ASVS 4.1.3).
@permission_classes([AdministratorOnly])
def user_erase(request: Request, user_id: uuid.UUID) -> Response:
    user = user_or_404(user_id)
    try:
        alias = gdpr.user_erase(user=user, actor_id=request.user.pk)
    except gdpr.ErasureRefused as refused:
        raise PermissionDenied(str(refused)) from None
    except StoreUnavailable:
        raise StoreDown("The audit store (ClickHouse) did not answer; erase again.") from None
    except gdpr.ErasureUnavailable as unavailable:
        raise StoreDown(str(unavailable), code="redis_unavailable") from None
    return Response({"pseudonym": alias})


@extend_schema(
    summary="Revoke every live session of a user", request=None, responses=SessionsEndedSerializer
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def user_sessions_revoke(request: Request, user_id: uuid.UUID) -> Response:
    user = user_or_404(user_id)
    ended = session_end_all(user=user, reason="api", actor_id=request.user.pk)
    return Response({"ended": ended})


@extend_schema(
    summary="A user's offline grants in force (OIDC Core §11 offline_access), newest first",
    responses=inline_serializer("OfflineGrantList", {"results": OfflineGrantSerializer(many=True)}),
)
@api_view(["GET"])
@permission_classes([StaffRead])
def user_offline_grants(request: Request, user_id: uuid.UUID) -> Response:
    grants = offline_grants_live(user=viewed_user_or_404(request, user_id))
    return Response({"results": OfflineGrantSerializer(grants, many=True).data})


@extend_schema(
    summary="Revoke every offline grant of a user (their sessions stay)",
    request=None,
    responses=OfflineGrantsRevokedSerializer,
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def user_offline_grants_revoke(request: Request, user_id: uuid.UUID) -> Response:
    user = user_or_404(user_id)
    revoked = token_services.offline_grants_revoke_all(
        user=user, reason="api", actor_id=request.user.pk
    )
    return Response({"revoked": revoked})


@extend_schema(
    summary="Revoke everything: every session and every offline grant of a user",
    request=None,
    responses=EverythingRevokedSerializer,
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def user_revoke_all(request: Request, user_id: uuid.UUID) -> Response:
    user = user_or_404(user_id)
    revoked = token_services.user_access_revoke_all(
        user=user, reason="api", actor_id=request.user.pk
    )
    return Response(asdict(revoked))


@extend_schema(
    summary="Mail a user a link to verify their e-mail address",
    description="Nothing is sent (sent: false) when the address is verified already or the "
    "account is deactivated. Recorded as email.verification_sent with the caller as actor; "
    "the link is never shown to the caller.",
    request=None,
    responses=MailSentSerializer,
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def user_verification_send(request: Request, user_id: uuid.UUID) -> Response:
    user = user_or_404(user_id)
    if recovery.verification_send(user, actor_id=request.user.pk, request=request):
        return Response({"sent": True, "detail": f"Verification e-mail sent to {user.email}."})
    detail = f"{user.email} is verified already or deactivated: nothing was sent."
    return Response({"sent": False, "detail": detail})


@extend_schema(
    summary="Mail a user a password-reset link",
    description="The person chooses a new password through the link (valid "
    "IDP_PASSWORD_RESET_MINUTES); no operator sees or sets a password. Nothing is sent "
    "(sent: false) to a deactivated account. Recorded as password.reset_requested with the "
    "caller as actor.",
    request=None,
    responses=MailSentSerializer,
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def user_password_reset_send(request: Request, user_id: uuid.UUID) -> Response:
    user = user_or_404(user_id)
    if recovery.password_reset_send(user, actor_id=request.user.pk, request=request):
        return Response({"sent": True, "detail": f"Password-reset e-mail sent to {user.email}."})
    return Response({"sent": False, "detail": f"{user.email} is deactivated: nothing was sent."})


@extend_schema(summary="One offline grant", responses=OfflineGrantSerializer)
@api_view(["GET"])
@permission_classes([StaffRead])
def offline_grant(request: Request, grant_id: uuid.UUID) -> Response:
    grant = offline_grant_or_404(grant_id)
    operator_viewed(request, grant.user)
    return Response(OfflineGrantSerializer(grant).data)


@extend_schema(
    summary="Revoke an offline grant and its tokens (no change if it had ended)",
    request=None,
    responses=OfflineGrantSerializer,
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def offline_grant_revoke(request: Request, grant_id: uuid.UUID) -> Response:
    grant = offline_grant_or_404(grant_id)
    token_services.offline_grant_revoke(grant=grant, reason="api", actor_id=request.user.pk)
    grant.refresh_from_db(fields=["revoked_at", "revoke_reason"])
    return Response(OfflineGrantSerializer(grant).data)


@extend_schema(
    operation_id="sessions_list",
    summary=f"Sessions of all users, most recently active first, {CONSOLE_PAGE_SIZE} a page",
    parameters=SESSION_FILTERS,
    responses=SessionPageSerializer,
)
@api_view(["GET"])
@permission_classes([StaffRead])
def sessions(request: Request) -> Response:
    return _session_page(request, user=None)


@extend_schema(summary="One session", responses=SessionSerializer)
@api_view(["GET"])
@permission_classes([StaffRead])
def session(request: Request, session_id: uuid.UUID) -> Response:
    found = session_or_404(session_id)
    operator_viewed(request, found.user)
    return Response(SessionSerializer(found).data)


@extend_schema(
    summary="Revoke a session (no change if it had ended)",
    request=None,
    responses=SessionSerializer,
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def session_revoke(request: Request, session_id: uuid.UUID) -> Response:
    found = session_or_404(session_id)
    session_end(session=found, reason="api", actor_id=request.user.pk)
    return Response(SessionSerializer(found).data)


@extend_schema(
    summary="Mark a session compromised and end it", request=None, responses=SessionSerializer
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def session_compromise(request: Request, session_id: uuid.UUID) -> Response:
    found = session_or_404(session_id)
    session_mark_compromised(session=found, actor_id=request.user.pk)
    return Response(SessionSerializer(found).data)


@extend_schema(
    operation_id="audit_events_list",
    summary=f"Security events, newest first, {PAGE_SIZE} a page unless `limit` says",
    parameters=AUDIT_FILTERS + AUDIT_PAGE,
    responses=AuditEventPageSerializer,
)
@api_view(["GET"])
@permission_classes([StaffRead])
def audit_events(request: Request) -> Response:
    form = _valid(AuditApiSearchForm(request.query_params))
    if form.filters.user_id:
        operator_viewed(request, form.person or form.filters.user_id)
    page = event_page(
        filters=form.filters, after=form.cleaned_data["after"], limit=form.cleaned_data["limit"]
    )
    body = {"results": page.events, "next": str(page.next_cursor) if page.next_cursor else None}
    return Response(AuditEventPageSerializer(body).data)


@extend_schema(
    operation_id="audit_events_csv",
    summary="Every matching security event as CSV, newest first, streamed",
    parameters=AUDIT_FILTERS,
    responses={(200, "text/csv"): OpenApiTypes.STR},
)
@api_view(["GET"])
@permission_classes([StaffRead])
@content_negotiation_class(DownloadNegotiation)
def audit_events_csv(request: Request) -> StreamingHttpResponse:
    return _export(request, "csv")


@extend_schema(
    operation_id="audit_events_jsonl",
    summary="Every matching security event as JSON Lines, newest first, streamed",
    parameters=AUDIT_FILTERS,
    responses={(200, "application/jsonl"): OpenApiTypes.STR},
)
@api_view(["GET"])
@permission_classes([StaffRead])
@content_negotiation_class(DownloadNegotiation)
def audit_events_jsonl(request: Request) -> StreamingHttpResponse:
    return _export(request, "jsonl")


@extend_schema(
    operation_id="lockouts_list",
    summary=f"Failed-attempt counters locked now, the longest first (at most {CURRENT_LIMIT}); "
    "with `identifier`, that identifier's counters whatever their state",
    parameters=[
        OpenApiParameter("kind", str, enum=list(KINDS), description="Only this kind."),
        OpenApiParameter(
            "identifier",
            str,
            description="An email address, a client id or (kind mfa) an account id (at most "
            "254 characters); without `kind`, one with an @ is an email address, else a client "
            "id.",
        ),
    ],
    responses={200: LockoutListSerializer, 400: FIELD_ERRORS},
)
@api_view(["GET"])
@permission_classes([StaffRead])
def lockouts(request: Request) -> Response:
    form = _valid(LockoutFilterForm(request.query_params))
    identifier = form.cleaned_data["identifier"]
    if identifier:
        found = lockouts_for(kind=form.cleaned_data["lookup_kind"], identifier=identifier)
        body: dict[str, Any] = {"results": found, "truncated": False, "limit": CURRENT_LIMIT}
    else:
        current = lockouts_current(kind=form.cleaned_data["kind"] or None)
        body = {"results": current.lockouts, "truncated": current.truncated, "limit": current.limit}
    return Response(LockoutListSerializer(body).data)


@extend_schema(
    operation_id="lockouts_unlock",
    summary="Lift every lockout of an identifier (its own counter and each per-IP one); "
    "recorded as account.unlocked with the caller as actor",
    request=LockoutUnlockSerializer,
    responses={200: LockoutsClearedSerializer, 400: FIELD_ERRORS},
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def lockout_unlock(request: Request) -> Response:
    given = LockoutUnlockSerializer(data=request.data)
    given.is_valid(raise_exception=True)  # 400 naming each field at fault
    cleared = lockout_clear(
        kind=given.validated_data["kind"],
        identifier=given.validated_data["identifier"],
        actor_id=request.user.pk,
        reason="api",
    )
    return Response({"cleared": cleared})


@extend_schema(
    operation_id="ratelimit_blocks_list",
    summary="Rate-limit keys refusing requests now (spent quota or backoff penalty), the "
    f"longest wait first (at most {CURRENT_LIMIT})",
    parameters=[OpenApiParameter("rule", str, description="Only this rule's keys.")],
    responses={200: BlockListSerializer, 400: FIELD_ERRORS},
)
@api_view(["GET"])
@permission_classes([StaffRead])
def ratelimit_blocks(request: Request) -> Response:
    form = _valid(RateLimitBlockFilterForm(request.query_params))
    current = blocks_current(rule=form.cleaned_data["rule"] or None)
    body = {"results": current.blocks, "truncated": current.truncated, "limit": current.limit}
    return Response(BlockListSerializer(body).data)


@extend_schema(
    operation_id="ratelimit_blocks_clear",
    summary="Clear one rate-limit key (its quota, violations and backoff penalty); recorded "
    "as ratelimit.cleared with the caller as actor",
    request=BlockClearSerializer,
    responses={200: BlockClearedSerializer, 400: FIELD_ERRORS},
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def ratelimit_block_clear(request: Request) -> Response:
    given = BlockClearSerializer(data=request.data)
    given.is_valid(raise_exception=True)  # 400 naming each field at fault
    cleared = block_clear(
        rule=given.validated_data["rule"],
        value=given.validated_data["value"],
        actor_id=request.user.pk,
        reason="api",
    )
    return Response({"cleared": cleared})


def _export(request: Request, fmt: str) -> StreamingHttpResponse:
    form = _valid(AuditApiSearchForm(request.query_params))
    return events_download(filters=form.filters, fmt=fmt, actor_id=request.user.pk)


def _session_page(request: Request, *, user: User | None) -> Response:
    filters = _valid(SessionFilterForm(request.query_params)).cleaned_data
    page = session_page(user=user, **filters, using=lagging_reads())  # read-only: may lag
    body = {"results": page.sessions, "next": str(page.next_cursor) if page.next_cursor else None}
    return Response(SessionPageSerializer(body).data)


_R = TypeVar("_R")


def _refused(invalid: DjangoValidationError) -> ValidationError:
    """A service's ValidationError as DRF's 400: the rule that failed, under the field it
    names (the console's pages put it on the form field: console.forms.form_errors)."""
    if hasattr(invalid, "error_dict"):
        return ValidationError(invalid.message_dict)
    return ValidationError({"non_field_errors": invalid.messages})


def _input(serializer: serializers.Serializer[Any]) -> dict[str, Any]:
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _call(service: Callable[..., _R], **kwargs: Any) -> _R:
    """The service, with its ValidationError as a 400 naming the field."""
    try:
        return service(**kwargs)
    except DjangoValidationError as invalid:
        raise _refused(invalid) from None


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
