"""user_token_claims(): what goes into a user's tokens about their organizations."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django import DjangoAssertNumQueries

from apps.accounts.models import Organization, Permission, Role, User
from apps.accounts.selectors import user_token_claims
from tests.accounts.factories import (
    GroupFactory,
    GroupMembershipFactory,
    OrganizationFactory,
    OrganizationMembershipFactory,
    PermissionFactory,
    RoleFactory,
    UserFactory,
    WorkspaceFactory,
    WorkspaceMembershipFactory,
)

pytestmark = pytest.mark.django_db

# Fixed ids, so the expected claims can be written out in full, in their sorted order.
ORG_1, ORG_2 = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
WS_1, WS_2, WS_3 = (f"00000000-0000-0000-0000-0000000001{n}0" for n in (1, 2, 3))
GROUP_1, GROUP_2, GROUP_3, GROUP_4 = (f"00000000-0000-0000-0000-0000000002{n}0" for n in range(4))

DOCS_READ_WS = {"resource": "documents", "action": "read", "scope": "workspace"}
DOCS_WRITE_OWN = {"resource": "documents", "action": "write", "scope": "own"}
BILLING_READ_ORG = {"resource": "billing", "action": "read", "scope": "organization"}
MEMBERS_INVITE_ORG = {"resource": "members", "action": "invite", "scope": "organization"}


def role(name: str, *perms: dict[str, str], organization: Organization | None = None) -> Role:
    return RoleFactory(
        name=name,
        organization=organization,
        permissions=[PermissionFactory(**perm) for perm in perms],
    )


def test_claims_list_each_org_workspace_and_group_with_the_roles_permissions() -> None:
    user = UserFactory()
    # Created out of order, so that the sorting is what puts them in order.
    org_2 = OrganizationFactory(id=uuid.UUID(ORG_2))
    org_1 = OrganizationFactory(id=uuid.UUID(ORG_1))
    member = role("member", DOCS_WRITE_OWN, DOCS_READ_WS)
    admin = role("admin", MEMBERS_INVITE_ORG, BILLING_READ_ORG, DOCS_READ_WS)
    auditor = role("auditor", BILLING_READ_ORG, organization=org_2)
    ws_3 = WorkspaceFactory(id=uuid.UUID(WS_3), organization=org_2)
    ws_1 = WorkspaceFactory(id=uuid.UUID(WS_1), organization=org_1)
    ws_2 = WorkspaceFactory(id=uuid.UUID(WS_2), organization=org_1)
    OrganizationMembershipFactory(user=user, organization=org_2, role=auditor)
    OrganizationMembershipFactory(user=user, organization=org_1, role=admin)
    WorkspaceMembershipFactory(user=user, workspace=ws_3, role=member)
    WorkspaceMembershipFactory(user=user, workspace=ws_2, role=admin)
    WorkspaceMembershipFactory(user=user, workspace=ws_1, role=member)
    for group_id, workspace in ((GROUP_3, ws_3), (GROUP_2, ws_1), (GROUP_1, ws_1)):
        GroupMembershipFactory(
            user=user, group=GroupFactory(id=uuid.UUID(group_id), workspace=workspace)
        )
    GroupFactory(id=uuid.UUID(GROUP_4), workspace=ws_2)  # a group the user is not in
    # Someone else's memberships stay out of this user's claims.
    OrganizationMembershipFactory(organization=org_1, role=member)
    WorkspaceMembershipFactory(workspace=ws_1, role=admin)

    assert user_token_claims(user=user) == {
        "orgs": [
            {
                "id": ORG_1,
                "role": "admin",
                "perms": [BILLING_READ_ORG, DOCS_READ_WS, MEMBERS_INVITE_ORG],
            },
            {"id": ORG_2, "role": "auditor", "perms": [BILLING_READ_ORG]},
        ],
        "workspaces": [
            {
                "id": WS_1,
                "org_id": ORG_1,
                "role": "member",
                "groups": [GROUP_1, GROUP_2],
                "perms": [DOCS_READ_WS, DOCS_WRITE_OWN],
            },
            {
                "id": WS_2,
                "org_id": ORG_1,
                "role": "admin",
                "groups": [],
                "perms": [BILLING_READ_ORG, DOCS_READ_WS, MEMBERS_INVITE_ORG],
            },
            {
                "id": WS_3,
                "org_id": ORG_2,
                "role": "member",
                "groups": [GROUP_3],
                "perms": [DOCS_READ_WS, DOCS_WRITE_OWN],
            },
        ],
        "groups": [GROUP_1, GROUP_2, GROUP_3],
        "perms": [BILLING_READ_ORG, DOCS_READ_WS, DOCS_WRITE_OWN, MEMBERS_INVITE_ORG],
    }


def test_a_permission_granted_by_several_roles_appears_once_in_the_union() -> None:
    user = UserFactory()
    OrganizationMembershipFactory(user=user, role=role("owner", DOCS_READ_WS, BILLING_READ_ORG))
    OrganizationMembershipFactory(user=user, role=role("viewer", DOCS_READ_WS))
    WorkspaceMembershipFactory(user=user, role=role("editor", DOCS_READ_WS, DOCS_WRITE_OWN))

    claims = user_token_claims(user=user)

    assert claims["perms"] == [BILLING_READ_ORG, DOCS_READ_WS, DOCS_WRITE_OWN]
    assert sum(DOCS_READ_WS in org["perms"] for org in claims["orgs"]) == 2


def test_a_group_outside_the_users_workspaces_is_left_out() -> None:
    # Removing someone from a workspace must take its groups out of their next token too.
    user = UserFactory()
    kept = WorkspaceMembershipFactory(user=user)
    inside = GroupMembershipFactory(user=user, group=GroupFactory(workspace=kept.workspace))
    GroupMembershipFactory(user=user)  # its workspace has no membership of this user

    claims = user_token_claims(user=user)

    assert claims["groups"] == [str(inside.group_id)]
    assert claims["workspaces"][0]["groups"] == [str(inside.group_id)]


def test_a_user_without_memberships_gets_empty_claims() -> None:
    assert user_token_claims(user=UserFactory()) == {
        "orgs": [],
        "workspaces": [],
        "groups": [],
        "perms": [],
    }


def give_memberships(count: int) -> User:
    """A user in `count` organizations, each with two workspaces of two groups each."""
    user = UserFactory()
    perms = [
        PermissionFactory(resource=f"r{n}", scope=Permission.Scope.WORKSPACE) for n in range(3)
    ]
    for n in range(count):
        organization = OrganizationFactory()
        own_role = role(f"custom-{n}", organization=organization)
        own_role.permissions.set(perms[: n % 3 + 1])
        OrganizationMembershipFactory(user=user, organization=organization, role=own_role)
        for _ in range(2):
            workspace = WorkspaceFactory(organization=organization)
            WorkspaceMembershipFactory(user=user, workspace=workspace, role=own_role)
            for _ in range(2):
                GroupMembershipFactory(user=user, group=GroupFactory(workspace=workspace))
    return user


def test_claims_take_one_statement_however_many_memberships(
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    user = give_memberships(12)

    with django_assert_max_num_queries(1):
        claims = user_token_claims(user=user)

    assert (len(claims["orgs"]), len(claims["workspaces"]), len(claims["groups"])) == (12, 24, 48)
    assert len(claims["perms"]) == 3


def test_claims_cost_the_same_queries_for_one_membership_as_for_many() -> None:
    few, many = give_memberships(1), give_memberships(10)

    with CaptureQueriesContext(connection) as few_queries:
        user_token_claims(user=few)
    with CaptureQueriesContext(connection) as many_queries:
        user_token_claims(user=many)

    assert len(few_queries) == len(many_queries) == 1
