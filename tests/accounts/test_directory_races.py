"""Concurrent adds of one membership leave one row (issue 13): the unique constraints hold
on real PostgreSQL, each thread on its own connection, and the losers get the same clear
ValidationError as a sequential second add."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from apps.accounts import directory
from apps.accounts.models import GroupMembership, OrganizationMembership, WorkspaceMembership
from tests.accounts.factories import (
    GroupFactory,
    OrganizationFactory,
    RoleFactory,
    UserFactory,
    WorkspaceFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


def _race(add: Callable[[], object]) -> list[str]:
    """Runs `add` in THREADS threads released together; what each one ended with."""
    start = threading.Barrier(THREADS, timeout=30)

    def one(_: int) -> str:
        try:
            start.wait()
            add()
            return "added"
        except ValidationError as error:
            return " ".join(error.messages)
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(THREADS)))


def test_concurrent_adds_to_an_organization_leave_one_membership() -> None:
    org, role, person = OrganizationFactory(), RoleFactory(), UserFactory()

    outcomes = _race(
        lambda: directory.organization_membership_add(
            organization=org, user=person, role=role, actor_id=None
        )
    )

    assert outcomes.count("added") == 1
    refusals = [o for o in outcomes if o != "added"]
    assert len(refusals) == THREADS - 1
    assert all("is already a member of" in refusal for refusal in refusals)
    assert OrganizationMembership.objects.filter(user=person).count() == 1


def test_concurrent_adds_to_a_workspace_and_a_group_leave_one_each() -> None:
    org, role, person = OrganizationFactory(), RoleFactory(), UserFactory()
    workspace = WorkspaceFactory(organization=org)
    group = GroupFactory(workspace=workspace)
    directory.organization_membership_add(organization=org, user=person, role=role, actor_id=None)

    workspace_outcomes = _race(
        lambda: directory.workspace_membership_add(
            workspace=workspace, user=person, role=role, actor_id=None
        )
    )
    group_outcomes = _race(
        lambda: directory.group_membership_add(group=group, user=person, actor_id=None)
    )

    assert workspace_outcomes.count("added") == 1
    assert group_outcomes.count("added") == 1
    assert WorkspaceMembership.objects.filter(user=person).count() == 1
    assert GroupMembership.objects.filter(user=person).count() == 1


def _add_while_removing() -> tuple[OrganizationMembership, WorkspaceMembership | None]:
    """A workspace add and the person's removal from its organization, released together."""
    org, role, person = OrganizationFactory(), RoleFactory(), UserFactory()
    workspace = WorkspaceFactory(organization=org)
    membership = directory.organization_membership_add(
        organization=org, user=person, role=role, actor_id=None
    )
    start = threading.Barrier(2, timeout=30)

    def add() -> WorkspaceMembership | None:
        try:
            start.wait()
            return directory.workspace_membership_add(
                workspace=workspace, user=person, role=role, actor_id=None
            )
        except ValidationError:
            return None  # the removal came first
        finally:
            connection.close()

    def remove() -> None:
        try:
            start.wait()
            directory.organization_membership_remove(membership=membership, actor_id=None)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        added, removed = pool.submit(add), pool.submit(remove)
        removed.result()
        return membership, added.result()


def test_a_workspace_add_racing_the_organization_removal_leaves_no_orphan(settings) -> None:
    # The add locks the person's organization membership; the removal, waiting on it, then
    # also deletes what the add committed (READ COMMITTED: its later DELETE sees it).
    settings.ACCOUNTS_REVOKE_ON_REMOVAL = False
    for _ in range(5):
        membership, _added = _add_while_removing()
        assert not OrganizationMembership.objects.filter(user_id=membership.user_id).exists()
        assert not WorkspaceMembership.objects.filter(user_id=membership.user_id).exists()
