"""The hosted sign-in page."""

from __future__ import annotations

import pytest

from apps.accounts.services import user_create
from apps.core.models import SecurityEvent
from apps.sessions.models import LoginSession
from apps.sessions.selectors import SESSION_KEY
from tests.signin.browser import force_sign_in

pytestmark = pytest.mark.django_db
PASSWORD = "a long correct passphrase"


@pytest.fixture
def person():
    return user_create(email="ada@example.com", password=PASSWORD)


def test_login_rotates_the_session_key_and_opens_a_login_session(client, person) -> None:
    # OWASP ASVS 3.2.1 (session fixation): a new session id at authentication.
    client.get("/login")
    before = client.session.session_key

    response = client.post(
        "/login", {"email": "Ada@Example.com", "password": PASSWORD, "next": "/oauth/authorize?x=1"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/oauth/authorize?x=1"
    assert client.session.session_key != before
    session = LoginSession.objects.get(user=person)
    assert client.session[SESSION_KEY] == str(session.pk)
    assert session.amr == ["pwd"]
    assert session.ip_address == "127.0.0.1"
    assert SecurityEvent.objects.filter(
        event_type="login.succeeded", session_id=str(session.pk)
    ).exists()


@pytest.mark.parametrize(
    "next_url", ["https://evil.example.com/", "//evil.example.com/x", "javascript:alert(1)"]
)
def test_login_never_redirects_off_site(client, person, next_url) -> None:
    # OWASP ASVS 5.1.5: no open redirect through `next`.
    response = client.post(
        "/login", {"email": "ada@example.com", "password": PASSWORD, "next": next_url}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.parametrize(
    ("form", "reason", "email", "targeted"),
    [
        (
            {"email": "Ada@Example.com", "password": "wrong"},
            "wrong_credentials",
            "Ada@Example.com",  # as typed; the account is found whatever the case
            True,
        ),
        (
            {"email": "nobody@example.com", "password": PASSWORD},
            "wrong_credentials",
            "nobody@example.com",
            False,
        ),
        ({"email": "not-an-email", "password": "x"}, "malformed_input", "not-an-email", False),
        (
            {"email": "a" * 5000 + "@example.com", "password": "x" * 5000},
            "malformed_input",
            "a" * 254,
            False,
        ),
        ({}, "malformed_input", "", False),
    ],
)
def test_failed_login_is_one_generic_message_and_a_security_event(
    client, person, form, reason, email, targeted
) -> None:
    response = client.post("/login", form)

    assert response.status_code == 400
    assert b"Email or password is incorrect." in response.content
    assert not LoginSession.objects.exists()
    event = SecurityEvent.objects.get(event_type="login.failed")
    # One failure is routine (low): bursts are for rate limits and threat rules to raise.
    assert (event.success, event.severity) == (False, "low")
    assert (event.error_code, event.error_message) == (reason, "Email or password is incorrect.")
    # The account it targeted, so an attack on one person shows on their timeline; an
    # unknown identifier stays in metadata only, as typed; the password never (below).
    assert event.user_id == (str(person.pk) if targeted else "")
    assert event.resource_id == event.user_id
    assert event.metadata == {"provider": "local", "email": email}


def test_login_form_requires_a_csrf_token(person) -> None:
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/login", {"email": "ada@example.com", "password": PASSWORD})

    assert response.status_code == 403
    assert not LoginSession.objects.exists()


def test_login_hint_prefills_the_email(client) -> None:
    response = client.get("/login", {"login_hint": "grace@example.com"})

    assert b'value="grace@example.com"' in response.content


def test_home_says_who_is_signed_in_and_offers_sign_out(client, person) -> None:
    anonymous = client.get("/")
    force_sign_in(client, person)
    signed_in = client.get("/")

    assert b"Sign in" in anonymous.content
    assert b"ada@example.com" in signed_in.content
    assert b'href="/oauth/logout"' in signed_in.content
