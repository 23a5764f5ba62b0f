from __future__ import annotations

import uuid
from collections import defaultdict
from typing import TypedDict

from apps.accounts.models import (
    GroupMembership,
    OrganizationMembership,
    Role,
    User,
    WorkspaceMembership,
)


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

    Runs on every token issuance: four queries at most, whatever the number of memberships.
    A group counts only inside a workspace the user is still a member of, so removing someone
    from a workspace also takes its groups out of their tokens.
    """
    org_rows = list(
        OrganizationMembership.objects.filter(user=user)
        .order_by()
        .values_list("organization_id", "role_id", "role__name")
    )
    workspace_rows = list(
        WorkspaceMembership.objects.filter(user=user)
        .order_by()
        .values_list("workspace_id", "workspace__organization_id", "role_id", "role__name")
    )
    groups_by_workspace: defaultdict[uuid.UUID, list[str]] = defaultdict(list)
    for group_id, workspace_id in (
        GroupMembership.objects.filter(user=user)
        .order_by()
        .values_list("group_id", "group__workspace_id")
    ):
        groups_by_workspace[workspace_id].append(str(group_id))

    role_ids = {row[1] for row in org_rows} | {row[2] for row in workspace_rows}
    perms_by_role = _permissions_by_role(role_ids)

    orgs: list[OrganizationClaim] = [
        {"id": str(org_id), "role": role_name, "perms": _claims(perms_by_role[role_id])}
        for org_id, role_id, role_name in org_rows
    ]
    workspaces: list[WorkspaceClaim] = [
        {
            "id": str(workspace_id),
            "org_id": str(org_id),
            "role": role_name,
            "groups": sorted(groups_by_workspace[workspace_id]),
            "perms": _claims(perms_by_role[role_id]),
        }
        for workspace_id, org_id, role_id, role_name in workspace_rows
    ]
    orgs.sort(key=lambda claim: claim["id"])
    workspaces.sort(key=lambda claim: claim["id"])
    return {
        "orgs": orgs,
        "workspaces": workspaces,
        "groups": sorted(group for claim in workspaces for group in claim["groups"]),
        "perms": _claims(set().union(*perms_by_role.values())),
    }


def _permissions_by_role(role_ids: set[uuid.UUID]) -> defaultdict[uuid.UUID, set[_PermissionKey]]:
    perms: defaultdict[uuid.UUID, set[_PermissionKey]] = defaultdict(set)
    if not role_ids:
        return perms
    for role_id, resource, action, scope in (
        Role.permissions.through.objects.filter(role_id__in=role_ids)
        .order_by()
        .values_list("role_id", "permission__resource", "permission__action", "permission__scope")
    ):
        perms[role_id].add((resource, action, scope))
    return perms


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
