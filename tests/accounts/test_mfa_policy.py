"""Who must prove a second factor: the person's own flag (operator or threat response) and
their organizations' policy, each change recorded with its actor."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.accounts.models import MfaRequiredBy, Organization, User
from apps.accounts.services import (
    mfa_required_by_policy,
    mfa_requirement_set,
    organization_mfa_policy_set,
    user_create,
)
from apps.core.models import SecurityEvent
from tests.accounts.factories import OrganizationFactory, OrganizationMembershipFactory


@pytest.mark.django_db
def test_an_operator_requires_mfa_of_a_person_and_the_change_is_recorded() -> None:
    ada = user_create(email="ada@example.com", password="a long passphrase")
    operator = user_create(email="op@example.com", password="a long passphrase")

    assert mfa_requirement_set(
        user=ada, required=True, actor_id=operator.pk, source=MfaRequiredBy.OPERATOR
    )
    stored = User.objects.get(pk=ada.pk)
    assert (stored.mfa_required, stored.mfa_required_by) == (True, "operator")
    assert mfa_required_by_policy(stored)
    event = SecurityEvent.objects.get(action="mfa_required_changed")
    assert event.event_type == "user.changed"
    assert (str(event.user_id), str(event.actor_id)) == (str(ada.pk), str(operator.pk))
    assert event.metadata == {"mfa_required": True, "source": "operator"}

    # The same again changes nothing and records nothing.
    assert not mfa_requirement_set(
        user=ada, required=True, actor_id=operator.pk, source=MfaRequiredBy.OPERATOR
    )
    assert SecurityEvent.objects.filter(action="mfa_required_changed").count() == 1

    assert mfa_requirement_set(
        user=ada, required=False, actor_id=operator.pk, source=MfaRequiredBy.OPERATOR
    )
    stored.refresh_from_db()
    assert (stored.mfa_required, stored.mfa_required_by) == (False, "")
    assert not mfa_required_by_policy(stored)


@pytest.mark.django_db
def test_an_unknown_source_is_refused() -> None:
    ada = user_create(email="ada@example.com", password="a long passphrase")
    with pytest.raises(ValidationError):
        mfa_requirement_set(user=ada, required=True, actor_id=None, source="whim")
    assert not User.objects.get(pk=ada.pk).mfa_required


@pytest.mark.django_db
def test_an_organizations_policy_binds_its_members_only() -> None:
    ada = user_create(email="ada@example.com", password="a long passphrase")
    bob = user_create(email="bob@example.com", password="a long passphrase")
    acme = OrganizationFactory(name="Acme", slug="acme")
    OrganizationMembershipFactory(user=ada, organization=acme)

    assert organization_mfa_policy_set(organization=acme, required=True, actor_id=bob.pk)
    assert not organization_mfa_policy_set(organization=acme, required=True, actor_id=bob.pk)
    assert Organization.objects.get(pk=acme.pk).mfa_required
    assert mfa_required_by_policy(ada)
    assert not mfa_required_by_policy(bob)
    event = SecurityEvent.objects.get(action="mfa_policy_changed")
    assert str(event.actor_id) == str(bob.pk)
    assert event.metadata == {"before": {"mfa_required": False}, "after": {"mfa_required": True}}
