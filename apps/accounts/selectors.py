from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, TypedDict

from django.db.models import CharField, F, Q, QuerySet, UUIDField, Value

from apps.accounts.models import (
    Group,
    GroupMembership,
    Organization,
    OrganizationMembership,
    Role,
    User,
    Workspace,
    WorkspaceMembership,
)
from apps.core.cursors import KeysetCursor
from apps.core.precompiled import Precompiled


class PermissionClaim(TypedDict):
    resource: str
    action: str
    scope: str


class OrganizationClaim(TypedDict):
    id: str
    role: str
    perms: list[PermissionClaim]


class WorkspaceClaim(TypedDict):
    id: str
    org_id: str
    role: str
    groups: list[str]
    perms: list[PermissionClaim]


class UserTokenClaims(TypedDict):
    orgs: list[OrganizationClaim]
    workspaces: list[WorkspaceClaim]
    groups: list[str]
    perms: list[PermissionClaim]


_PermissionKey = tuple[str, str, str]


def user_token_claims(*, user: User) -> UserTokenClaims:
    """What `user` may do where, as it goes into their tokens; sorted so tokens are stable.

    Runs on every token issuance: one statement, whatever the number of memberships (the
    three kinds of membership, each with its role's permissions, as one UNION ALL). A group
    counts only inside a workspace the user is still a member of, so removing someone from a
    workspace also takes its groups out of their tokens.
    """
    orgs: dict[uuid.UUID, tuple[str, set[_PermissionKey]]] = {}
    workspaces: dict[uuid.UUID, tuple[uuid.UUID, str, set[_PermissionKey]]] = {}
    groups_by_workspace: defaultdict[uuid.UUID, list[str]] = defaultdict(list)
    for kind, member_of, parent, role_name, resource, action, scope in _membership_rows(user):
        perm = (resource, action, scope) if resource is not None else None
        if kind == _ORG:
            org_perms = orgs.setdefault(member_of, (role_name, set()))[1]
            if perm:
                org_perms.add(perm)
        elif kind == _WORKSPACE:
            ws_perms = workspaces.setdefault(member_of, (parent, role_name, set()))[2]
            if perm:
                ws_perms.add(perm)
        else:
            groups_by_workspace[parent].append(str(member_of))

    org_claims: list[OrganizationClaim] = [
        {"id": str(org_id), "role": role_name, "perms": _claims(perms)}
        for org_id, (role_name, perms) in orgs.items()
    ]
    workspace_claims: list[WorkspaceClaim] = [
        {
            "id": str(workspace_id),
            "org_id": str(org_id),
            "role": role_name,
            "groups": sorted(groups_by_workspace[workspace_id]),
            "perms": _claims(perms),
        }
        for workspace_id, (org_id, role_name, perms) in workspaces.items()
    ]
    org_claims.sort(key=lambda claim: claim["id"])
    workspace_claims.sort(key=lambda claim: claim["id"])
    every_perm: set[_PermissionKey] = set()
    for _, perms in orgs.values():
        every_perm |= perms
    for _, _, perms in workspaces.values():
        every_perm |= perms
    return {
        "orgs": org_claims,
        "workspaces": workspace_claims,
        "groups": sorted(group for claim in workspace_claims for group in claim["groups"]),
        "perms": _claims(every_perm),
    }


_ORG, _WORKSPACE, _GROUP = "o", "w", "g"
_PERMISSION_COLUMNS = (
    "role__permissions__resource",
    "role__permissions__action",
    "role__permissions__scope",
)


def _membership_rows(user: User) -> list[tuple[Any, ...]]:
    """(kind, id, parent id, role name, resource, action, scope) per membership and
    permission of its role (a role without permissions gives one row of NULLs)."""
    return _MEMBERSHIPS.values(user.pk)


def _memberships_of(user_id: uuid.UUID) -> QuerySet[Any, Any]:
    no_uuid = Value(None, output_field=UUIDField())
    no_text = Value(None, output_field=CharField())
    orgs = (
        OrganizationMembership.objects.filter(user_id=user_id)
        .order_by()
        .values_list(Value(_ORG), "organization_id", no_uuid, "role__name", *_PERMISSION_COLUMNS)
    )
    workspaces = (
        WorkspaceMembership.objects.filter(user_id=user_id)
        .order_by()
        .values_list(
            Value(_WORKSPACE),
            "workspace_id",
            "workspace__organization_id",
            "role__name",
            *_PERMISSION_COLUMNS,
        )
    )
    groups = (
        GroupMembership.objects.filter(user_id=user_id)
        .order_by()
        .values_list(Value(_GROUP), "group_id", "group__workspace_id", *[no_text] * 4)
    )
    return orgs.union(workspaces, groups, all=True)


# Compiled once per process: compiling this UNION cost more CPU than running it (issue 11).
_MEMBERSHIPS: Precompiled[Any] = Precompiled(
    _memberships_of,
    field=OrganizationMembership._meta.get_field("user"),
    samples=(uuid.UUID(int=1), uuid.UUID(int=2)),
)


def _claims(perms: set[_PermissionKey]) -> list[PermissionClaim]:
    return [
        {"resource": resource, "action": action, "scope": scope}
        for resource, action, scope in sorted(perms)
    ]


def user_id_for_email(email: str) -> uuid.UUID | None:
    """The id of the account with this email address in any case, or None."""
    found: uuid.UUID | None = (
        User.objects.filter(email__iexact=email.strip()).values_list("pk", flat=True).first()
    )
    return found


def user_ids_for_emails(emails: Iterable[str]) -> dict[str, uuid.UUID]:
    """The ids of the accounts with these email addresses (stored lower-cased), by address:
    one indexed query, for a list that links to people."""
    wanted = {email.lower() for email in emails}
    rows = User.objects.filter(email__in=wanted).values_list("email", "pk") if wanted else []
    return dict(rows)


def claims_preview(*, user: User) -> UserTokenClaims:
    """Exactly what the person's next access token says in orgs/workspaces/groups/perms: the
    very function token issuance calls (apps.tokens.claims), not a copy. A token over
    ACCESS_TOKEN_MAX_BYTES leaves some of these out (apps.tokens.claims.bounded)."""
    return user_token_claims(user=user)


@dataclass(frozen=True)
class DeleteImpact:
    """What goes with a deleted organization, workspace or group: for its confirmation page
    and the event that records the deletion."""

    workspaces: int = 0
    groups: int = 0
    roles: int = 0
    memberships: int = 0
    people: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def organization_delete_impact(*, organization: Organization) -> DeleteImpact:
    in_org = {"workspace__organization": organization}
    in_org_groups = {"group__workspace__organization": organization}
    memberships = (
        OrganizationMembership.objects.filter(organization=organization).count()
        + WorkspaceMembership.objects.filter(**in_org).count()
        + GroupMembership.objects.filter(**in_org_groups).count()
    )
    return DeleteImpact(
        workspaces=Workspace.objects.filter(organization=organization).count(),
        groups=Group.objects.filter(**in_org).count(),
        roles=Role.objects.filter(organization=organization).count(),
        memberships=memberships,
        people=OrganizationMembership.objects.filter(organization=organization).count(),
    )


def workspace_delete_impact(*, workspace: Workspace) -> DeleteImpact:
    members = WorkspaceMembership.objects.filter(workspace=workspace).count()
    return DeleteImpact(
        groups=Group.objects.filter(workspace=workspace).count(),
        memberships=members + GroupMembership.objects.filter(group__workspace=workspace).count(),
        people=members,
    )


def group_delete_impact(*, group: Group) -> DeleteImpact:
    members = GroupMembership.objects.filter(group=group).count()
    return DeleteImpact(memberships=members, people=members)


def role_for_organization(*, organization: Organization, name: str) -> Role | None:
    """The role a name means in the organization: its own first, else the built-in one."""
    found = Role.objects.filter(
        Q(organization=organization) | Q(organization__isnull=True), name=name
    )
    return found.order_by(F("organization").asc(nulls_last=True)).first()


def membership_list_for_user(
    *, user: User
) -> tuple[list[OrganizationMembership], list[WorkspaceMembership], list[GroupMembership]]:
    """A person's memberships, for their page: organizations, workspaces, groups."""
    return (
        list(
            OrganizationMembership.objects.filter(user=user).select_related("organization", "role")
        ),
        list(
            WorkspaceMembership.objects.filter(user=user).select_related(
                "workspace__organization", "role"
            )
        ),
        list(GroupMembership.objects.filter(user=user).select_related("group__workspace")),
    )


# --- the console's directory pages ----------------------------------------------------------

ORGANIZATION_PAGE_SIZE = 50


@dataclass(frozen=True)
class OrganizationPage:
    organizations: list[Organization]
    next_cursor: KeysetCursor | None  # pass as `after` for the next page; None on the last


def organization_page(
    *, query: str = "", after: KeysetCursor | None = None, size: int = ORGANIZATION_PAGE_SIZE
) -> OrganizationPage:
    """Organizations newest first, a keyset page at a time by (created_at, id): no OFFSET, no
    COUNT. `query` matches a slug exactly or a name or slug in part."""
    found = Organization.objects.all()
    if query:
        found = found.filter(
            Q(slug=query.lower()) | Q(name__icontains=query) | Q(slug__icontains=query)
        )
    if after is not None:
        found = found.filter(Q(created_at__lt=after.at) | Q(created_at=after.at, id__lt=after.id))
    rows = list(found.order_by("-created_at", "-id")[: size + 1])
    if len(rows) <= size:
        return OrganizationPage(rows, None)
    last = rows[size - 1]
    return OrganizationPage(rows[:size], KeysetCursor(last.created_at, last.id))


def roles_available_in(*, organization: Organization | None) -> QuerySet[Role]:
    """The roles a membership of `organization` may have: built-in ones, then its own."""
    found = Role.objects.filter(Q(organization__isnull=True) | Q(organization=organization))
    return found.order_by(F("organization").asc(nulls_first=True), "name")


def role_list() -> list[Role]:
    """Every role with its permissions and organization: built-in ones first."""
    found = Role.objects.select_related("organization").prefetch_related("permissions")
    return list(found.order_by(F("organization__name").asc(nulls_first=True), "name"))


def organization_members(*, organization: Organization) -> list[OrganizationMembership]:
    found = OrganizationMembership.objects.filter(organization=organization)
    return list(found.select_related("user", "role").order_by("user__email"))


def workspace_members(*, workspace: Workspace) -> list[WorkspaceMembership]:
    found = WorkspaceMembership.objects.filter(workspace=workspace)
    return list(found.select_related("user", "role").order_by("user__email"))


def group_members(*, group: Group) -> list[GroupMembership]:
    found = GroupMembership.objects.filter(group=group)
    return list(found.select_related("user").order_by("user__email"))
