"""Organizations, workspaces, groups, roles, permissions and memberships: their rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import RestrictedError

from apps.accounts.models import (
    GroupMembership,
    OrganizationMembership,
    Permission,
    Role,
    User,
    Workspace,
    WorkspaceMembership,
)
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


def refused(create: Callable[[], Any]) -> bool:
    """True when the database refuses the row (in a savepoint, so the test can go on)."""
    try:
        with transaction.atomic():
            create()
    except IntegrityError:
        return True
    return False


def test_organization_slug_is_unique() -> None:
    OrganizationFactory(slug="acme")

    assert refused(lambda: OrganizationFactory(slug="acme"))


def test_workspace_slug_is_unique_within_its_organization_only() -> None:
    acme, globex = OrganizationFactory(), OrganizationFactory()
    WorkspaceFactory(organization=acme, slug="engineering")

    assert refused(lambda: WorkspaceFactory(organization=acme, slug="engineering"))
    assert not refused(lambda: WorkspaceFactory(organization=globex, slug="engineering"))


def test_group_name_is_unique_within_its_workspace_only() -> None:
    backend, frontend = WorkspaceFactory(), WorkspaceFactory()
    GroupFactory(workspace=backend, name="on-call")

    assert refused(lambda: GroupFactory(workspace=backend, name="on-call"))
    assert not refused(lambda: GroupFactory(workspace=frontend, name="on-call"))


def test_permission_is_unique_by_resource_action_and_scope() -> None:
    Permission.objects.create(resource="documents", action="read", scope="own")

    create = Permission.objects.create
    assert refused(lambda: create(resource="documents", action="read", scope="own"))
    assert not refused(lambda: create(resource="documents", action="read", scope="workspace"))
    assert not refused(lambda: create(resource="documents", action="write", scope="own"))
    assert not refused(lambda: create(resource="billing", action="read", scope="own"))


def test_permission_reads_as_resource_action_scope() -> None:
    permission = PermissionFactory(resource="documents", action="read", scope="workspace")

    assert str(permission) == "documents:read:workspace"


def test_permission_scope_outside_the_four_scopes_is_refused() -> None:
    permission = Permission(resource="documents", action="read", scope="universe")

    with pytest.raises(ValidationError) as error:
        permission.full_clean()
    assert "scope" in error.value.message_dict
    assert refused(permission.save)  # and by the database, for rows written another way
    assert [scope.value for scope in Permission.Scope] == [
        "own",
        "workspace",
        "organization",
        "global",
    ]


def test_role_name_is_unique_within_an_organization_but_reusable_in_another() -> None:
    acme, globex = OrganizationFactory(), OrganizationFactory()
    RoleFactory(organization=acme, name="auditor")

    assert refused(lambda: RoleFactory(organization=acme, name="auditor"))
    assert not refused(lambda: RoleFactory(organization=globex, name="auditor"))


def test_built_in_role_names_are_unique_although_their_organization_is_null() -> None:
    RoleFactory(organization=None, name="admin")

    assert refused(lambda: RoleFactory(organization=None, name="admin"))


def test_a_user_holds_one_membership_per_organization() -> None:
    membership = OrganizationMembershipFactory()

    assert refused(
        lambda: OrganizationMembershipFactory(
            user=membership.user, organization=membership.organization
        )
    )
    assert not refused(lambda: OrganizationMembershipFactory(user=membership.user))


def test_a_user_holds_one_membership_per_workspace() -> None:
    membership = WorkspaceMembershipFactory()

    assert refused(
        lambda: WorkspaceMembershipFactory(user=membership.user, workspace=membership.workspace)
    )
    assert not refused(lambda: WorkspaceMembershipFactory(user=membership.user))


def test_a_user_holds_one_membership_per_group() -> None:
    membership = GroupMembershipFactory()

    assert refused(lambda: GroupMembershipFactory(user=membership.user, group=membership.group))
    assert not refused(lambda: GroupMembershipFactory(user=membership.user))


def test_a_membership_cannot_use_a_role_of_another_organization() -> None:
    acme, globex = OrganizationFactory(), OrganizationFactory()
    workspace = WorkspaceFactory(organization=acme)
    globex_role = RoleFactory(organization=globex)
    user = UserFactory()

    for membership in (
        OrganizationMembershipFactory.build(user=user, organization=acme, role=globex_role),
        WorkspaceMembershipFactory.build(user=user, workspace=workspace, role=globex_role),
    ):
        with pytest.raises(ValidationError) as error:
            membership.full_clean()
        assert error.value.message_dict == {"role": ["This role belongs to another organization."]}


def test_a_membership_may_use_its_organizations_own_role_or_a_built_in_one() -> None:
    acme = OrganizationFactory()
    workspace = WorkspaceFactory(organization=acme)
    user = UserFactory()

    for role in (RoleFactory(organization=acme), RoleFactory(organization=None)):
        OrganizationMembershipFactory.build(user=user, organization=acme, role=role).full_clean()
        WorkspaceMembershipFactory.build(user=user, workspace=workspace, role=role).full_clean()


def test_email_is_unique_in_the_database_whatever_its_case() -> None:
    # A row written without the manager's lowercasing still blocks the same address.
    User(email="Ada@Example.com").save()

    assert refused(lambda: User(email="ada@example.com").save())


def test_a_role_in_use_cannot_be_deleted() -> None:
    membership = WorkspaceMembershipFactory()

    with pytest.raises(RestrictedError):
        membership.role.delete()
    assert Role.objects.filter(id=membership.role_id).exists()


def test_deleting_an_organization_removes_its_roles_workspaces_and_memberships() -> None:
    acme = OrganizationFactory()
    acme_role, built_in = RoleFactory(organization=acme), RoleFactory(organization=None)
    workspace = WorkspaceFactory(organization=acme)
    OrganizationMembershipFactory(organization=acme, role=acme_role)
    WorkspaceMembershipFactory(workspace=workspace, role=acme_role)
    WorkspaceMembershipFactory(workspace=workspace, role=built_in)
    GroupMembershipFactory(group=GroupFactory(workspace=workspace))

    acme.delete()

    assert not Role.objects.filter(id=acme_role.id).exists()
    assert Role.objects.filter(id=built_in.id).exists()
    assert not Workspace.objects.exists()
    assert not OrganizationMembership.objects.exists()
    assert not WorkspaceMembership.objects.exists()
    assert not GroupMembership.objects.exists()
