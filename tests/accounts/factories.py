"""factory_boy factories for the accounts models."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import factory
from factory.django import DjangoModelFactory

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


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    name = factory.Sequence(lambda n: f"Person {n}")
    password = factory.django.Password("a long passphrase")


class OrganizationFactory(DjangoModelFactory[Organization]):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class WorkspaceFactory(DjangoModelFactory[Workspace]):
    class Meta:
        model = Workspace

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Workspace {n}")
    slug = factory.Sequence(lambda n: f"ws-{n}")


class GroupFactory(DjangoModelFactory[Group]):
    class Meta:
        model = Group

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Group {n}")


class PermissionFactory(DjangoModelFactory[Permission]):
    class Meta:
        model = Permission
        django_get_or_create = ("resource", "action", "scope")

    resource = factory.Sequence(lambda n: f"resource{n}")
    action = "read"
    scope = Permission.Scope.OWN


class RoleFactory(DjangoModelFactory[Role]):
    """A built-in role unless given an organization; `permissions=[...]` sets its grants."""

    class Meta:
        model = Role
        skip_postgeneration_save = True

    organization = None
    name = factory.Sequence(lambda n: f"role-{n}")

    @factory.post_generation
    def permissions(self, create: bool, extracted: Iterable[Permission] | None, **_: Any) -> None:
        if create and extracted:
            self.permissions.set(extracted)


class OrganizationMembershipFactory(DjangoModelFactory[OrganizationMembership]):
    class Meta:
        model = OrganizationMembership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = factory.SubFactory(RoleFactory)


class WorkspaceMembershipFactory(DjangoModelFactory[WorkspaceMembership]):
    class Meta:
        model = WorkspaceMembership

    user = factory.SubFactory(UserFactory)
    workspace = factory.SubFactory(WorkspaceFactory)
    role = factory.SubFactory(RoleFactory)


class GroupMembershipFactory(DjangoModelFactory[GroupMembership]):
    class Meta:
        model = GroupMembership

    user = factory.SubFactory(UserFactory)
    group = factory.SubFactory(GroupFactory)
