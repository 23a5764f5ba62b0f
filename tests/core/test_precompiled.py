"""Precompiled querysets answer exactly what the queryset itself answers, in one statement."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import OrganizationMembership, User
from apps.core.precompiled import Precompiled
from tests.accounts.factories import (
    OrganizationMembershipFactory,
    PermissionFactory,
    RoleFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def _memberships(user_id: uuid.UUID):  # type: ignore[no-untyped-def]
    return (
        OrganizationMembership.objects.filter(user_id=user_id)
        .select_related("organization", "role")
        .order_by("organization__name")
    )


MEMBERSHIPS: Precompiled[OrganizationMembership] = Precompiled(
    _memberships,
    field=OrganizationMembership._meta.get_field("user"),
    samples=(uuid.UUID(int=1), uuid.UUID(int=2)),
)


def _names(user_id: uuid.UUID):  # type: ignore[no-untyped-def]
    return (
        OrganizationMembership.objects.filter(user_id=user_id)
        .order_by("organization__name")
        .values_list("organization_id", "organization__name", "created_at")
    )


NAMES: Precompiled[OrganizationMembership] = Precompiled(
    _names,
    field=OrganizationMembership._meta.get_field("user"),
    samples=(uuid.UUID(int=1), uuid.UUID(int=2)),
)


def member_of_three() -> User:
    user = UserFactory()
    role = RoleFactory(name="auditor")
    role.permissions.set([PermissionFactory()])
    for _ in range(3):
        OrganizationMembershipFactory(user=user, role=role)
    return user


def test_models_are_the_querysets_with_their_related_objects_and_no_further_statement() -> None:
    user = member_of_three()
    UserFactory()  # someone else's rows must not appear
    OrganizationMembershipFactory()

    with CaptureQueriesContext(connection) as captured:
        found = MEMBERSHIPS.models(user.pk)
        related = [(m.organization.name, m.role.name, m.user_id) for m in found]

    expected = list(_memberships(user.pk))
    assert found == expected
    assert related == [(m.organization.name, m.role.name, m.user_id) for m in expected]
    assert all(m._state.db == "default" and not m._state.adding for m in found)
    assert len(captured) == 1


def test_values_are_the_querysets_converted_rows() -> None:
    user = member_of_three()

    rows = NAMES.values(user.pk)

    assert rows == list(_names(user.pk))
    assert all(isinstance(row[0], uuid.UUID) for row in rows)


def test_a_value_nobody_has_finds_nothing() -> None:
    member_of_three()

    assert MEMBERSHIPS.models(uuid.uuid4()) == []
    assert NAMES.values(uuid.uuid4()) == []


def test_a_queryset_whose_sql_depends_on_the_value_is_refused() -> None:
    def shaped_by(user_id: uuid.UUID):  # type: ignore[no-untyped-def]
        query = OrganizationMembership.objects.filter(user_id=user_id)
        return query.filter(role__isnull=True) if user_id.int == 1 else query

    shaped = Precompiled(
        shaped_by,
        field=OrganizationMembership._meta.get_field("user"),
        samples=(uuid.UUID(int=1), uuid.UUID(int=2)),
    )

    with pytest.raises(ValueError, match="depends on the value"):
        shaped.models(uuid.uuid4())
