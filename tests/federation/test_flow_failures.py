"""Upstream failures through the whole flow (issue 17, "Failure and bad input"): a provider
down, slow, answering an error, malformed or oversized JSON, a wrong issuer, an ID token
signed with an unknown key or `alg: none` — each ends in a page that says what to do, a
federation.failed event with its code, and no session; never a 500. (upstream.py's own tests,
test_upstream.py, pin each failure's code; these pin what the person and the audit trail get.)
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.accounts.models import StaffRole
from apps.federation.providers import provider_create
from apps.sessions.models import LoginSession
from tests.accounts.factories import UserFactory
from tests.events import recorded
from tests.federation.standins import GoogleStandIn

pytestmark = pytest.mark.django_db


@pytest.fixture
def google(google_standin: GoogleStandIn) -> GoogleStandIn:
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
    )
    return google_standin


def _callback_after(http: HttpClient, standin: GoogleStandIn, **faults: str) -> tuple[Any, list]:
    start = http.get("/login/federated/google", {"next": "/account/"})
    assert start.status_code == 302, start.content
    params = standin.authorize(start["Location"])
    for endpoint, fault in faults.items():
        if endpoint == "id_token":
            standin.id_token_fault = fault
        else:
            standin.faults[endpoint] = fault
    with recorded() as events:
        response = http.get("/login/federated/google/callback", params)
    return response, [e for e in events if e.event_type == "federation.failed"]


@pytest.mark.parametrize(
    ("faults", "code", "status", "says"),
    [
        ({"token": "503"}, "unavailable", 502, "Try again"),
        ({"token": "slow"}, "unavailable", 502, "Try again"),
        ({"token": "oauth_error"}, "upstream_error", 400, "Google"),
        ({"token": "malformed_json"}, "invalid_response", 502, "Google"),
        ({"token": "oversized"}, "invalid_response", 502, "Google"),
        ({"jwks": "500"}, "unavailable", 502, "Try again"),
        ({"id_token": "unknown_kid"}, "invalid_id_token", 400, "Google"),
        ({"id_token": "alg_none"}, "invalid_id_token", 400, "Google"),
        ({"id_token": "hs256"}, "invalid_id_token", 400, "Google"),
        ({"id_token": "wrong_iss"}, "invalid_id_token", 400, "Google"),
        ({"id_token": "wrong_nonce"}, "invalid_id_token", 400, "Google"),
        ({"id_token": "expired"}, "invalid_id_token", 400, "Google"),
    ],
    ids=lambda value: "-".join(value.values()) if isinstance(value, dict) else None,
)
def test_an_upstream_failure_is_a_page_an_event_and_no_session(
    client: HttpClient,
    google: GoogleStandIn,
    settings: Any,
    faults: dict[str, str],
    code: str,
    status: int,
    says: str,
) -> None:
    settings.FEDERATION_TIMEOUT_SECONDS = 1  # "slow" answers after its release or 30 s
    response, failed = _callback_after(client, google, **faults)
    page = response.content.decode()
    assert response.status_code == status
    assert "Sign-in not completed" in page
    assert says in page
    assert "Back to sign in" in page
    assert [e.error_code for e in failed] == [code]
    assert failed[0].metadata["provider"] == "google"
    assert not LoginSession.objects.exists()


def test_a_provider_down_at_the_start_is_a_page_not_an_error(
    client: HttpClient, google: GoogleStandIn
) -> None:
    google.stop()  # discovery cannot be read: nothing to send the person to
    with recorded() as events:
        response = client.get("/login/federated/google", {"next": "/account/"})
    assert response.status_code == 502
    assert "Sign-in not completed" in response.content.decode()
    assert [e.error_code for e in events if e.event_type == "federation.failed"] == ["unavailable"]


def test_a_wrong_issuer_in_the_response_is_refused_as_mix_up(
    client: HttpClient, google: GoogleStandIn
) -> None:
    # RFC 9207 §2.4 / RFC 9700 §4.4: another provider's iss in this provider's answer.
    google.send_iss = True
    google.response_iss = "https://attacker.example"
    response, failed = _callback_after(client, google)
    assert response.status_code == 400
    assert [e.error_code for e in failed] == ["issuer_mismatch"]


def test_a_missing_iss_is_refused_where_the_provider_always_sends_it(
    client: HttpClient, google: GoogleStandIn
) -> None:
    google.send_iss = True  # discovery says authorization_response_iss_parameter_supported
    start = client.get("/login/federated/google", {"next": "/account/"})
    params = google.authorize(start["Location"])
    params.pop("iss")
    with recorded() as events:
        response = client.get("/login/federated/google/callback", params)
    assert response.status_code == 400
    assert [e.error_code for e in events if e.event_type == "federation.failed"] == [
        "issuer_mismatch"
    ]
