"""Tokens follow the directory (issue 13): removing someone from an organization refuses
their current access token at once; a person in many workspaces gets a token that stays
under ACCESS_TOKEN_MAX_BYTES and says what it left out."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from apps.accounts import directory
from apps.accounts.models import Workspace, WorkspaceMembership
from apps.accounts.selectors import claims_preview
from apps.tokens.claims import AUTHZ_DETAIL
from apps.tokens.models import Client
from apps.tokens.services import consent_grant
from apps.tokens.validation import InvalidToken, validate_access_token
from tests.accounts.factories import OrganizationFactory, RoleFactory
from tests.events import recorded
from tests.rp import RegisteredClient
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import SCOPE, Flow, unverified_payload, userinfo

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(client: HttpClient, person, rp: RegisteredClient) -> Flow:
    force_sign_in(client, person)
    consent_grant(
        user_id=person.pk, client=Client.objects.get(client_id=rp.client_id), scopes=SCOPE.split()
    )
    return Flow(client, rp)


def test_removal_from_an_organization_refuses_the_current_access_token_at_once(
    flow: Flow, person, settings
) -> None:
    assert settings.ACCOUNTS_REVOKE_ON_REMOVAL  # the default
    org = OrganizationFactory()
    membership = directory.organization_membership_add(
        organization=org, user=person, role=RoleFactory(), actor_id=None
    )
    tokens = flow.tokens()
    assert unverified_payload(tokens["access_token"])["orgs"][0]["id"] == str(org.pk)
    validate_access_token(tokens["access_token"])  # accepted before

    with recorded() as events:
        removed = directory.organization_membership_remove(membership=membership, actor_id=None)

    assert removed["tokens_revoked"] == 1
    with pytest.raises(InvalidToken, match="revoked"):
        validate_access_token(tokens["access_token"])
    assert {e.event_type for e in events} == {"token.revoked", "permission.changed"}
    # The session and refresh token stay: the next token simply leaves the organization out.
    refreshed = flow.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content
    new_token = refreshed.json()["access_token"]
    assert validate_access_token(new_token)["orgs"] == []


def test_without_the_setting_removal_leaves_tokens_to_expire(flow: Flow, person, settings) -> None:
    settings.ACCOUNTS_REVOKE_ON_REMOVAL = False
    org = OrganizationFactory()
    membership = directory.organization_membership_add(
        organization=org, user=person, role=RoleFactory(), actor_id=None
    )
    token = flow.tokens()["access_token"]
    directory.organization_membership_remove(membership=membership, actor_id=None)
    assert validate_access_token(token)["orgs"][0]["id"] == str(org.pk)


def test_a_person_in_500_workspaces_gets_a_bounded_token_that_says_so(
    flow: Flow, person, settings
) -> None:
    org = OrganizationFactory()
    role = RoleFactory()
    directory.organization_membership_add(organization=org, user=person, role=role, actor_id=None)
    workspaces = Workspace.objects.bulk_create(
        Workspace(organization=org, name=f"Workspace {n}", slug=f"ws-{n}") for n in range(500)
    )
    WorkspaceMembership.objects.bulk_create(
        WorkspaceMembership(user=person, workspace=w, role=role) for w in workspaces
    )

    tokens = flow.tokens()
    access = tokens["access_token"]

    assert len(access) <= settings.ACCESS_TOKEN_MAX_BYTES == 8192
    claims = validate_access_token(access)  # the validation service accepts it
    assert claims["authz_truncated"] is True
    assert "workspaces" not in claims
    assert claims["_claim_names"]["workspaces"] == "authz"
    assert claims["_claim_sources"]["authz"]["endpoint"] == f"{settings.ISSUER}/oauth/userinfo"
    assert claims["orgs"] == claims_preview(user=person)["orgs"]  # what fits stays
    # The endpoint the token names gives the full picture.
    full = userinfo(flow.http, access).json()
    assert len(full["workspaces"]) == 500
    assert full["workspaces"] == claims_preview(user=person)["workspaces"]


def test_a_small_token_is_not_marked(flow: Flow) -> None:
    claims = unverified_payload(flow.tokens()["access_token"])
    assert "authz_truncated" not in claims
    assert "_claim_names" not in claims
    assert all(name in claims for name in AUTHZ_DETAIL)


def test_the_bound_holds_for_a_lower_limit_and_drops_more(flow: Flow, person, settings) -> None:
    settings.ACCESS_TOKEN_MAX_BYTES = 2048
    org = OrganizationFactory()
    role = RoleFactory()
    directory.organization_membership_add(organization=org, user=person, role=role, actor_id=None)
    workspaces = Workspace.objects.bulk_create(
        Workspace(organization=org, name=f"W {n}", slug=f"w-{n}") for n in range(40)
    )
    WorkspaceMembership.objects.bulk_create(
        WorkspaceMembership(user=person, workspace=w, role=role) for w in workspaces
    )
    access = flow.tokens()["access_token"]
    assert len(access) <= 2048
    assert validate_access_token(access)["authz_truncated"] is True
