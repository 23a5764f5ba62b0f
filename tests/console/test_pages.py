"""The staff console's pages, through the real middleware stack (CSRF enforced)."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client as HttpClient

from apps.sessions.models import LoginSession
from apps.sessions.services import session_end
from apps.tokens.models import BackchannelLogoutDelivery
from tests.console.conftest import (
    PERSON_IP,
    SOME_ID,
    add_session,
    audited,
    confirm,
    csrf_token,
    new_session,
)

pytestmark = pytest.mark.django_db

PAGES = [
    "/console/users/",
    "/console/users/?q=ada@example.com",
    f"/console/users/{SOME_ID}/",
    f"/console/users/{SOME_ID}/sessions/revoke/",
    "/console/sessions/",
    f"/console/sessions/{SOME_ID}/revoke/",
    f"/console/sessions/{SOME_ID}/compromise/",
]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client: HttpClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/login?next=/console/")


@pytest.mark.parametrize("path", PAGES)
def test_people_who_are_not_staff_are_refused(outsider: HttpClient, path: str) -> None:
    # OWASP ASVS 4.1.1: enforced on the server, whatever the page
    assert outsider.get(path, headers={"Accept": "text/html"}).status_code == 403


def test_a_person_who_is_not_staff_cannot_revoke(outsider, person_session) -> None:
    path = f"/console/sessions/{person_session.pk}/revoke/"
    token = csrf_token(outsider.get("/login").content)

    assert outsider.post(path, {"csrfmiddlewaretoken": token}).status_code == 403
    person_session.refresh_from_db()
    assert person_session.ended_at is None


def test_find_a_user_by_email_in_any_case(staff, person) -> None:
    response = staff.get("/console/users/", {"q": "  ADA@Example.com "})

    assert response.status_code == 302
    assert response["Location"] == f"/console/users/{person.pk}/"


def test_find_a_user_by_id(staff, person) -> None:
    response = staff.get("/console/users/", {"q": str(person.pk)})

    assert response["Location"] == f"/console/users/{person.pk}/"


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("not-a-uuid", 400, "A user id is a UUID"),
        ("ada@", 400, "Enter a valid email address."),
        ("x" * 300, 400, "A user id is a UUID"),
        ("nobody@example.com", 404, "No user has the email address or id"),
        (str(uuid.uuid4()), 404, "No user has the email address or id"),
    ],
)
def test_a_search_that_finds_no_one_says_why(staff, query, status, message) -> None:
    response = staff.get("/console/users/", {"q": query})

    assert response.status_code == status
    assert message in response.content.decode()


def test_a_malformed_id_in_the_address_is_a_404(staff) -> None:
    assert staff.get("/console/users/not-a-uuid/").status_code == 404
    assert staff.get(f"/console/users/{uuid.uuid4()}/").status_code == 404
    assert staff.get(f"/console/sessions/{uuid.uuid4()}/revoke/").status_code == 404


def test_user_page_shows_sessions_and_events(staff, person, person_session) -> None:
    ended = add_session(person, ip_address="203.0.113.5")
    session_end(session=ended, reason="logout")
    BackchannelLogoutDelivery.objects.create(
        session=ended, client_id="rp-down", status="failed", attempts=5, last_error="HTTP 503"
    )
    BackchannelLogoutDelivery.objects.create(session=ended, client_id="rp-up", status="delivered")

    page = staff.get(f"/console/users/{person.pk}/").content.decode()

    assert "ada@example.com" in page
    assert str(person_session.pk)[:8] in page
    assert PERSON_IP in page
    assert "Firefox on Linux" in page  # the device, from the session context
    assert person_session.device_id[:12] in page
    assert "Mozilla/5.0 (X11; Linux x86_64; rv:128.0)" in page  # the user agent
    assert "example-rp" in page  # a client that got tokens in the session
    assert "live" in page
    assert "logout" in page  # the ended one, with its reason
    assert "login.succeeded" in page  # recent security events
    assert f"/console/sessions/{person_session.pk}/revoke/" in page
    assert f"/console/sessions/{ended.pk}/revoke/" not in page  # nothing left to revoke
    assert "Logouts not delivered" in page
    assert "rp-down" in page
    assert "HTTP 503" in page
    assert "rp-up" not in page  # told: nothing to do


def test_a_get_never_revokes(staff, person_session) -> None:
    response = staff.get(f"/console/sessions/{person_session.pk}/revoke/")

    assert response.status_code == 200
    assert f"Revoke session {str(person_session.pk)[:8]} of ada@example.com?" in (
        response.content.decode()
    )
    person_session.refresh_from_db()
    assert person_session.ended_at is None


def test_a_post_without_the_csrf_token_is_refused(staff, person_session) -> None:
    # OWASP ASVS 4.2.2: state-changing requests carry an anti-CSRF token
    response = staff.post(f"/console/sessions/{person_session.pk}/revoke/")

    assert response.status_code == 403
    person_session.refresh_from_db()
    assert person_session.ended_at is None


def test_revoke_a_session(staff, operator, person_session) -> None:
    response = confirm(staff, f"/console/sessions/{person_session.pk}/revoke/")

    assert response.redirect_chain[-1][0] == f"/console/users/{person_session.user_id}/"
    assert f"Session {str(person_session.pk)[:8]} revoked." in response.content.decode()
    person_session.refresh_from_db()
    assert person_session.end_reason == "operator"
    [event] = audited("session.revoked", operator)
    assert event.session_id == str(person_session.pk)
    assert event.user_id == str(person_session.user_id)


def test_revoking_an_ended_session_says_so(staff, operator, person_session) -> None:
    session_end(session=person_session, reason="logout")

    response = confirm(staff, f"/console/sessions/{person_session.pk}/revoke/")

    assert "had already ended" in response.content.decode()
    assert audited("session.revoked", operator) == []


def test_revoke_every_session_of_a_user(staff, operator, person, person_session) -> None:
    second = add_session(person)

    response = confirm(staff, f"/console/users/{person.pk}/sessions/revoke/")

    assert "2 live sessions of ada@example.com revoked." in response.content.decode()
    assert not LoginSession.objects.filter(user=person, ended_at__isnull=True).exists()
    revoked = {event.session_id for event in audited("session.revoked", operator)}
    assert revoked == {str(person_session.pk), str(second.pk)}


def test_mark_a_session_compromised(staff, operator, person_session) -> None:
    response = confirm(staff, f"/console/sessions/{person_session.pk}/compromise/")

    assert "marked compromised and ended" in response.content.decode()
    person_session.refresh_from_db()
    assert person_session.compromised
    assert person_session.ended_at is not None
    assert len(audited("session.compromised", operator)) == 1
    assert len(audited("session.revoked", operator)) == 1


def test_sessions_list_filters(staff, person, person_session) -> None:
    other = add_session(person, ip_address="203.0.113.5", device_id="d-other")
    session_end(session=other, reason="logout")

    def listed(**query: str) -> set[str]:
        response = staff.get("/console/sessions/", query)
        assert response.status_code == 200
        return {s.pk for s in response.context["page"].sessions}

    assert listed() >= {person_session.pk, other.pk}
    assert listed(email="ADA@example.com") == {person_session.pk, other.pk}
    assert listed(ip_address="203.0.113.5") == {other.pk}
    assert listed(device_id="d-other") == {other.pk}
    assert listed(email="ada@example.com", live_only="on") == {person_session.pk}
    assert listed(email="nobody@example.com") == set()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"ip_address": "999.1.1.1"}, "Enter a valid IPv4 or IPv6 address."),
        ({"email": "not-an-address"}, "Enter a valid email address."),
        ({"after": "garbage"}, "This page link is malformed"),
        ({"after": "999999999999999999.00000000000000000000000000000000"}, "malformed"),
        ({"device_id": "d" * 65}, "at most 64 characters"),
    ],
)
def test_sessions_list_refuses_malformed_filters(staff, query, message) -> None:
    response = staff.get("/console/sessions/", query)

    assert response.status_code == 400
    assert message in response.content.decode()


def test_sessions_list_pages_with_a_cursor(staff, person, person_session) -> None:
    first = staff.get("/console/sessions/")
    assert first.context["links"]["next"] is None  # Ada's and the operator's: one page
    at = person_session.last_active_at
    LoginSession.objects.bulk_create(
        new_session(person, last_active_at=at) for _ in range(60)
    )  # same last_active_at: the id breaks the tie

    first = staff.get("/console/sessions/")
    second = staff.get(f"/console/sessions/?{first.context['links']['next']}")

    one = [s.pk for s in first.context["page"].sessions]
    two = [s.pk for s in second.context["page"].sessions]
    assert len(one) == 50
    assert len(two) == 12
    assert set(one) | set(two) == set(LoginSession.objects.values_list("pk", flat=True))
    assert second.context["links"]["next"] is None
    assert second.context["links"]["first"] == ""


def test_every_console_page_offers_sign_out_and_it_ends_the_session(staff) -> None:
    # OWASP ASVS 5.0 7.4.4: every authenticated page offers a visible way to log out.
    for path in ("/console/", "/console/users/", "/console/sessions/", "/console/audit/"):
        page = staff.get(path)
        assert page.status_code == 200, path
        assert b'<a href="/oauth/logout">Sign out</a>' in page.content, path
    confirm_page = staff.get("/oauth/logout")  # OIDC RP-Initiated Logout: asks, then ends
    assert confirm_page.status_code == 200
    blob = re.search(rb'name="request" value="([^"]*)"', confirm_page.content)
    assert blob is not None
    staff.post(
        "/oauth/logout/confirm",
        {
            "csrfmiddlewaretoken": csrf_token(confirm_page.content),
            "request": blob.group(1).decode(),
            "decision": "logout",
        },
    )
    assert staff.get("/console/").status_code == 302  # signed out: sent to sign in
