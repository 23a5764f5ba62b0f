"""The admin API's authorization model (/api/v1/organizations, workspaces, groups,
permissions, roles, memberships, and a person's memberships and claims preview): what the
console's directory pages do, through the same services (apps.accounts.directory, which
records each change as `permission.changed` with the caller as actor_id).

Viewers read; operators change memberships (bulk adds included: OperatorWrites);
administrators change organizations, workspaces, groups, roles and permissions
(AdministratorWrites). OWASP ASVS 4.1.3: least privilege.

Bad input is a 400 naming the field: wrong types (a number where a name goes, a string where
a list goes), oversized strings, a body that is not JSON, an id in the body that names nothing
(`{"role": ["No role has this id."]}`), a role of another organization (the service's message
under "role"). An id in the path that names nothing is a 404. Deleting a role still in use is
a 409 `role_in_use` with the service's message (RFC 9110 §15.5.10: it conflicts with the
current state and succeeds once its members have another role)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts import directory, invitations, selectors
from apps.accounts.models import (
    Group,
    Organization,
    OrganizationInvitation,
    OrganizationMembership,
    Permission,
    PermissionScope,
    Role,
    User,
    Workspace,
    WorkspaceMembership,
)
from apps.accounts.services import organization_mfa_policy_set
from apps.console.api.serializers import StrictBoolean
from apps.console.api.views import FIELD_ERRORS, _call, _input, _refused
from apps.console.lookups import viewed_user_or_404
from apps.console.permissions import AdministratorWrites, OperatorWrites, StaffRead
from apps.sessions.selectors import user_lookup

R = TypeVar("R")

NOT_FOUND = OpenApiResponse(description='No such row: {"detail": "…"}.')


class StrictText(serializers.CharField):
    """A string and nothing else: DRF's CharField would take 12 or 1.5 for "12" or "1.5"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


# --- what the API shows ---------------------------------------------------------------------


class OrganizationSerializer(serializers.ModelSerializer[Organization]):
    class Meta:
        model = Organization
        fields: tuple[str, ...] = ("id", "name", "slug", "mfa_required", "created_at")


class WorkspaceSerializer(serializers.ModelSerializer[Workspace]):
    class Meta:
        model = Workspace
        fields: tuple[str, ...] = ("id", "organization", "name", "slug", "created_at")


class GroupSerializer(serializers.ModelSerializer[Group]):
    class Meta:
        model = Group
        fields: tuple[str, ...] = ("id", "workspace", "name", "created_at")


class PermissionSerializer(serializers.ModelSerializer[Permission]):
    claim = serializers.CharField(source="__str__", help_text="resource:action:scope")

    class Meta:
        model = Permission
        fields: tuple[str, ...] = ("id", "resource", "action", "scope", "claim", "created_at")


class RoleSerializer(serializers.ModelSerializer[Role]):
    organization = serializers.UUIDField(
        source="organization_id", allow_null=True, help_text="Null for a built-in role."
    )
    permissions = PermissionSerializer(many=True)

    class Meta:
        model = Role
        fields: tuple[str, ...] = (
            "id",
            "organization",
            "name",
            "description",
            "permissions",
            "created_at",
        )


class RoleDetailSerializer(RoleSerializer):
    members = serializers.SerializerMethodField(
        help_text="Organization and workspace memberships that have this role."
    )

    class Meta(RoleSerializer.Meta):
        fields = (*RoleSerializer.Meta.fields, "members")

    def get_members(self, role: Role) -> int:
        return directory.role_members_count(role)


class OrganizationDetailSerializer(OrganizationSerializer):
    workspaces = WorkspaceSerializer(many=True)
    roles = RoleSerializer(many=True, help_text="Its own roles (the built-in ones: GET /roles).")

    class Meta(OrganizationSerializer.Meta):
        fields = (*OrganizationSerializer.Meta.fields, "workspaces", "roles")


class WorkspaceDetailSerializer(WorkspaceSerializer):
    groups = GroupSerializer(many=True)

    class Meta(WorkspaceSerializer.Meta):
        fields = (*WorkspaceSerializer.Meta.fields, "groups")


class PageSerializer(serializers.Serializer[Any]):
    next = serializers.CharField(
        allow_null=True, help_text="Pass as `after` for the next page; null on the last page."
    )


class OrganizationPageSerializer(PageSerializer):
    results = OrganizationSerializer(many=True)


class RoleRefSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    name = serializers.CharField()


class MemberSerializer(serializers.Serializer[Any]):
    """A person's membership of an organization or a workspace."""

    user_id = serializers.UUIDField()
    email = serializers.EmailField(source="user.email")
    role = RoleRefSerializer()
    created_at = serializers.DateTimeField()


class GroupMemberSerializer(serializers.Serializer[Any]):
    user_id = serializers.UUIDField()
    email = serializers.EmailField(source="user.email")
    created_at = serializers.DateTimeField()


class MemberPageSerializer(PageSerializer):
    results = MemberSerializer(many=True)


class GroupMemberPageSerializer(PageSerializer):
    results = GroupMemberSerializer(many=True)


class DeleteImpactSerializer(serializers.Serializer[Any]):
    """What went with it (counted inside the deletion)."""

    workspaces = serializers.IntegerField()
    groups = serializers.IntegerField()
    roles = serializers.IntegerField()
    memberships = serializers.IntegerField(help_text="Of organizations, workspaces and groups.")
    people = serializers.IntegerField(help_text="Members of what was deleted itself.")


class OrganizationMemberRemovedSerializer(serializers.Serializer[Any]):
    workspaces = serializers.IntegerField(help_text="Its workspaces they were taken out of.")
    groups = serializers.IntegerField(help_text="Groups they were taken out of.")
    tokens_revoked = serializers.IntegerField(
        help_text="Their live access tokens put on the revocation list "
        "(0 with IDP_REVOKE_ON_MEMBERSHIP_REMOVAL off)."
    )


class WorkspaceMemberRemovedSerializer(serializers.Serializer[Any]):
    groups = serializers.IntegerField(help_text="The workspace's groups they were taken out of.")


class PermissionDeletedSerializer(serializers.Serializer[Any]):
    roles = serializers.IntegerField(help_text="Roles that had it (they no longer do).")


class BulkLineSerializer(serializers.Serializer[Any]):
    line = serializers.IntegerField(help_text="The line's number in the CSV, from 1.")
    email = serializers.CharField()
    role = serializers.CharField()
    workspace = serializers.CharField(help_text="A workspace slug; empty: the organization.")
    status = serializers.ChoiceField(
        choices=["ok", "unchanged", "error"],
        help_text="ok: added (or would be); unchanged: already so; error: see message.",
    )
    message = serializers.CharField()


class BulkResultSerializer(serializers.Serializer[Any]):
    applied = serializers.BooleanField(help_text="True when the ok lines were added.")
    results = BulkLineSerializer(many=True)


class BulkRefusedSerializer(serializers.Serializer[Any]):
    """Each field at fault and why, as every 400 of the API: csv (or apply, or detail for a
    body that is not JSON) is there only when it is at fault."""

    csv = serializers.ListField(child=serializers.CharField(), required=False)
    results = BulkLineSerializer(
        many=True, required=False, help_text="Each line, when the list could be read."
    )


class PermissionClaimSerializer(serializers.Serializer[Any]):
    resource = serializers.CharField()
    action = serializers.CharField()
    scope = serializers.CharField()


class OrganizationClaimSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    role = serializers.CharField()
    perms = PermissionClaimSerializer(many=True)


class WorkspaceClaimSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    org_id = serializers.UUIDField()
    role = serializers.CharField()
    groups = serializers.ListField(child=serializers.UUIDField())
    perms = PermissionClaimSerializer(many=True)


class ClaimsSerializer(serializers.Serializer[Any]):
    orgs = OrganizationClaimSerializer(many=True)
    workspaces = WorkspaceClaimSerializer(many=True)
    groups = serializers.ListField(child=serializers.UUIDField())
    perms = PermissionClaimSerializer(many=True)


class UserOrganizationSerializer(serializers.Serializer[Any]):
    organization = OrganizationSerializer()
    role = RoleRefSerializer()


class UserWorkspaceSerializer(serializers.Serializer[Any]):
    workspace = WorkspaceSerializer()
    role = RoleRefSerializer()


class UserGroupSerializer(serializers.Serializer[Any]):
    group = GroupSerializer()


class UserMembershipsSerializer(serializers.Serializer[Any]):
    organizations = UserOrganizationSerializer(many=True)
    workspaces = UserWorkspaceSerializer(many=True)
    groups = UserGroupSerializer(many=True)


# --- what the API takes ---------------------------------------------------------------------


def _name(**kwargs: Any) -> StrictText:
    return StrictText(max_length=directory.NAME_MAX, **kwargs)


def _slug(**kwargs: Any) -> StrictText:
    return StrictText(max_length=directory.SLUG_MAX, **kwargs)


class OrganizationSearchSerializer(serializers.Serializer[Any]):
    q = StrictText(required=False, default="", allow_blank=True, max_length=directory.NAME_MAX)
    after = _slug(required=False, allow_null=True, default=None)


class AfterSerializer(serializers.Serializer[Any]):
    after = StrictText(required=False, allow_null=True, default=None, max_length=254)


class NamedSerializer(serializers.Serializer[Any]):
    name = _name()
    slug = _slug(help_text="2-63 lower-case letters, digits and hyphens.")


class RenameSerializer(serializers.Serializer[Any]):
    """PATCH: either or both."""

    name = _name(required=False)
    slug = _slug(required=False)


class OrganizationChangeSerializer(RenameSerializer):
    """PATCH: any of them. mfa_required: every member must prove a second factor at sign-in."""

    mfa_required = StrictBoolean(
        required=False,
        help_text="Every member must prove a second factor at sign-in (recorded as "
        "permission.changed, action mfa_policy_changed).",
    )


class GroupNameSerializer(serializers.Serializer[Any]):
    name = _name()


class PermissionInputSerializer(serializers.Serializer[Any]):
    resource = StrictText(max_length=100)
    action = StrictText(max_length=100)
    scope = serializers.ChoiceField(choices=PermissionScope.choices)


class PermissionChangeSerializer(PermissionInputSerializer):
    """Any of the three parts (PATCH)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, partial=True, **kwargs)


class RoleChangeSerializer(serializers.Serializer[Any]):
    name = StrictText(max_length=100)
    description = StrictText(max_length=2000, allow_blank=True)
    permissions = serializers.ListField(
        child=serializers.UUIDField(), max_length=1000, help_text="Permission ids: the whole set."
    )


class RoleInputSerializer(RoleChangeSerializer):
    description = StrictText(max_length=2000, allow_blank=True, default="")
    permissions = serializers.ListField(
        child=serializers.UUIDField(), max_length=1000, default=list, help_text="Permission ids."
    )
    organization = serializers.UUIDField(
        required=False, allow_null=True, default=None, help_text="Absent or null: built-in."
    )


class RoleFilterSerializer(serializers.Serializer[Any]):
    organization = serializers.UUIDField(required=False, allow_null=True, default=None)


class PersonSerializer(serializers.Serializer[Any]):
    user_id = serializers.UUIDField(required=False, help_text="The person's id, or:")
    email = serializers.EmailField(required=False, max_length=254, help_text="their address.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("user_id" in attrs) == ("email" in attrs):
            raise ValidationError("Give user_id or email (one of them).")
        return attrs


class MemberAddSerializer(PersonSerializer):
    role = serializers.UUIDField(help_text="A role id: built-in or the organization's own.")


class MemberRoleSerializer(serializers.Serializer[Any]):
    role = serializers.UUIDField(help_text="A role id: built-in or the organization's own.")


class BulkSerializer(serializers.Serializer[Any]):
    csv = StrictText(
        max_length=directory.BULK_MAX_BYTES,
        trim_whitespace=False,
        help_text="Lines `email,role[,workspace slug]` (an optional header line "
        f"`email,role,workspace`), at most {directory.BULK_MAX_LINES}; role: a role name.",
    )
    apply = serializers.BooleanField(
        default=False, help_text="False: the preview, nothing written. True: add every ok line."
    )


# --- lookups --------------------------------------------------------------------------------


def _found(row: R | None, what: str) -> R:
    if row is None:
        raise Http404(f"No {what} has this id.")
    return row


def _organization(organization_id: uuid.UUID) -> Organization:
    return _found(selectors.organization_detail(organization_id=organization_id), "organization")


def _workspace(workspace_id: uuid.UUID) -> Workspace:
    return _found(selectors.workspace_detail(workspace_id=workspace_id), "workspace")


def _group(group_id: uuid.UUID) -> Group:
    return _found(selectors.group_detail(group_id=group_id), "group")


def _role(role_id: uuid.UUID) -> Role:
    return _found(selectors.role_detail(role_id=role_id), "role")


def _role_field(role_id: uuid.UUID) -> Role:
    """A role the body names: unknown is bad input (400), not a missing resource."""
    role = selectors.role_detail(role_id=role_id)
    if role is None:
        raise ValidationError({"role": ["No role has this id."]})
    return role


def _person(given: dict[str, Any]) -> User:
    if "user_id" in given:
        user = user_lookup(user_id=given["user_id"])
        if user is None:
            raise ValidationError({"user_id": ["No account has this id."]})
        return user
    user = user_lookup(email=given["email"])
    if user is None:
        raise ValidationError({"email": ["No account has this address; create it first."]})
    return user


def _permissions(ids: list[uuid.UUID]) -> list[Permission]:
    found = selectors.permissions_by_id(ids)
    unknown = [str(i) for i in dict.fromkeys(ids) if i not in found]
    if unknown:
        raise ValidationError({"permissions": [f"No permission has the id {unknown[0]}."]})
    return list(found.values())


def _member(membership: OrganizationMembership | WorkspaceMembership) -> dict[str, Any]:
    return dict(MemberSerializer(membership).data)


def _page(page: selectors.Page, serializer: type[serializers.Serializer[Any]]) -> Response:
    return Response({"results": serializer(page.rows, many=True).data, "next": page.next_cursor})


class RoleInUse(APIException):
    """409: the role still has members (RFC 9110 §15.5.10); it may be deleted once they have
    another role."""

    status_code = 409
    default_code = "role_in_use"


# --- organizations, workspaces, groups ------------------------------------------------------

ADMINISTRATORS = " (administrators)"
OPERATORS = " (operators)"


@extend_schema(
    methods=["GET"],
    operation_id="organizations_list",
    summary=f"Organizations by slug, {selectors.DIRECTORY_PAGE_SIZE} a page",
    parameters=[
        OpenApiParameter("q", str, description="A part of the name or slug."),
        OpenApiParameter("after", str, description="The `next` value of the previous page."),
    ],
    responses={200: OrganizationPageSerializer, 400: FIELD_ERRORS},
)
@extend_schema(
    methods=["POST"],
    operation_id="organizations_create",
    summary="Create an organization" + ADMINISTRATORS,
    request=NamedSerializer,
    responses={201: OrganizationSerializer, 400: FIELD_ERRORS},
)
@api_view(["GET", "POST"])
@permission_classes([AdministratorWrites])
def organizations(request: Request) -> Response:
    if request.method == "POST":
        given = _input(NamedSerializer(data=request.data))
        created = _call(directory.organization_create, actor_id=request.user.pk, **given)
        return Response(OrganizationSerializer(created).data, status=status.HTTP_201_CREATED)
    search = _input(OrganizationSearchSerializer(data=request.query_params))
    page = selectors.organization_page(query=search["q"], after=search["after"])
    return _page(page, OrganizationSerializer)


def _organization_body(organization: Organization) -> dict[str, Any]:
    own = [r for r in selectors.role_list(organization=organization) if r.organization_id]
    workspaces = selectors.workspace_list_for_organization(organization=organization)
    return {
        **OrganizationSerializer(organization).data,
        "workspaces": WorkspaceSerializer(workspaces, many=True).data,
        "roles": RoleSerializer(own, many=True).data,
    }


@extend_schema(
    methods=["GET"],
    summary="One organization, with its workspaces and its own roles",
    responses={200: OrganizationDetailSerializer, 404: NOT_FOUND},
)
@extend_schema(
    methods=["PATCH"],
    summary="Rename an organization (name, slug or both), or set its MFA policy "
    "(mfa_required)" + ADMINISTRATORS,
    request=OrganizationChangeSerializer,
    responses={200: OrganizationDetailSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@extend_schema(
    methods=["DELETE"],
    summary="Delete an organization with its workspaces, groups, own roles and every "
    "membership in them; answers what went" + ADMINISTRATORS,
    responses={200: DeleteImpactSerializer, 404: NOT_FOUND},
)
@api_view(["GET", "PATCH", "DELETE"])
@permission_classes([AdministratorWrites])
def organization(request: Request, organization_id: uuid.UUID) -> Response:
    found = _organization(organization_id)
    if request.method == "PATCH":
        given = _input(OrganizationChangeSerializer(data=request.data))
        policy = given.pop("mfa_required", None)
        with transaction.atomic():  # all of the PATCH, or none of it
            if given or policy is None:
                _call(
                    directory.organization_rename,
                    organization=found,
                    name=given.get("name", found.name),
                    slug=given.get("slug"),
                    actor_id=request.user.pk,
                )
            if policy is not None:
                organization_mfa_policy_set(
                    organization=found, required=policy, actor_id=request.user.pk
                )
    elif request.method == "DELETE":
        try:
            impact = directory.organization_delete(organization=found, actor_id=request.user.pk)
        except Organization.DoesNotExist:  # deleted meanwhile by someone else
            raise Http404("No organization has this id.") from None
        return Response(DeleteImpactSerializer(impact).data)
    return Response(_organization_body(found))


@extend_schema(
    operation_id="organizations_workspaces_create",
    summary="Create a workspace in the organization" + ADMINISTRATORS,
    request=NamedSerializer,
    responses={201: WorkspaceSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@api_view(["POST"])
@permission_classes([AdministratorWrites])
def organization_workspaces(request: Request, organization_id: uuid.UUID) -> Response:
    found = _organization(organization_id)
    given = _input(NamedSerializer(data=request.data))
    created = _call(
        directory.workspace_create, organization=found, actor_id=request.user.pk, **given
    )
    return Response(WorkspaceSerializer(created).data, status=status.HTTP_201_CREATED)


def _workspace_body(workspace: Workspace) -> dict[str, Any]:
    groups = selectors.group_list_for_workspace(workspace=workspace)
    return {
        **WorkspaceSerializer(workspace).data,
        "groups": GroupSerializer(groups, many=True).data,
    }


@extend_schema(
    methods=["GET"],
    summary="One workspace, with its groups",
    responses={200: WorkspaceDetailSerializer, 404: NOT_FOUND},
)
@extend_schema(
    methods=["PATCH"],
    summary="Rename a workspace (name, slug or both)" + ADMINISTRATORS,
    request=RenameSerializer,
    responses={200: WorkspaceDetailSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@extend_schema(
    methods=["DELETE"],
    summary="Delete a workspace with its groups and their memberships; answers what went"
    + ADMINISTRATORS,
    responses={200: DeleteImpactSerializer, 404: NOT_FOUND},
)
@api_view(["GET", "PATCH", "DELETE"])
@permission_classes([AdministratorWrites])
def workspace(request: Request, workspace_id: uuid.UUID) -> Response:
    found = _workspace(workspace_id)
    if request.method == "PATCH":
        given = _input(RenameSerializer(data=request.data))
        _call(
            directory.workspace_rename,
            workspace=found,
            name=given.get("name", found.name),
            slug=given.get("slug"),
            actor_id=request.user.pk,
        )
    elif request.method == "DELETE":
        impact = directory.workspace_delete(workspace=found, actor_id=request.user.pk)
        return Response(DeleteImpactSerializer(impact).data)
    return Response(_workspace_body(found))


@extend_schema(
    operation_id="workspaces_groups_create",
    summary="Create a group in the workspace" + ADMINISTRATORS,
    request=GroupNameSerializer,
    responses={201: GroupSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@api_view(["POST"])
@permission_classes([AdministratorWrites])
def workspace_groups(request: Request, workspace_id: uuid.UUID) -> Response:
    found = _workspace(workspace_id)
    given = _input(GroupNameSerializer(data=request.data))
    created = _call(directory.group_create, workspace=found, actor_id=request.user.pk, **given)
    return Response(GroupSerializer(created).data, status=status.HTTP_201_CREATED)


@extend_schema(
    methods=["GET"], summary="One group", responses={200: GroupSerializer, 404: NOT_FOUND}
)
@extend_schema(
    methods=["PATCH"],
    summary="Rename a group" + ADMINISTRATORS,
    request=GroupNameSerializer,
    responses={200: GroupSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@extend_schema(
    methods=["DELETE"],
    summary="Delete a group and its memberships; answers what went" + ADMINISTRATORS,
    responses={200: DeleteImpactSerializer, 404: NOT_FOUND},
)
@api_view(["GET", "PATCH", "DELETE"])
@permission_classes([AdministratorWrites])
def group(request: Request, group_id: uuid.UUID) -> Response:
    found = _group(group_id)
    if request.method == "PATCH":
        given = _input(GroupNameSerializer(data=request.data))
        _call(directory.group_rename, group=found, actor_id=request.user.pk, **given)
    elif request.method == "DELETE":
        impact = directory.group_delete(group=found, actor_id=request.user.pk)
        return Response(DeleteImpactSerializer(impact).data)
    return Response(GroupSerializer(found).data)


# --- permissions and roles ------------------------------------------------------------------


@extend_schema(
    methods=["GET"],
    operation_id="permissions_list",
    summary="Every permission, by resource, action and scope",
    responses=inline_serializer("PermissionList", {"results": PermissionSerializer(many=True)}),
)
@extend_schema(
    methods=["POST"],
    operation_id="permissions_create",
    summary="Create a permission (resource:action:scope, as tokens say it)" + ADMINISTRATORS,
    request=PermissionInputSerializer,
    responses={201: PermissionSerializer, 400: FIELD_ERRORS},
)
@api_view(["GET", "POST"])
@permission_classes([AdministratorWrites])
def permissions(request: Request) -> Response:
    if request.method == "POST":
        given = _input(PermissionInputSerializer(data=request.data))
        created = _call(directory.permission_create, actor_id=request.user.pk, **given)
        return Response(PermissionSerializer(created).data, status=status.HTTP_201_CREATED)
    return Response({"results": PermissionSerializer(selectors.permission_list(), many=True).data})


@extend_schema(
    methods=["PATCH"],
    operation_id="permissions_update",
    summary="Rename a permission (any of resource, action, scope); roles keep it" + ADMINISTRATORS,
    request=PermissionChangeSerializer,
    responses={200: PermissionSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@extend_schema(
    methods=["DELETE"],
    operation_id="permissions_delete",
    summary="Delete a permission; every role that had it loses it" + ADMINISTRATORS,
    responses={200: PermissionDeletedSerializer, 404: NOT_FOUND},
)
@api_view(["PATCH", "DELETE"])
@permission_classes([AdministratorWrites])
def permission(request: Request, permission_id: uuid.UUID) -> Response:
    found = _found(selectors.permission_detail(permission_id=permission_id), "permission")
    if request.method == "PATCH":
        given = _input(PermissionChangeSerializer(data=request.data))
        changed = _call(
            directory.permission_update, permission=found, actor_id=request.user.pk, **given
        )
        return Response(PermissionSerializer(changed).data)
    roles = directory.permission_delete(permission=found, actor_id=request.user.pk)
    return Response({"roles": roles})


@extend_schema(
    methods=["GET"],
    operation_id="roles_list",
    summary="The built-in roles; with ?organization=, those available in it (built-in "
    "first, then its own)",
    parameters=[OpenApiParameter("organization", uuid.UUID, description="An organization id.")],
    responses={
        200: inline_serializer("RoleList", {"results": RoleSerializer(many=True)}),
        400: FIELD_ERRORS,
    },
)
@extend_schema(
    methods=["POST"],
    operation_id="roles_create",
    summary="Create a role: built-in (available in every organization) or, with "
    "`organization`, that organization's own" + ADMINISTRATORS,
    request=RoleInputSerializer,
    responses={201: RoleDetailSerializer, 400: FIELD_ERRORS},
)
@api_view(["GET", "POST"])
@permission_classes([AdministratorWrites])
def roles(request: Request) -> Response:
    if request.method == "POST":
        given = _input(RoleInputSerializer(data=request.data))
        organization_id = given.pop("organization")
        owner = None
        if organization_id is not None:
            owner = selectors.organization_detail(organization_id=organization_id)
            if owner is None:
                raise ValidationError({"organization": ["No organization has this id."]})
        granted = _permissions(given.pop("permissions"))
        created = _call(
            directory.role_create,
            organization=owner,
            permissions=granted,
            actor_id=request.user.pk,
            **given,
        )
        found = _role(created.pk)
        return Response(RoleDetailSerializer(found).data, status=status.HTTP_201_CREATED)
    wanted = _input(RoleFilterSerializer(data=request.query_params))["organization"]
    where = None
    if wanted is not None:
        where = selectors.organization_detail(organization_id=wanted)
        if where is None:
            raise ValidationError({"organization": ["No organization has this id."]})
    return Response(
        {"results": RoleSerializer(selectors.role_list(organization=where), many=True).data}
    )


@extend_schema(
    methods=["GET"],
    summary="One role, with its permissions and how many memberships have it",
    responses={200: RoleDetailSerializer, 404: NOT_FOUND},
)
@extend_schema(
    methods=["PATCH"],
    summary="Change a role's name, description or permissions (the whole set); its members' "
    "next tokens carry the change" + ADMINISTRATORS,
    request=RoleChangeSerializer,
    responses={200: RoleDetailSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@extend_schema(
    methods=["DELETE"],
    summary="Delete a role no membership has" + ADMINISTRATORS,
    responses={
        204: None,
        404: NOT_FOUND,
        409: OpenApiResponse(
            description="Memberships have it: give those members another role first "
            '(`{"detail": "…"}`, the service\'s message).'
        ),
    },
)
@api_view(["GET", "PATCH", "DELETE"])
@permission_classes([AdministratorWrites])
def role(request: Request, role_id: uuid.UUID) -> Response:
    found = _role(role_id)
    if request.method == "PATCH":
        given = _input(RoleChangeSerializer(data=request.data, partial=True))
        if "permissions" in given:
            given["permissions"] = _permissions(given["permissions"])
        _call(directory.role_update, role=found, actor_id=request.user.pk, **given)
        found = _role(role_id)
    elif request.method == "DELETE":
        try:
            directory.role_delete(role=found, actor_id=request.user.pk)
        except DjangoValidationError as refused:
            raise RoleInUse(" ".join(refused.messages)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(RoleDetailSerializer(found).data)


# --- memberships ----------------------------------------------------------------------------

MEMBER_PAGE = [OpenApiParameter("after", str, description="The `next` value of the last page.")]


@extend_schema(
    methods=["GET"],
    operation_id="organizations_members_list",
    summary=f"The organization's members by email, {selectors.DIRECTORY_PAGE_SIZE} a page",
    parameters=MEMBER_PAGE,
    responses={200: MemberPageSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@extend_schema(
    methods=["POST"],
    operation_id="organizations_members_add",
    summary="Add a person to the organization with a role" + OPERATORS,
    request=MemberAddSerializer,
    responses={201: MemberSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@api_view(["GET", "POST"])
@permission_classes([OperatorWrites])
def organization_members(request: Request, organization_id: uuid.UUID) -> Response:
    found = _organization(organization_id)
    if request.method == "POST":
        given = _input(MemberAddSerializer(data=request.data))
        added = _call(
            directory.organization_membership_add,
            organization=found,
            user=_person(given),
            role=_role_field(given["role"]),
            actor_id=request.user.pk,
        )
        return Response(_member(added), status=status.HTTP_201_CREATED)
    after = _input(AfterSerializer(data=request.query_params))["after"]
    page = selectors.organization_member_page(organization=found, after=after)
    return _page(page, MemberSerializer)


def _organization_membership(
    organization_id: uuid.UUID, user_id: uuid.UUID
) -> OrganizationMembership:
    found = _organization(organization_id)
    membership = selectors.organization_membership_of(organization=found, user_id=user_id)
    return _found(membership, "member of this organization")


@extend_schema(
    methods=["PATCH"],
    summary="Change a member's role in the organization" + OPERATORS,
    request=MemberRoleSerializer,
    responses={200: MemberSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@extend_schema(
    methods=["DELETE"],
    summary="Take a person out of the organization, its workspaces and their groups; their "
    "live access tokens are revoked (IDP_REVOKE_ON_MEMBERSHIP_REMOVAL, on by default)" + OPERATORS,
    responses={200: OrganizationMemberRemovedSerializer, 404: NOT_FOUND},
)
@api_view(["PATCH", "DELETE"])
@permission_classes([OperatorWrites])
def organization_member(
    request: Request, organization_id: uuid.UUID, user_id: uuid.UUID
) -> Response:
    membership = _organization_membership(organization_id, user_id)
    if request.method == "DELETE":
        removed = _call(
            directory.organization_membership_remove,
            membership=membership,
            actor_id=request.user.pk,
        )
        return Response(removed)
    given = _input(MemberRoleSerializer(data=request.data))
    changed = _call(
        directory.organization_membership_set_role,
        membership=membership,
        role=_role_field(given["role"]),
        actor_id=request.user.pk,
    )
    return Response(_member(changed))


@extend_schema(
    operation_id="organizations_members_bulk",
    summary="Add people by a CSV list: each line's outcome; with apply, every ok line is "
    "added in one transaction, or nothing when any line has an error" + OPERATORS,
    request=BulkSerializer,
    responses={
        200: BulkResultSerializer,
        400: OpenApiResponse(
            BulkRefusedSerializer,
            description="The list is over the limits, or (apply) some lines have errors, or "
            "a field is missing or wrong: nothing was added.",
        ),
        404: NOT_FOUND,
    },
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def organization_members_bulk(request: Request, organization_id: uuid.UUID) -> Response:
    found = _organization(organization_id)
    given = _input(BulkSerializer(data=request.data))
    text = given["csv"]
    if not given["apply"]:
        lines = _call(directory.bulk_members_preview, organization=found, csv_text=text)
        return Response({"applied": False, "results": BulkLineSerializer(lines, many=True).data})
    try:
        lines = directory.bulk_members_apply(
            organization=found, csv_text=text, actor_id=request.user.pk
        )
    except DjangoValidationError as invalid:
        refused = _refused(invalid)
        preview = _call(directory.bulk_members_preview, organization=found, csv_text=text)
        body = {**refused.detail, "results": BulkLineSerializer(preview, many=True).data}  # type: ignore[dict-item]
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    return Response({"applied": True, "results": BulkLineSerializer(lines, many=True).data})


@extend_schema(
    methods=["GET"],
    operation_id="workspaces_members_list",
    summary=f"The workspace's members by email, {selectors.DIRECTORY_PAGE_SIZE} a page",
    parameters=MEMBER_PAGE,
    responses={200: MemberPageSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@extend_schema(
    methods=["POST"],
    operation_id="workspaces_members_add",
    summary="Add a member of the organization to the workspace with a role (built-in or the "
    "organization's own)" + OPERATORS,
    request=MemberAddSerializer,
    responses={201: MemberSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@api_view(["GET", "POST"])
@permission_classes([OperatorWrites])
def workspace_members(request: Request, workspace_id: uuid.UUID) -> Response:
    found = _workspace(workspace_id)
    if request.method == "POST":
        given = _input(MemberAddSerializer(data=request.data))
        added = _call(
            directory.workspace_membership_add,
            workspace=found,
            user=_person(given),
            role=_role_field(given["role"]),
            actor_id=request.user.pk,
        )
        return Response(_member(added), status=status.HTTP_201_CREATED)
    after = _input(AfterSerializer(data=request.query_params))["after"]
    return _page(selectors.workspace_member_page(workspace=found, after=after), MemberSerializer)


@extend_schema(
    methods=["PATCH"],
    summary="Change a member's role in the workspace" + OPERATORS,
    request=MemberRoleSerializer,
    responses={200: MemberSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@extend_schema(
    methods=["DELETE"],
    summary="Take a person out of the workspace and its groups" + OPERATORS,
    responses={200: WorkspaceMemberRemovedSerializer, 404: NOT_FOUND},
)
@api_view(["PATCH", "DELETE"])
@permission_classes([OperatorWrites])
def workspace_member(request: Request, workspace_id: uuid.UUID, user_id: uuid.UUID) -> Response:
    found = _workspace(workspace_id)
    membership = _found(
        selectors.workspace_membership_of(workspace=found, user_id=user_id),
        "member of this workspace",
    )
    if request.method == "DELETE":
        groups = _call(
            directory.workspace_membership_remove, membership=membership, actor_id=request.user.pk
        )
        return Response({"groups": groups})
    given = _input(MemberRoleSerializer(data=request.data))
    changed = _call(
        directory.workspace_membership_set_role,
        membership=membership,
        role=_role_field(given["role"]),
        actor_id=request.user.pk,
    )
    return Response(_member(changed))


@extend_schema(
    methods=["GET"],
    operation_id="groups_members_list",
    summary=f"The group's members by email, {selectors.DIRECTORY_PAGE_SIZE} a page",
    parameters=MEMBER_PAGE,
    responses={200: GroupMemberPageSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@extend_schema(
    methods=["POST"],
    operation_id="groups_members_add",
    summary="Add a member of the group's workspace to the group" + OPERATORS,
    request=PersonSerializer,
    responses={201: GroupMemberSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@api_view(["GET", "POST"])
@permission_classes([OperatorWrites])
def group_members(request: Request, group_id: uuid.UUID) -> Response:
    found = _group(group_id)
    if request.method == "POST":
        given = _input(PersonSerializer(data=request.data))
        added = _call(
            directory.group_membership_add,
            group=found,
            user=_person(given),
            actor_id=request.user.pk,
        )
        return Response(GroupMemberSerializer(added).data, status=status.HTTP_201_CREATED)
    after = _input(AfterSerializer(data=request.query_params))["after"]
    return _page(selectors.group_member_page(group=found, after=after), GroupMemberSerializer)


@extend_schema(
    summary="Take a person out of the group" + OPERATORS,
    responses={204: None, 404: NOT_FOUND},
)
@api_view(["DELETE"])
@permission_classes([OperatorWrites])
def group_member(request: Request, group_id: uuid.UUID, user_id: uuid.UUID) -> Response:
    found = _group(group_id)
    membership = _found(
        selectors.group_membership_of(group=found, user_id=user_id), "member of this group"
    )
    _call(directory.group_membership_remove, membership=membership, actor_id=request.user.pk)
    return Response(status=status.HTTP_204_NO_CONTENT)


# --- a person -------------------------------------------------------------------------------


@extend_schema(
    operation_id="users_claims_preview",
    summary="Exactly what the person's next access token says in orgs, workspaces, groups "
    "and perms (the code that issues tokens); recorded as operator.viewed_user",
    responses={200: ClaimsSerializer, 404: NOT_FOUND},
)
@api_view(["GET"])
@permission_classes([StaffRead])
def user_claims_preview(request: Request, user_id: uuid.UUID) -> Response:
    user = viewed_user_or_404(request, user_id)
    return Response(selectors.claims_preview(user=user))


@extend_schema(
    operation_id="users_memberships",
    summary="The person's organizations and workspaces (with roles) and groups; recorded "
    "as operator.viewed_user",
    responses={200: UserMembershipsSerializer, 404: NOT_FOUND},
)
@api_view(["GET"])
@permission_classes([StaffRead])
def user_memberships(request: Request, user_id: uuid.UUID) -> Response:
    user = viewed_user_or_404(request, user_id)
    orgs, workspaces, groups = selectors.membership_list_for_user(user=user)
    return Response(
        UserMembershipsSerializer(
            {"organizations": orgs, "workspaces": workspaces, "groups": groups}
        ).data
    )


# --- invitations ----------------------------------------------------------------------------


class InvitationSerializer(serializers.ModelSerializer[OrganizationInvitation]):
    state = serializers.CharField(
        read_only=True, help_text="active, revoked, expired or used (no uses left)."
    )

    class Meta:
        model = OrganizationInvitation
        fields: tuple[str, ...] = (
            "id", "organization", "role", "email", "created_by", "created_at", "expires_at",
            "max_uses", "uses", "revoked_at", "state",
        )  # fmt: skip


class InvitationCreatedSerializer(InvitationSerializer):
    url = serializers.CharField(
        read_only=True, help_text="The invitation link: shown in this answer only."
    )

    class Meta(InvitationSerializer.Meta):
        fields = (*InvitationSerializer.Meta.fields, "url")


class InvitationCreateSerializer(serializers.Serializer[Any]):
    role = serializers.UUIDField(help_text="A role id: built-in or the organization's own.")
    email = StrictText(
        required=False,
        allow_blank=True,
        max_length=254,
        help_text="Only this address may use the invitation (then once); empty for anyone.",
    )
    max_uses = serializers.IntegerField(
        required=False, default=1, min_value=1, max_value=invitations.MAX_USES_LIMIT
    )
    days = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=invitations.DAYS_LIMIT,
        help_text="Days the link is valid (IDP_INVITATION_DAYS when absent).",
    )


@extend_schema(
    methods=["GET"],
    operation_id="organizations_invitations_list",
    summary="The organization's invitations, newest first (never their links)",
    responses={200: InvitationSerializer(many=True), 404: NOT_FOUND},
)
@extend_schema(
    methods=["POST"],
    operation_id="organizations_invitations_create",
    summary="Make an invitation link; the answer holds the link, the only time it is shown"
    + OPERATORS,
    request=InvitationCreateSerializer,
    responses={201: InvitationCreatedSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@api_view(["GET", "POST"])
@permission_classes([OperatorWrites])
def organization_invitations(request: Request, organization_id: uuid.UUID) -> Response:
    found = _organization(organization_id)
    if request.method == "POST":
        given = _input(InvitationCreateSerializer(data=request.data))
        made, token = _call(
            invitations.invitation_create,
            organization=found,
            role=_role_field(given["role"]),
            email=given.get("email", ""),
            max_uses=given["max_uses"],
            days=given.get("days"),
            actor_id=request.user.pk,
        )
        answer = {**InvitationSerializer(made).data, "url": invitations.invitation_url(token)}
        return Response(answer, status=status.HTTP_201_CREATED)
    rows = invitations.invitation_list(organization=found)
    return Response(InvitationSerializer(rows, many=True).data)


@extend_schema(
    methods=["POST"],
    operation_id="invitations_revoke",
    summary="Withdraw an invitation: its link stops working at once" + OPERATORS,
    request=None,
    responses={200: InvitationSerializer, 404: NOT_FOUND},
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def invitation_revoke(request: Request, invitation_id: uuid.UUID) -> Response:
    found = _found(OrganizationInvitation.objects.filter(pk=invitation_id).first(), "invitation")
    invitations.invitation_revoke(invitation=found, actor_id=request.user.pk)
    return Response(InvitationSerializer(found).data)
