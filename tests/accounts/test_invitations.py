"""Organization invitations (apps/accounts/invitations.py): a link shown once, kept as a
digest, used within its limits, recorded as invitation.changed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from apps.accounts.invitations import (
    InvitationUnusable,
    invitation_check,
    invitation_create,
    invitation_for_token,
    invitation_revoke,
    invitation_use,
    token_digest,
)
from apps.accounts.models import OrganizationInvitation, OrganizationMembership
from tests.accounts.factories import OrganizationFactory, RoleFactory, UserFactory
from tests.events import recorded

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return UserFactory(is_staff=True, staff_role="operator")


def _create(operator, **kwargs):
    organization = kwargs.pop("organization", None) or OrganizationFactory()
    role = kwargs.pop("role", None) or RoleFactory()
    return invitation_create(organization=organization, role=role, actor_id=operator.pk, **kwargs)


def test_create_keeps_only_the_digest_and_records_the_operator(operator) -> None:
    with recorded() as events:
        invitation, token = _create(operator, max_uses=3)
    assert len(token) >= 43  # 256 bits
    assert invitation.token_digest == token_digest(token) != token
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_organizationinvitation")
        assert not any(token in str(value) for row in cursor.fetchall() for value in row)
    [event] = events
    assert event.event_type == "invitation.changed"
    assert event.action == "created"
    assert str(event.actor_id) == str(operator.pk)
    assert invitation_for_token(token) == invitation
    assert invitation.state == "active"


def test_use_makes_a_member_and_counts(operator) -> None:
    invitation, _ = _create(operator, max_uses=2)
    person = UserFactory()
    with recorded() as events:
        membership = invitation_use(invitation_id=invitation.pk, user=person)
    assert membership.organization_id == invitation.organization_id
    assert membership.role_id == invitation.role_id
    invitation.refresh_from_db()
    assert invitation.uses == 1
    used = [e for e in events if e.event_type == "invitation.changed"]
    assert [e.action for e in used] == ["used"]
    assert str(used[0].actor_id) == str(person.pk)
    # and the membership itself is recorded as any other (permission.changed)
    assert any(e.event_type == "permission.changed" for e in events)


def test_used_up_invitation_is_refused(operator) -> None:
    invitation, _ = _create(operator)  # one use
    invitation_use(invitation_id=invitation.pk, user=UserFactory())
    with pytest.raises(InvitationUnusable) as refused:
        invitation_use(invitation_id=invitation.pk, user=UserFactory())
    assert refused.value.code == "used"
    assert OrganizationMembership.objects.filter(organization=invitation.organization).count() == 1


def test_member_already_is_told_and_no_use_counted(operator) -> None:
    invitation, _ = _create(operator, max_uses=5)
    person = UserFactory()
    invitation_use(invitation_id=invitation.pk, user=person)
    with pytest.raises(InvitationUnusable) as refused:
        invitation_use(invitation_id=invitation.pk, user=person)
    assert refused.value.code == "member"
    invitation.refresh_from_db()
    assert invitation.uses == 1


def test_invitation_for_one_address_refuses_another(operator) -> None:
    invitation, _ = _create(operator, email="Invited@Example.com")
    assert invitation.email == "invited@example.com"
    with pytest.raises(InvitationUnusable) as refused:
        invitation_use(invitation_id=invitation.pk, user=UserFactory(email="other@example.com"))
    assert refused.value.code == "address"
    invitation_check(invitation, email="INVITED@example.com")  # any case
    invitation_use(invitation_id=invitation.pk, user=UserFactory(email="invited@example.com"))


def test_revoked_invitation_is_refused(operator) -> None:
    invitation, token = _create(operator, max_uses=5)
    with recorded() as events:
        assert invitation_revoke(invitation=invitation, actor_id=operator.pk)
        assert not invitation_revoke(invitation=invitation, actor_id=operator.pk)
    assert [e.action for e in events] == ["revoked"]
    with pytest.raises(InvitationUnusable) as refused:
        invitation_use(invitation_id=invitation.pk, user=UserFactory())
    assert refused.value.code == "revoked"
    assert invitation_for_token(token).state == "revoked"


def test_expired_invitation_is_refused(operator) -> None:
    invitation, _ = _create(operator)
    OrganizationInvitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(InvitationUnusable) as refused:
        invitation_use(invitation_id=invitation.pk, user=UserFactory())
    assert refused.value.code == "expired"


@pytest.mark.parametrize("token", ["", "x", "A" * 43, "A" * 5000, "\x00", "../../etc"])
def test_forged_token_is_unknown(token: str) -> None:
    with pytest.raises(InvitationUnusable) as refused:
        invitation_for_token(token)
    assert refused.value.code == "unknown"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_uses": 0}, "max_uses"),
        ({"max_uses": 10_001}, "max_uses"),
        ({"days": 0}, "days"),
        ({"days": 91}, "days"),
        ({"email": "not an address"}, "email"),
        ({"email": "a@example.com\r\nBcc: b@example.com"}, "email"),
        ({"email": "a@example.com", "max_uses": 2}, "max_uses"),
    ],
)
def test_bad_input_is_refused_by_field(operator, kwargs, field) -> None:
    with pytest.raises(ValidationError) as refused:
        _create(operator, **kwargs)
    assert field in refused.value.message_dict
    assert not OrganizationInvitation.objects.exists()


def test_role_of_another_organization_is_refused(operator) -> None:
    foreign = RoleFactory(organization=OrganizationFactory())
    with pytest.raises(ValidationError) as refused:
        _create(operator, role=foreign)
    assert "role" in refused.value.message_dict


@pytest.mark.django_db(transaction=True)
def test_two_people_racing_for_the_last_use_get_one_membership() -> None:
    """The invitation's row is locked while a use is counted: the loser waits, then finds
    no use left (not two members from a one-use link)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    invitation, _ = invitation_create(
        organization=OrganizationFactory(), role=RoleFactory(), actor_id=None
    )
    people = [UserFactory(), UserFactory()]
    start = threading.Barrier(2)

    def use(person):
        start.wait()
        try:
            invitation_use(invitation_id=invitation.pk, user=person)
            return "member"
        except InvitationUnusable as refused:
            return refused.code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(use, people))
    assert outcomes == ["member", "used"]
    invitation.refresh_from_db()
    assert invitation.uses == 1
    assert OrganizationMembership.objects.filter(organization=invitation.organization).count() == 1
