"""Invitations in the console and the admin API: operators make (the link shown once) and
withdraw them, every staff member lists them, each change recorded with the operator as
actor_id."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.accounts.invitations import invitation_create, token_digest
from apps.accounts.models import Organization, OrganizationInvitation, Role
from tests.accounts.factories import OrganizationFactory, RoleFactory
from tests.console.conftest import SOME_ID, signed_in_as
from tests.events import recorded

pytestmark = pytest.mark.django_db


@pytest.fixture
def org() -> Organization:
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def role() -> Role:
    return RoleFactory(name="member")


def _send(http: HttpClient, method: str, path: str, body: Any = None) -> Any:
    data = body if isinstance(body, str) else json.dumps(body if body is not None else {})
    return http.generic(method, f"/api/v1/{path}", data, content_type="application/json")


def _token(link: str) -> str:
    return link.rsplit("/invite/", 1)[1]


# --- console --------------------------------------------------------------------------------


def test_operator_makes_an_invitation_and_sees_the_link_once(org, role) -> None:
    http = signed_in_as("operator")
    page = http.get(f"/console/organizations/{org.pk}/invitations/new/")
    assert page.status_code == 200
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert csrf
    form = {"csrfmiddlewaretoken": csrf.group(1), "role": str(role.pk), "email": "",
            "max_uses": "3", "days": "7"}  # fmt: skip
    with recorded() as events:
        made = http.post(f"/console/organizations/{org.pk}/invitations/new/", form)
    assert made.status_code == 200
    assert made["Cache-Control"].startswith("max-age=0") or "no-cache" in made["Cache-Control"]
    link = re.search(r'id="invitation-link"[^>]*value="([^"]+)"', made.content.decode())
    assert link
    token = _token(unescape(link.group(1)))
    invitation = OrganizationInvitation.objects.get(organization=org)
    assert invitation.token_digest == token_digest(token)
    assert invitation.max_uses == 3
    [event] = events
    assert (event.event_type, event.action) == ("invitation.changed", "created")
    assert str(event.actor_id) == str(http.user.pk)  # type: ignore[attr-defined]

    listed = http.get(f"/console/organizations/{org.pk}/invitations/").content.decode()
    assert token not in listed  # the list never shows a link
    assert "0 of 3" in listed
    assert http.get(f"/invite/{token}").status_code == 200


def test_bad_invitation_form_is_a_400_naming_the_field(org, role) -> None:
    http = signed_in_as("operator", enforce_csrf_checks=False)
    for bad in ({"max_uses": "0"}, {"days": "91"}, {"email": "x@example.com\r\nBcc: y@z.com"},
                {"role": SOME_ID}, {"email": "a@example.com", "max_uses": "2"}):  # fmt: skip
        form = {"role": str(role.pk), "email": "", "max_uses": "1", "days": "7", **bad}
        response = http.post(f"/console/organizations/{org.pk}/invitations/new/", form)
        assert response.status_code == 400, bad
        assert b'class="error"' in response.content
    assert not OrganizationInvitation.objects.exists()


def test_operator_withdraws_an_invitation(org, role) -> None:
    invitation, token = invitation_create(organization=org, role=role, actor_id=None)
    http = signed_in_as("operator", enforce_csrf_checks=False)
    confirm = http.get(f"/console/invitations/{invitation.pk}/revoke/")
    assert b"Withdraw this invitation" in confirm.content
    invitation.refresh_from_db()
    assert invitation.revoked_at is None  # the GET changed nothing
    with recorded() as events:
        done = http.post(f"/console/invitations/{invitation.pk}/revoke/")
    assert done.status_code == 302
    [event] = events
    assert (event.action, str(event.actor_id)) == ("revoked", str(http.user.pk))  # type: ignore[attr-defined]
    assert http.get(f"/invite/{token}").status_code == 410


def test_viewer_reads_the_list_without_acting(org, role) -> None:
    invitation_create(organization=org, role=role, actor_id=None)
    http = signed_in_as("viewer")
    page = http.get(f"/console/organizations/{org.pk}/invitations/").content.decode()
    assert "0 of 1" in page
    assert "Withdraw" not in page
    assert "New invitation" not in page
    assert http.post(f"/console/organizations/{org.pk}/invitations/new/").status_code == 403


# --- admin API ------------------------------------------------------------------------------


def test_api_creates_lists_and_revokes(org, role) -> None:
    http = signed_in_as("operator", enforce_csrf_checks=False)
    with recorded() as events:
        made = _send(http, "POST", f"organizations/{org.pk}/invitations",
                     {"role": str(role.pk), "email": "Invited@Example.com"})  # fmt: skip
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["email"] == "invited@example.com"
    assert body["state"] == "active"
    assert body["max_uses"] == 1
    token = _token(body["url"])
    assert OrganizationInvitation.objects.get(pk=body["id"]).token_digest == token_digest(token)
    [event] = [e for e in events if e.event_type == "invitation.changed"]
    assert str(event.actor_id) == str(http.user.pk)  # type: ignore[attr-defined]

    listed = _send(http, "GET", f"organizations/{org.pk}/invitations")
    assert [row["id"] for row in listed.json()] == [body["id"]]
    assert "url" not in listed.json()[0]

    revoked = _send(http, "POST", f"invitations/{body['id']}/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    assert _send(http, "POST", f"invitations/{SOME_ID}/revoke").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "role"),
        ({"role": "not-a-uuid"}, "role"),
        ({"role": SOME_ID}, "role"),
        ({"email": 12}, "email"),
        ({"email": "x" * 300}, "email"),
        ({"email": "a@example.com\nBcc: b@example.com"}, "email"),
        ({"max_uses": 0}, "max_uses"),
        ({"max_uses": "many"}, "max_uses"),
        ({"days": 1000}, "days"),
    ],
)
def test_api_bad_input_is_a_400_naming_the_field(org, role, body, field) -> None:
    http = signed_in_as("operator", enforce_csrf_checks=False)
    given = {"role": str(role.pk), **body} if "role" not in body and body else body
    response = _send(http, "POST", f"organizations/{org.pk}/invitations", given)
    assert response.status_code == 400
    assert field in response.json()
    assert not OrganizationInvitation.objects.exists()


def test_api_body_that_is_not_json_is_a_400(org) -> None:
    http = signed_in_as("operator", enforce_csrf_checks=False)
    response = _send(http, "POST", f"organizations/{org.pk}/invitations", "{not json")
    assert response.status_code == 400
