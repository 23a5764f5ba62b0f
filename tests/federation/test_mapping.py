"""Mapping upstream claims to organization memberships (apps/federation/mapping.py): the
organizations a provider's rules name follow the claims of each sign-in; the others are left
alone; one federation.mapped event when something changed, none otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import OrganizationMembership, StaffRole
from apps.core.events import EventType
from apps.federation.mapping import claim_matches, mapping_apply
from apps.federation.models import FederatedIdentity, Provider
from apps.federation.providers import provider_create
from tests.accounts.factories import (
    OrganizationFactory,
    OrganizationMembershipFactory,
    RoleFactory,
    UserFactory,
)
from tests.events import recorded

pytestmark = pytest.mark.django_db


@pytest.fixture
def tree() -> dict[str, Any]:
    acme = OrganizationFactory(slug="acme")
    labs = OrganizationFactory(slug="labs")
    return {
        "acme": acme,
        "labs": labs,
        "member": RoleFactory(name="member"),  # built-in
        "admin": RoleFactory(name="admin"),  # built-in
        "labs_lead": RoleFactory(organization=labs, name="lead"),
    }


def _provider(rules: list[dict[str, str]]) -> Provider:
    admin = UserFactory(is_staff=True, staff_role=StaffRole.ADMINISTRATOR)
    return provider_create(
        actor_id=admin.pk,
        slug="acme-sso",
        name="Acme SSO",
        kind="oidc",
        issuer="https://sso.acme.example",
        client_id="tessera",
        client_secret="secret",
        mapping_rules=rules,
    )


RULES = [
    {"claim": "groups", "value": "acme-admins", "organization": "acme", "role": "admin"},
    {"claim": "groups", "value": "acme-staff", "organization": "acme", "role": "member"},
    {"claim": "department", "value": "research", "organization": "labs", "role": "lead"},
]


def _roles(user: Any) -> dict[str, str]:
    return {
        m.organization.slug: m.role.name
        for m in OrganizationMembership.objects.filter(user=user).select_related(
            "organization", "role"
        )
    }


def test_a_claim_matches_by_equality_or_membership_of_a_list() -> None:
    assert claim_matches({"groups": ["a", "b"]}, "groups", "b")
    assert claim_matches({"hd": "acme.example"}, "hd", "acme.example")
    assert not claim_matches({"groups": ["ab"]}, "groups", "a")
    assert not claim_matches({"groups": "abc"}, "groups", "b")
    assert not claim_matches({"groups": [["b"]]}, "groups", "b")
    assert not claim_matches({"admin": True}, "admin", "True")
    assert not claim_matches({}, "groups", "b")


def test_first_sign_in_adds_the_memberships_the_claims_earn(tree) -> None:
    provider = _provider(RULES)
    person = UserFactory()
    with recorded() as events:
        mapping_apply(
            provider=provider,
            user=person,
            claims={"groups": ["acme-staff", "acme-admins"], "department": "research"},
        )
    # The first matching rule for an organization decides its role: admin, not member.
    assert _roles(person) == {"acme": "admin", "labs": "lead"}
    mapped = [e for e in events if e.event_type == EventType.FEDERATION_MAPPED]
    [event] = mapped
    assert event.user_id == str(person.pk)
    assert event.metadata == {
        "provider": "acme-sso",
        "added": [
            {"organization": "acme", "role": "admin"},
            {"organization": "labs", "role": "lead"},
        ],
        "removed": [],
        "changed": [],
    }
    # Each membership change is the directory's own permission.changed too (the system acts).
    changes = [e for e in events if e.event_type == EventType.PERMISSION_CHANGED]
    assert [e.action for e in changes] == ["member_added", "member_added"]
    assert all(e.actor_id == "" for e in changes)


def test_later_sign_ins_change_and_remove_what_the_rules_own(tree) -> None:
    provider = _provider(RULES)
    person = UserFactory()
    mapping_apply(
        provider=provider, user=person, claims={"groups": ["acme-admins"], "department": "research"}
    )
    with recorded() as events:
        mapping_apply(provider=provider, user=person, claims={"groups": ["acme-staff"]})
    assert _roles(person) == {"acme": "member"}
    [event] = [e for e in events if e.event_type == EventType.FEDERATION_MAPPED]
    assert event.metadata["changed"] == [{"organization": "acme", "from": "admin", "to": "member"}]
    assert event.metadata["removed"] == [{"organization": "labs", "role": "lead"}]
    assert event.metadata["added"] == []


def test_nothing_changed_records_nothing_and_costs_three_reads(tree) -> None:
    provider = _provider(RULES)
    person = UserFactory()
    claims = {"groups": ["acme-staff"], "department": "research"}
    mapping_apply(provider=provider, user=person, claims=claims)
    with recorded() as events, CaptureQueriesContext(connection) as queries:
        mapping_apply(provider=provider, user=person, claims=claims)
    assert events == []
    # organizations, roles, memberships (the savepoint's statements are not queries of ours)
    reads = [q for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert len(reads) == 3, [q["sql"] for q in reads]


def test_a_provider_without_rules_costs_nothing(tree) -> None:
    provider = _provider([])
    person = UserFactory()
    with CaptureQueriesContext(connection) as queries:
        mapping_apply(provider=provider, user=person, claims={"groups": ["x"]})
    assert queries.captured_queries == []


def test_organizations_no_rule_names_are_left_alone(tree) -> None:
    provider = _provider(RULES[:2])
    person = UserFactory()
    other = OrganizationFactory(slug="other")
    OrganizationMembershipFactory(user=person, organization=other, role=tree["member"])
    mapping_apply(provider=provider, user=person, claims={})
    assert _roles(person) == {"other": "member"}


def test_a_rule_whose_organization_went_is_skipped_and_the_sign_in_goes_on(tree) -> None:
    provider = _provider(RULES)
    tree["labs"].delete()
    person = UserFactory()
    mapping_apply(
        provider=provider, user=person, claims={"groups": ["acme-staff"], "department": "research"}
    )
    assert _roles(person) == {"acme": "member"}


def test_a_rule_whose_role_went_leaves_that_organization_as_it_is(tree) -> None:
    provider = _provider(RULES)
    person = UserFactory()
    mapping_apply(provider=provider, user=person, claims={"department": "research"})
    assert _roles(person) == {"labs": "lead"}
    lead = tree["labs_lead"]
    OrganizationMembership.objects.filter(user=person).update(role=tree["member"])
    lead.delete()
    with recorded() as events:
        mapping_apply(provider=provider, user=person, claims={"department": "research"})
    assert _roles(person) == {"labs": "member"}
    assert [e for e in events if e.event_type == EventType.FEDERATION_MAPPED] == []


def test_organization_own_role_wins_over_a_built_in_of_the_same_name(tree) -> None:
    own_member = RoleFactory(organization=tree["acme"], name="member")
    provider = _provider(RULES[1:2])
    person = UserFactory()
    mapping_apply(provider=provider, user=person, claims={"groups": "acme-staff"})
    membership = OrganizationMembership.objects.get(user=person)
    assert membership.role_id == own_member.pk


def test_each_sign_in_through_the_provider_applies_its_rules(tree, google_standin) -> None:
    # Issue 17: "applied at each sign-in and recorded" — through the real flow, with the
    # Google stand-in's ID token carrying the claims.
    admin = UserFactory(is_staff=True, staff_role=StaffRole.ADMINISTRATOR)
    provider_create(
        actor_id=admin.pk,
        slug="google",
        name="Google",
        kind="google",
        issuer=google_standin.url,
        client_id=google_standin.client_id,
        client_secret=google_standin.client_secret,
        jit_provisioning=True,
        mapping_rules=RULES,
    )

    def sign_in() -> None:
        http = HttpClient()
        start = http.get("/login/federated/google", {"next": "/account/"})
        assert start.status_code == 302, start.content
        answer = http.get(
            "/login/federated/google/callback", google_standin.authorize(start["Location"])
        )
        assert answer.status_code == 302, answer.content

    google_standin.user["groups"] = ["acme-staff"]
    with recorded() as events:
        sign_in()
    person = FederatedIdentity.objects.get(subject=google_standin.user["sub"]).user
    assert _roles(person) == {"acme": "member"}
    [mapped] = [e for e in events if e.event_type == EventType.FEDERATION_MAPPED]
    assert mapped.metadata["added"] == [{"organization": "acme", "role": "member"}]

    google_standin.user["groups"] = []  # taken out of the group upstream
    with recorded() as events:
        sign_in()
    assert _roles(person) == {}
    [mapped] = [e for e in events if e.event_type == EventType.FEDERATION_MAPPED]
    assert mapped.metadata["removed"] == [{"organization": "acme", "role": "member"}]
