"""The admin API's staff endpoints: who has a console role, and an administrator's change of
one, through the same service as the console's Staff page (accounts.services.staff_role_set:
user.changed with the caller as actor). Administrators only, reads included (least
privilege, OWASP ASVS 4.1.3: who holds which power is an administrator's business)."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import StaffRole
from apps.accounts.services import LastAdministrator, staff_role_set
from apps.console.api.serializers import UserSerializer
from apps.console.lookups import user_or_404
from apps.console.permissions import AdministratorOnly
from apps.console.staff import staff_members


class LastAdministratorConflict(APIException):
    """409: the change would leave no administrator (RFC 9110 §15.5.10: the request conflicts
    with the current state; it may succeed once someone else is administrator)."""

    status_code = 409
    default_code = "last_administrator"


class StaffRoleSerializer(serializers.Serializer[None]):
    role = serializers.ChoiceField(
        choices=StaffRole.values,
        allow_null=True,
        help_text="The console role; null takes the person out of staff.",
    )


class StaffRoleSetSerializer(serializers.Serializer[None]):
    user = UserSerializer()
    changed = serializers.BooleanField(help_text="False when they had this role already.")


@extend_schema(
    operation_id="staff_list",
    summary="Everyone with a console role, administrators first",
    responses=inline_serializer("StaffList", {"results": UserSerializer(many=True)}),
)
@api_view(["GET"])
@permission_classes([AdministratorOnly])
def staff(request: Request) -> Response:
    return Response({"results": UserSerializer(staff_members(), many=True).data})


@extend_schema(
    operation_id="users_staff_role_set",
    summary="Give a user a console role (viewer, operator, administrator) or, with null, take "
    "them out of staff; recorded as user.changed with the caller as actor",
    request=StaffRoleSerializer,
    responses={
        200: StaffRoleSetSerializer,
        400: OpenApiResponse(description='An unknown role: {"role": ["…"]}.'),
        409: OpenApiResponse(
            description="They are the last administrator: make someone else administrator "
            "first (code last_administrator)."
        ),
    },
)
@api_view(["PUT"])
@permission_classes([AdministratorOnly])
def user_staff_role(request: Request, user_id: uuid.UUID) -> Response:
    given = StaffRoleSerializer(data=request.data)
    given.is_valid(raise_exception=True)
    user = user_or_404(user_id)
    try:
        changed = staff_role_set(
            user=user, role=given.validated_data["role"] or "", actor_id=request.user.pk
        )
    except LastAdministrator as refused:
        raise LastAdministratorConflict(refused.messages[0]) from None
    return Response({"user": UserSerializer(user).data, "changed": changed})
