"""The admin REST API: who may call it (staff session or admin-scoped bearer token), what it
answers, and that every change is audited against the caller."""

from __future__ import annotations

import uuid

import pytest
import yaml
from django.test import Client as HttpClient

from apps.sessions.models import LoginSession
from apps.sessions.services import session_end
from apps.tokens.services import client_create
from tests.console.conftest import (
    SOME_ID,
    access_token,
    add_session,
    audited,
    bearer,
    csrf_token,
    new_session,
)
from tests.tokens.conftest import TOKEN, form_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_token(operator) -> str:
    return access_token(operator, "openid admin")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/users?email=ada@example.com"),
        ("get", f"/api/v1/users/{SOME_ID}"),
        ("get", f"/api/v1/users/{SOME_ID}/sessions"),
        ("get", f"/api/v1/users/{SOME_ID}/events"),
        ("post", f"/api/v1/users/{SOME_ID}/sessions/revoke"),
        ("get", "/api/v1/sessions"),
        ("get", f"/api/v1/sessions/{SOME_ID}"),
        ("post", f"/api/v1/sessions/{SOME_ID}/revoke"),
        ("post", f"/api/v1/sessions/{SOME_ID}/compromise"),
        ("get", "/api/v1/federation/providers"),
        ("get", f"/api/v1/users/{SOME_ID}/identities"),
    ],
)
def test_anonymous_callers_are_challenged(client: HttpClient, method: str, path: str) -> None:
    # RFC 6750 §3: no credentials, 401 with a Bearer challenge
    response = getattr(client, method)(path)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer realm=")
    assert "error=" not in response["WWW-Authenticate"]


def test_people_who_are_not_staff_are_refused(outsider, person_session) -> None:
    assert outsider.get("/api/v1/sessions").status_code == 403
    assert outsider.get(f"/api/v1/sessions/{person_session.pk}").status_code == 403


def test_staff_session_reads_users_sessions_and_events(staff, person, person_session) -> None:
    [found] = staff.get("/api/v1/users", {"email": "ADA@example.com"}).json()["results"]
    assert found["id"] == str(person.pk)
    assert staff.get("/api/v1/users", {"id": str(person.pk)}).json()["results"] == [found]
    assert staff.get(f"/api/v1/users/{person.pk}").json() == found

    [listed] = staff.get(f"/api/v1/users/{person.pk}/sessions").json()["results"]
    assert listed["id"] == str(person_session.pk)
    assert listed["live"] is True
    assert listed["user_email"] == "ada@example.com"
    assert listed["ip_address"] == "198.51.100.7"
    assert listed["context"]["device"]["browser"] == "Firefox on Linux"
    assert [c["client_id"] for c in listed["clients"]] == ["example-rp"]
    assert staff.get(f"/api/v1/sessions/{person_session.pk}").json() == listed

    events = staff.get(f"/api/v1/users/{person.pk}/events").json()["results"]
    assert "login.succeeded" in [event["event_type"] for event in events]


def test_sessions_list_filters_and_pages(staff, person, person_session) -> None:
    LoginSession.objects.bulk_create(
        new_session(person, ip_address="203.0.113.5") for _ in range(55)
    )
    session_end(session=LoginSession.objects.filter(ip_address="203.0.113.5")[0], reason="logout")
    first = staff.get("/api/v1/sessions", {"ip_address": "203.0.113.5"}).json()
    second = staff.get(
        "/api/v1/sessions", {"ip_address": "203.0.113.5", "after": first["next"]}
    ).json()

    assert len(first["results"]) == 50
    assert len(second["results"]) == 5
    assert second["next"] is None
    live = {"ip_address": "203.0.113.5", "live_only": "true"}
    live_first = staff.get("/api/v1/sessions", live).json()
    live_second = staff.get("/api/v1/sessions", {**live, "after": live_first["next"]}).json()
    assert len(live_first["results"]) + len(live_second["results"]) == 54


def test_a_staff_session_post_needs_the_csrf_token(staff, operator, person_session) -> None:
    path = f"/api/v1/sessions/{person_session.pk}/revoke"

    refused = staff.post(path)
    token = csrf_token(staff.get(f"/console/sessions/{person_session.pk}/revoke/").content)
    revoked = staff.post(path, headers={"X-CSRFToken": token})

    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert revoked.status_code == 200
    assert revoked.json()["end_reason"] == "api"
    [event] = audited("session.revoked", operator)
    assert event.session_id == str(person_session.pk)


def test_an_admin_token_of_staff_may_act(admin_token, operator, person, person_session) -> None:
    http = HttpClient(enforce_csrf_checks=True)  # no cookies: a script with a token

    revoked = http.post(f"/api/v1/sessions/{person_session.pk}/revoke", headers=bearer(admin_token))
    again = http.post(f"/api/v1/sessions/{person_session.pk}/revoke", headers=bearer(admin_token))

    assert revoked.status_code == 200
    assert revoked.json()["live"] is False
    assert again.status_code == 200  # already ended: no change, no second event
    assert len(audited("session.revoked", operator)) == 1


def test_revoke_all_and_compromise_are_audited(admin_token, operator, person, person_session):
    http = HttpClient()
    second = add_session(person)

    compromised = http.post(f"/api/v1/sessions/{second.pk}/compromise", headers=bearer(admin_token))
    everything = http.post(
        f"/api/v1/users/{person.pk}/sessions/revoke", headers=bearer(admin_token)
    )

    assert compromised.json()["compromised"] is True
    assert compromised.json()["end_reason"] == "compromised"
    assert everything.json() == {"ended": 1}
    assert [e.session_id for e in audited("session.compromised", operator)] == [str(second.pk)]
    revoked = {event.session_id for event in audited("session.revoked", operator)}
    assert revoked == {str(second.pk), str(person_session.pk)}


def test_a_token_without_the_admin_scope_is_refused(operator) -> None:
    # RFC 6750 §3.1 insufficient_scope
    token = access_token(operator, "openid profile")

    response = HttpClient().get("/api/v1/sessions", headers=bearer(token))

    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]
    assert 'scope="admin"' in response["WWW-Authenticate"]


def test_an_admin_token_of_someone_not_staff_is_refused(person) -> None:
    token = access_token(person, "openid admin")

    assert HttpClient().get("/api/v1/sessions", headers=bearer(token)).status_code == 403


def test_an_admin_token_of_a_deactivated_user_is_refused(operator, admin_token) -> None:
    operator.is_active = False
    operator.save(update_fields=["is_active"])

    response = HttpClient().get("/api/v1/sessions", headers=bearer(admin_token))

    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_a_client_credentials_token_is_refused(db) -> None:
    client, secret = client_create(  # first-party: the admin scope is granted, then refused
        name="Backend job", redirect_uris=[], grant_types=["client_credentials"], skip_consent=True
    )
    data = {"grant_type": "client_credentials", "scope": "admin"}
    issued = form_post(HttpClient(), TOKEN, data, auth=(client.client_id, secret or ""))
    assert issued.status_code == 200, issued.content

    response = HttpClient().get("/api/v1/sessions", headers=bearer(issued.json()["access_token"]))

    assert response.status_code == 403
    assert "client_credentials" in response.json()["detail"]


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * 9000])
def test_a_malformed_bearer_token_is_a_401(token: str) -> None:
    response = HttpClient().get("/api/v1/sessions", headers=bearer(token))

    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/users/not-a-uuid", 404),
        (f"/api/v1/users/{uuid.uuid4()}", 404),
        (f"/api/v1/sessions/{uuid.uuid4()}", 404),
        (f"/api/v1/users/{uuid.uuid4()}/events", 404),
        ("/api/v1/sessions/123/revoke", 404),
        ("/api/v1/users", 400),
        ("/api/v1/users?id=not-a-uuid", 400),
        ("/api/v1/users?email=nope", 400),
        ("/api/v1/users?email=a@example.com&id=" + SOME_ID, 400),
        ("/api/v1/sessions?ip_address=300.1.1.1", 400),
        ("/api/v1/sessions?after=garbage", 400),
        ("/api/v1/sessions?device_id=" + "d" * 65, 400),
        (f"/api/v1/federation/providers/{uuid.uuid4()}", 404),
        ("/api/v1/federation/providers/acme", 404),
        (f"/api/v1/users/{uuid.uuid4()}/identities", 404),
    ],
)
def test_malformed_input_is_a_clear_4xx(admin_token, path: str, status: int) -> None:
    response = HttpClient().get(path, headers=bearer(admin_token) | {"Accept": "application/json"})

    assert response.status_code == status
    body = response.json()
    assert body  # says what was wrong: {"detail": ...}, {"error": ...} or {field: [...]}


def test_malformed_query_says_which_field(staff) -> None:
    body = staff.get("/api/v1/users", {"id": "nope"}).json()

    assert body == {"id": ["A user id is a UUID, like the sub of a token."]}
    assert staff.get("/api/v1/users").json() == {
        "non_field_errors": ["Give an email address or a user id."]
    }


def test_unknown_user_finds_nothing(staff) -> None:
    assert staff.get("/api/v1/users", {"email": "nobody@example.com"}).json() == {"results": []}


def test_schema_is_for_the_callers_of_the_api_only(
    client: HttpClient, outsider: HttpClient, admin_token: str
) -> None:
    assert client.get("/api/schema/").status_code == 401
    assert outsider.get("/api/schema/").status_code == 403
    assert HttpClient().get("/api/schema/", headers=bearer(admin_token)).status_code == 200


def test_schema_lists_every_path(staff: HttpClient) -> None:
    response = staff.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Tessera admin API"
    assert set(schema["paths"]) == {
        "/api/v1/users",
        "/api/v1/users/{user_id}",
        "/api/v1/users/{user_id}/staff-role",
        "/api/v1/staff",
        "/api/v1/users/{user_id}/sessions",
        "/api/v1/users/{user_id}/events",
        "/api/v1/users/{user_id}/export",
        "/api/v1/users/{user_id}/erase",
        "/api/v1/users/{user_id}/sessions/revoke",
        "/api/v1/users/{user_id}/offline-grants",
        "/api/v1/users/{user_id}/offline-grants/revoke",
        "/api/v1/users/{user_id}/revoke-all",
        "/api/v1/users/{user_id}/verification/send",
        "/api/v1/users/{user_id}/password-reset/send",
        "/api/v1/users/{user_id}/factors",
        "/api/v1/users/{user_id}/factors/reset",
        "/api/v1/users/{user_id}/mfa-required",
        "/api/v1/users/{user_id}/block",
        "/api/v1/users/{user_id}/unblock",
        "/api/v1/threats/assessments",
        "/api/v1/threats/blocked",
        "/api/v1/threats/rules",
        "/api/v1/threats/rules/{rule_id}",
        "/api/v1/offline-grants/{grant_id}",
        "/api/v1/offline-grants/{grant_id}/revoke",
        "/api/v1/audit/events",
        "/api/v1/audit/events.csv",
        "/api/v1/audit/events.jsonl",
        "/api/v1/sessions",
        "/api/v1/sessions/revoke-all",
        "/api/v1/sessions/{session_id}",
        "/api/v1/sessions/{session_id}/revoke",
        "/api/v1/sessions/{session_id}/compromise",
        "/api/v1/lockouts",
        "/api/v1/lockouts/unlock",
        "/api/v1/ratelimit/blocks",
        "/api/v1/ratelimit/blocks/clear",
        "/api/v1/clients",
        "/api/v1/clients/{client_id}",
        "/api/v1/clients/{client_id}/secret",
        "/api/v1/clients/{client_id}/disable",
        "/api/v1/clients/{client_id}/enable",
        "/api/v1/keys",
        "/api/v1/keys/rotate",
        "/api/v1/organizations",
        "/api/v1/organizations/{organization_id}",
        "/api/v1/organizations/{organization_id}/workspaces",
        "/api/v1/organizations/{organization_id}/invitations",
        "/api/v1/invitations/{invitation_id}/revoke",
        "/api/v1/organizations/{organization_id}/members",
        "/api/v1/organizations/{organization_id}/members/bulk",
        "/api/v1/organizations/{organization_id}/members/{user_id}",
        "/api/v1/workspaces/{workspace_id}",
        "/api/v1/workspaces/{workspace_id}/groups",
        "/api/v1/workspaces/{workspace_id}/members",
        "/api/v1/workspaces/{workspace_id}/members/{user_id}",
        "/api/v1/groups/{group_id}",
        "/api/v1/groups/{group_id}/members",
        "/api/v1/groups/{group_id}/members/{user_id}",
        "/api/v1/permissions",
        "/api/v1/permissions/{permission_id}",
        "/api/v1/roles",
        "/api/v1/roles/{role_id}",
        "/api/v1/users/{user_id}/claims-preview",
        "/api/v1/users/{user_id}/memberships",
        "/api/v1/users/{user_id}/identities",
        "/api/v1/users/{user_id}/identities/{identity_id}",
        "/api/v1/federation/providers",
        "/api/v1/federation/providers/{provider_id}",
    }
    assert schema["components"]["securitySchemes"]["adminBearer"]["scheme"] == "bearer"


def test_schema_as_json(staff: HttpClient) -> None:
    response = staff.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    assert "/api/v1/sessions" in response.json()["paths"]
