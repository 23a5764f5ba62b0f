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
    Permission,
    Role,
    User,
    Workspace,
    WorkspaceMembership,
)
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


def user_ids_existing(ids: Iterable[str]) -> dict[str, uuid.UUID]:
    """Those of these account ids (as text; anything else is skipped) whose account exists,
    by the text given: one indexed query, for a list that links to people."""
    wanted: dict[uuid.UUID, str] = {}
    for text in ids:
        try:
            wanted[uuid.UUID(text)] = text
        except ValueError:
            continue
    found = User.objects.filter(pk__in=wanted).values_list("pk", flat=True) if wanted else []
    return {wanted[pk]: pk for pk in found}


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
    people = OrganizationMembership.objects.filter(organization=organization).count()
    memberships = (
        people
        + WorkspaceMembership.objects.filter(**in_org).count()
        + GroupMembership.objects.filter(**in_org_groups).count()
    )
    return DeleteImpact(
        workspaces=Workspace.objects.filter(organization=organization).count(),
        groups=Group.objects.filter(**in_org).count(),
        roles=Role.objects.filter(organization=organization).count(),
        memberships=memberships,
        people=people,
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


# --- the directory's reads (the console's pages and the admin API alike) -------------------

DIRECTORY_PAGE_SIZE = 50


@dataclass(frozen=True)
class Page:
    """One keyset page: its rows, and the cursor of the next (None on the last page)."""

    rows: list[Any]
    next_cursor: str | None


def _keyset(rows: QuerySet[Any, Any], key: str, after: str | None, size: int) -> Page:
    """Rows ordered by `key` (unique), those after the cursor; one row more than a page tells
    whether there is a next one (no COUNT)."""
    if after:
        rows = rows.filter(**{f"{key}__gt": after})
    found = list(rows.order_by(key)[: size + 1])
    if len(found) <= size:
        return Page(found, None)
    return Page(found[:size], str(_dotted(found[size - 1], key)))


def _dotted(row: Any, key: str) -> Any:
    for part in key.split("__"):
        row = getattr(row, part)
    return row


def organization_page(
    *, query: str = "", after: str | None = None, size: int = DIRECTORY_PAGE_SIZE
) -> Page:
    """Organizations by slug (unique: a stable keyset), `query` a part of the name or slug."""
    rows = Organization.objects.all()
    if query:
        rows = rows.filter(Q(name__icontains=query) | Q(slug__icontains=query.lower()))
    return _keyset(rows, "slug", after, size)


def organization_detail(*, organization_id: uuid.UUID) -> Organization | None:
    return Organization.objects.filter(pk=organization_id).first()


def workspace_list_for_organization(*, organization: Organization) -> list[Workspace]:
    return list(Workspace.objects.filter(organization=organization).order_by("slug"))


def workspace_detail(*, workspace_id: uuid.UUID) -> Workspace | None:
    return Workspace.objects.select_related("organization").filter(pk=workspace_id).first()


def group_list_for_workspace(*, workspace: Workspace) -> list[Group]:
    return list(Group.objects.filter(workspace=workspace).order_by("name"))


def group_detail(*, group_id: uuid.UUID) -> Group | None:
    return Group.objects.select_related("workspace").filter(pk=group_id).first()


def permission_list() -> list[Permission]:
    return list(Permission.objects.order_by("resource", "action", "scope"))


def permission_detail(*, permission_id: uuid.UUID) -> Permission | None:
    return Permission.objects.filter(pk=permission_id).first()


def permissions_by_id(ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Permission]:
    wanted = set(ids)
    return {p.pk: p for p in Permission.objects.filter(pk__in=wanted)} if wanted else {}


def roles_available_in(*, organization: Organization | None) -> QuerySet[Role]:
    """The roles a membership of `organization` may have: built-in ones, then its own (a
    queryset: forms choose from it)."""
    found = Role.objects.filter(Q(organization__isnull=True) | Q(organization=organization))
    return found.order_by(F("organization").asc(nulls_first=True), "name")


def role_list(*, organization: Organization | None = None) -> list[Role]:
    """The built-in roles; with an organization, those available in it (built-in and its
    own), each with its permissions (two statements)."""
    return list(roles_available_in(organization=organization).prefetch_related("permissions"))


def role_list_every() -> list[Role]:
    """Every role, of every organization, with its permissions: built-in ones first."""
    found = Role.objects.select_related("organization").prefetch_related("permissions")
    return list(found.order_by(F("organization__name").asc(nulls_first=True), "name"))


def role_detail(*, role_id: uuid.UUID) -> Role | None:
    return Role.objects.prefetch_related("permissions").filter(pk=role_id).first()


def organization_members(*, organization: Organization) -> QuerySet[OrganizationMembership]:
    """The organization's members by email, with their roles."""
    found = OrganizationMembership.objects.filter(organization=organization)
    return found.select_related("user", "role").order_by("user__email")


def workspace_members(*, workspace: Workspace) -> QuerySet[WorkspaceMembership]:
    found = WorkspaceMembership.objects.filter(workspace=workspace)
    return found.select_related("user", "role").order_by("user__email")


def group_members(*, group: Group) -> QuerySet[GroupMembership]:
    found = GroupMembership.objects.filter(group=group)
    return found.select_related("user").order_by("user__email")


def organization_member_page(
    *, organization: Organization, after: str | None = None, size: int = DIRECTORY_PAGE_SIZE
) -> Page:
    """The organization's members by email address (unique: the keyset), with their roles."""
    return _keyset(organization_members(organization=organization), "user__email", after, size)


def workspace_member_page(
    *, workspace: Workspace, after: str | None = None, size: int = DIRECTORY_PAGE_SIZE
) -> Page:
    return _keyset(workspace_members(workspace=workspace), "user__email", after, size)


def group_member_page(
    *, group: Group, after: str | None = None, size: int = DIRECTORY_PAGE_SIZE
) -> Page:
    return _keyset(group_members(group=group), "user__email", after, size)


def organization_membership_of(
    *, organization: Organization, user_id: uuid.UUID
) -> OrganizationMembership | None:
    rows = OrganizationMembership.objects.select_related("user", "role")
    return rows.filter(organization=organization, user_id=user_id).first()


def workspace_membership_of(
    *, workspace: Workspace, user_id: uuid.UUID
) -> WorkspaceMembership | None:
    rows = WorkspaceMembership.objects.select_related("user", "role")
    return rows.filter(workspace=workspace, user_id=user_id).first()


def group_membership_of(*, group: Group, user_id: uuid.UUID) -> GroupMembership | None:
    return GroupMembership.objects.filter(group=group, user_id=user_id).first()
