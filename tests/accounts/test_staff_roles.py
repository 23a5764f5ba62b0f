"""staff_role_set(): who has which console role (StaffRole), each change a user.changed event
with its actor, and never no administrator left (issue 13)."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection

from apps.accounts.models import StaffRole, User
from apps.accounts.services import LastAdministrator, staff_role_set, user_create
from apps.core.models import SecurityEvent


def _changes(user: User) -> list[SecurityEvent]:
    return list(
        SecurityEvent.objects.filter(
            event_type="user.changed", user_id=str(user.pk), action="staff_role_changed"
        ).order_by("occurred_at")
    )


@pytest.mark.django_db
def test_a_role_makes_staff_and_is_recorded_with_its_actor() -> None:
    admin = user_create(email="root@example.com", staff_role=StaffRole.ADMINISTRATOR)
    ada = user_create(email="ada@example.com")

    assert staff_role_set(user=ada, role=StaffRole.OPERATOR, actor_id=admin.pk) is True

    stored = User.objects.get(pk=ada.pk)
    assert (stored.is_staff, stored.staff_role) == (True, "operator")
    assert stored.has_staff_role(StaffRole.VIEWER)
    assert not stored.has_staff_role(StaffRole.ADMINISTRATOR)
    [event] = _changes(ada)
    assert event.actor_id == str(admin.pk)
    assert event.metadata == {"staff_role_before": "", "staff_role_after": "operator"}


@pytest.mark.django_db
def test_the_same_role_again_changes_and_records_nothing() -> None:
    ada = user_create(email="ada@example.com", staff_role=StaffRole.VIEWER)

    assert staff_role_set(user=ada, role=StaffRole.VIEWER, actor_id=None) is False
    assert _changes(ada) == []


@pytest.mark.django_db
def test_no_role_ends_staff_access_and_the_superuser_flag() -> None:
    user_create(email="root@example.com", staff_role=StaffRole.ADMINISTRATOR)
    ada = user_create(email="ada@example.com", staff_role=StaffRole.ADMINISTRATOR)
    User.objects.filter(pk=ada.pk).update(is_superuser=True)
    ada.refresh_from_db()

    staff_role_set(user=ada, role="", actor_id=None)

    stored = User.objects.get(pk=ada.pk)
    assert (stored.is_staff, stored.staff_role, stored.is_superuser) == (False, "", False)


@pytest.mark.django_db
def test_an_unknown_role_is_refused() -> None:
    ada = user_create(email="ada@example.com")

    with pytest.raises(ValidationError, match="must be one of viewer, operator, administrator"):
        staff_role_set(user=ada, role="root", actor_id=None)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["", StaffRole.VIEWER, StaffRole.OPERATOR])
def test_the_last_administrator_stays_one(role: str) -> None:
    admin = user_create(email="root@example.com", staff_role=StaffRole.ADMINISTRATOR)
    # A deactivated administrator administers nothing: they do not count.
    former = user_create(email="former@example.com", staff_role=StaffRole.ADMINISTRATOR)
    User.objects.filter(pk=former.pk).update(is_active=False)

    with pytest.raises(LastAdministrator, match=r"root@example\.com is the last administrator"):
        staff_role_set(user=admin, role=role, actor_id=admin.pk)

    assert User.objects.get(pk=admin.pk).staff_role == "administrator"
    assert _changes(admin) == []


@pytest.mark.django_db(transaction=True)
def test_two_administrators_demoting_each_other_at_once_leave_one() -> None:
    """Each call locks the administrators' rows before counting them, so the second waits for
    the first and then sees it would remove the last one (real PostgreSQL, two connections)."""
    first = user_create(email="first@example.com", staff_role=StaffRole.ADMINISTRATOR)
    second = user_create(email="second@example.com", staff_role=StaffRole.ADMINISTRATOR)
    ready = threading.Barrier(2, timeout=30)

    def demote(pair: tuple[User, User]) -> str:
        actor, target = pair
        try:
            ready.wait()
            staff_role_set(user=target, role=StaffRole.VIEWER, actor_id=actor.pk)
            return "demoted"
        except LastAdministrator:
            return "refused"
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(demote, [(first, second), (second, first)]))

    assert outcomes == ["demoted", "refused"]
    assert User.objects.filter(staff_role=StaffRole.ADMINISTRATOR).count() == 1


def _createuser(*args: str) -> str:
    out = io.StringIO()
    call_command("createuser", *args, stdin=io.StringIO(""), stdout=out)
    return out.getvalue().strip()


@pytest.mark.django_db
def test_createuser_gives_an_existing_account_its_role_once() -> None:
    ada = user_create(email="ada@example.com")

    printed = _createuser("--email", "Ada@Example.com", "--staff-role", "operator")
    again = _createuser("--email", "ada@example.com", "--staff-role", "operator")

    assert printed == again == str(ada.pk)
    assert User.objects.get(pk=ada.pk).staff_role == "operator"
    [event] = _changes(ada)  # the second run changed nothing
    assert event.actor_id == ""  # the command line: no actor recorded
