"""The Django admin pages for accounts render and show memberships where they belong."""

from __future__ import annotations

import pytest
from django.db import models
from django.test import Client
from django.urls import reverse

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
from tests.accounts.factories import (
    GroupMembershipFactory,
    OrganizationMembershipFactory,
    RoleFactory,
    WorkspaceMembershipFactory,
)

pytestmark = pytest.mark.django_db

MODELS = [
    User,
    Organization,
    Workspace,
    Group,
    Permission,
    Role,
    OrganizationMembership,
    WorkspaceMembership,
    GroupMembership,
]


@pytest.fixture
def memberships() -> None:
    role = RoleFactory(name="maintainer")
    OrganizationMembershipFactory(user__email="ada@example.com", role=role)
    WorkspaceMembershipFactory(user__email="grace@example.com", role=role)
    GroupMembershipFactory(user__email="alan@example.com")


@pytest.mark.usefixtures("memberships")
@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
@pytest.mark.parametrize("page", ["changelist", "add"])
def test_admin_page_renders(admin_client: Client, model: type[models.Model], page: str) -> None:
    url = reverse(f"admin:accounts_{model._meta.model_name}_{page}")

    assert admin_client.get(url).status_code == 200


@pytest.mark.parametrize(
    ("factory", "parent", "member_email"),
    [
        (OrganizationMembershipFactory, "organization", "ada@example.com"),
        (WorkspaceMembershipFactory, "workspace", "grace@example.com"),
        (GroupMembershipFactory, "group", "alan@example.com"),
    ],
)
def test_parent_page_lists_its_members_inline(
    admin_client: Client, factory: type, parent: str, member_email: str
) -> None:
    membership = factory(user__email=member_email)
    parent_object = getattr(membership, parent)
    url = reverse(f"admin:accounts_{parent}_change", args=[parent_object.pk])

    response = admin_client.get(url)

    assert response.status_code == 200
    assert member_email in response.content.decode()


def test_user_autocomplete_finds_a_member_by_email(admin_client: Client) -> None:
    OrganizationMembershipFactory(user__email="ada@example.com")
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {
            "term": "ada@",
            "app_label": "accounts",
            "model_name": "organizationmembership",
            "field_name": "user",
        },
    )

    assert response.status_code == 200
    assert [result["text"] for result in response.json()["results"]] == ["ada@example.com"]
