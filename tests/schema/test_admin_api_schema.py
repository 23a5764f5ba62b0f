"""The admin API answers as its OpenAPI document says, for whatever schemathesis sends
(issue 20, "Tools"): tests/schema/admin_api.py says what is checked and how.

The suite's budget is small and derandomized (the same requests on every run);
benchmarks/schemathesis_long.py runs the same thing with more examples and a seed.
"""

from __future__ import annotations

import os

import pytest

from apps.accounts.invitations import invitation_create
from apps.accounts.services import user_create
from apps.federation.models import FederatedIdentity
from apps.federation.providers import provider_create
from apps.threat.services import rule_create
from apps.tokens.services import client_create
from tests.accounts.factories import (
    GroupFactory,
    OrganizationMembershipFactory,
    PermissionFactory,
    RoleFactory,
    WorkspaceFactory,
)
from tests.console.conftest import access_token, add_session, offline_grant
from tests.rp import PASSWORD
from tests.schema import admin_api

pytestmark = pytest.mark.django_db

# Examples per operation and generation mode in the suite: 95 operations, 2 modes, 3 each;
# with the linked scenarios, well under a minute and a half on two loaded cores.
SUITE_EXAMPLES = 3


@pytest.fixture
def operator(db):
    """The administrator whose token calls the API (every operation is open to that role)."""
    return user_create(email="ops@example.com", password=PASSWORD, staff_role="administrator")


@pytest.fixture(autouse=True)
def _audit_store(empty_audit_store) -> None:
    """Audit reads and GDPR exports go to the audit store: its tables exist, and are empty."""


def seed(operator) -> dict[str, str]:
    """One row of each kind an admin API path names, with the ids to put in those paths."""
    person = user_create(email="ada@example.com", password=PASSWORD, name="Ada")
    session = add_session(person)
    grant = offline_grant(person).grant
    client, _ = client_create(
        name="Shop", redirect_uris=["https://shop.example.com/cb"], client_id="shop-web"
    )
    provider = provider_create(
        actor_id=operator.pk,
        slug="acme",
        name="Acme SSO",
        kind="oidc",
        issuer="https://sso.acme.example",
        client_id="tessera",
        client_secret="upstream-secret-value",
    )
    identity = FederatedIdentity.objects.create(user=person, provider=provider, subject="u-1")
    rule = rule_create(
        actor_id=None, name="new_device", condition="new_device", action="alert", severity="low"
    )
    workspace = WorkspaceFactory()
    organization = workspace.organization
    group = GroupFactory(workspace=workspace)
    permission = PermissionFactory()
    role = RoleFactory(organization=organization, permissions=[permission])
    OrganizationMembershipFactory(user=person, organization=organization, role=role)
    invitation, _ = invitation_create(organization=organization, role=role, actor_id=operator.pk)
    return {
        "user_id": str(person.pk),
        "session_id": str(session.pk),
        "grant_id": str(grant.pk),
        "client_id": client.client_id,
        "provider_id": str(provider.pk),
        "identity_id": str(identity.pk),
        "rule_id": str(rule.pk),
        "organization_id": str(organization.pk),
        "workspace_id": str(workspace.pk),
        "group_id": str(group.pk),
        "permission_id": str(permission.pk),
        "role_id": str(role.pk),
        "invitation_id": str(invitation.pk),
    }


STATEFUL_SCENARIOS = 8
STATEFUL_STEPS = 6


def test_linked_admin_api_calls_answer_as_documented(operator, settings) -> None:
    settings.RATELIMIT_ENABLED = False  # as above
    seed(operator)
    token = access_token(operator, "openid admin")
    scenarios = int(os.environ.get(admin_api.STATEFUL_SCENARIOS_ENV, STATEFUL_SCENARIOS))
    seed_value = os.environ.get(admin_api.SEED_ENV)

    with admin_api.wsgi_in_test_transaction() as app:
        schema = admin_api.load_schema(app, token)
        outcome = admin_api.run_stateful(
            schema,
            token=token,
            max_examples=scenarios,
            max_steps=STATEFUL_STEPS,
            seed_value=int(seed_value) if seed_value else None,
        )
    admin_api.write_stateful_summary(outcome)

    assert outcome.scenarios >= scenarios
    assert sum(outcome.steps.values()) > scenarios, "the scenarios made no calls"
    assert not outcome.failures, "\n\n".join(outcome.failures)


def test_every_admin_api_operation_answers_as_documented(operator, settings) -> None:
    # The one test client would meet the API's per-IP limit (api.ip) after a hundred
    # requests, and every later answer would be its 429 (tests/ratelimit test the limiter).
    settings.RATELIMIT_ENABLED = False
    path_ids = seed(operator)
    token = access_token(operator, "openid admin")
    max_examples = int(os.environ.get(admin_api.MAX_EXAMPLES_ENV, SUITE_EXAMPLES))
    seed_value = os.environ.get(admin_api.SEED_ENV)
    only = os.environ.get(admin_api.OPERATIONS_ENV, "")

    with admin_api.wsgi_in_test_transaction() as app:
        schema = admin_api.load_schema(app, token)
        outcomes = admin_api.run(
            schema,
            token=token,
            path_ids=path_ids,
            max_examples=max_examples,
            seed_value=int(seed_value) if seed_value else None,
            operations=lambda label: only in label,
        )
    admin_api.write_summary(outcomes)

    if not only:
        assert len(outcomes) >= 95, "an operation of the document was not run"
    failing = [label for label, outcome in outcomes.items() if outcome.failures]
    assert not failing, admin_api.summary(outcomes)
