"""The stand-ins drive the real flow (apps/federation/flow.py) through the test client: the
browser's round trip to GitHub or Google and back, so what the upstream client takes from a
provider is what the sign-in pipeline gets (the flow's own checks: test_flow_checks.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client as HttpClient

from apps.accounts.models import StaffRole, User
from apps.federation.models import FederatedIdentity, Provider
from apps.federation.providers import provider_create
from apps.sessions.models import LoginSession
from tests.accounts.factories import UserFactory
from tests.events import recorded
from tests.federation.standins import GitHubStandIn, GoogleStandIn, StandIn

pytestmark = pytest.mark.django_db


def _provider(standin: StandIn, kind: str, **fields: Any) -> Provider:
    admin = UserFactory(is_staff=True, staff_role=StaffRole.ADMINISTRATOR)
    return provider_create(
        actor_id=admin.pk,
        slug=kind,
        name=kind.title(),
        kind=kind,
        issuer=standin.url,
        client_id=standin.client_id,
        client_secret=standin.client_secret,
        **fields,
    )


def _round_trip(http: HttpClient, standin: StandIn, slug: str) -> Any:
    """Start at Tessera, let the stand-in approve, bring its answer back to the callback."""
    start = http.get(f"/login/federated/{slug}", {"next": "/account/"})
    assert start.status_code == 302, start.content
    params = standin.authorize(start["Location"])
    return http.get(f"/login/federated/{slug}/callback", params)


def test_github_sign_in_provisions_an_account_with_its_verified_primary_email(
    client: HttpClient, github_standin: GitHubStandIn
) -> None:
    _provider(github_standin, "github", jit_provisioning=True)

    response = _round_trip(client, github_standin, "github")

    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/account/"
    identity = FederatedIdentity.objects.get(subject="583231")
    assert identity.user.email == "octocat@example.com"
    assert identity.display == "octocat"
    session = LoginSession.objects.get(user=identity.user)
    assert (session.amr, session.provider) == (["fed"], "github")


def test_github_unverified_primary_email_makes_no_account(
    client: HttpClient, github_standin: GitHubStandIn
) -> None:
    _provider(github_standin, "github", jit_provisioning=True)
    github_standin.emails = [{"email": "octocat@example.com", "primary": True, "verified": False}]

    with recorded() as events:
        response = _round_trip(client, github_standin, "github")

    assert response.status_code == 403
    assert not User.objects.filter(email="octocat@example.com").exists()
    assert [e.error_code for e in events if e.event_type == "federation.failed"] == [
        "unverified_email"
    ]


def test_google_sign_in_with_rfc_9207_iss(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    google_standin.send_iss = True  # RFC 9207: the flow then requires and compares iss
    _provider(google_standin, "google", jit_provisioning=True)

    response = _round_trip(client, google_standin, "google")

    assert response.status_code == 302
    assert FederatedIdentity.objects.filter(subject="110169484474386276334").exists()


def test_google_id_token_with_a_wrong_nonce_is_a_page_and_no_session(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    _provider(google_standin, "google", jit_provisioning=True)
    google_standin.id_token_fault = "wrong_nonce"

    with recorded() as events:
        response = _round_trip(client, google_standin, "google")

    assert response.status_code == 400
    assert not LoginSession.objects.exists()
    assert [e.error_code for e in events if e.event_type == "federation.failed"] == [
        "invalid_id_token"
    ]
