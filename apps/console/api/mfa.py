"""The admin API's second-factor endpoints (issue 15): what the console's person page shows
and does (apps.console.mfa), through the same services. A person's factors (names, kinds,
times; never a secret), an operator's reset of them, and whether a second factor is required
of them. Staff read; operators change (OperatorWrites), as for sessions and lockouts."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import MfaRequiredBy, User
from apps.accounts.selectors import membership_list_for_user
from apps.accounts.services import mfa_requirement_set
from apps.console.api.serializers import (
    FactorListSerializer,
    FactorResetSerializer,
    FactorSerializer,
    FactorsResetSerializer,
    MfaRequiredSerializer,
    MfaRequiredSetSerializer,
    UserSerializer,
)
from apps.console.api.views import FIELD_ERRORS, _input
from apps.console.lookups import user_or_404, viewed_user_or_404
from apps.console.permissions import OperatorWrites, StaffRead
from apps.mfa.selectors import factors_of
from apps.mfa.services import mfa_reset
from apps.sessions.services import session_end_all


def _required_by(user: User) -> dict[str, Any]:
    organizations, _, _ = membership_list_for_user(user=user)
    requiring = [m.organization for m in organizations if m.organization.mfa_required]
    return {
        "person": user.mfa_required,
        "set_by": user.mfa_required_by,
        "organizations": [{"id": o.pk, "name": o.name} for o in requiring],
        "everyone": settings.MFA_REQUIRED,
    }


@extend_schema(
    operation_id="users_factors_list",
    summary="A user's second factors (names, kinds, times; never a secret) and whether one is "
    "required of them, and why",
    responses=FactorListSerializer,
)
@api_view(["GET"])
@permission_classes([StaffRead])
def user_factors(request: Request, user_id: uuid.UUID) -> Response:
    user = viewed_user_or_404(request, user_id)
    required_by = _required_by(user)
    body = {
        "results": FactorSerializer(factors_of(user), many=True).data,
        "mfa_required": bool(
            required_by["person"] or required_by["organizations"] or required_by["everyone"]
        ),
        "required_by": required_by,
    }
    return Response(FactorListSerializer(body).data)


@extend_schema(
    operation_id="users_factors_reset",
    summary="Remove every second factor of a user (lost or stolen device); recorded as "
    "mfa.reset with the caller as actor",
    description="By default their live sessions end too (end_sessions: true): the lost device "
    "may hold a signed-in browser. Offline grants stay (POST …/revoke-all ends them). If a "
    "second factor is required of them, they enrol a new one at their next sign-in.",
    request=FactorResetSerializer,
    responses={200: FactorsResetSerializer, 400: FIELD_ERRORS},
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def user_factors_reset(request: Request, user_id: uuid.UUID) -> Response:
    user = user_or_404(user_id)
    given = _input(FactorResetSerializer(data=request.data))
    removed = mfa_reset(user=user, actor_id=request.user.pk)
    ended = 0
    if given["end_sessions"]:
        ended = session_end_all(user=user, reason="api", actor_id=request.user.pk)
    return Response({"removed": removed, "sessions_ended": ended})


@extend_schema(
    operation_id="users_mfa_required_set",
    summary="Require a second factor of a user at every sign-in, or stop (their own flag); "
    "recorded as user.changed with the caller as actor",
    description="NIST SP 800-63B §4.2: AAL2 needs two factors. Lifting it leaves their "
    "factors enrolled, and an organization's policy or IDP_MFA_REQUIRED may still require "
    "one (GET …/factors says which).",
    request=MfaRequiredSerializer,
    responses={200: MfaRequiredSetSerializer, 400: FIELD_ERRORS},
)
@api_view(["PUT"])
@permission_classes([OperatorWrites])
def user_mfa_required(request: Request, user_id: uuid.UUID) -> Response:
    user = user_or_404(user_id)
    given = _input(MfaRequiredSerializer(data=request.data))
    changed = mfa_requirement_set(
        user=user,
        required=given["mfa_required"],
        actor_id=request.user.pk,
        source=MfaRequiredBy.OPERATOR,
    )
    return Response({"user": UserSerializer(user).data, "changed": changed})
