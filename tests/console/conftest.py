"""An operator, a person with a real login session, and the ways each signs in to the console
and the admin API."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from apps.accounts.services import user_create
from apps.core.models import SecurityEvent
from apps.sessions.models import LoginSession
from apps.sessions.services import session_client_record
from apps.tokens.models import OfflineGrant
from apps.tokens.services import client_create, consent_grant
from tests.rp import PASSWORD, REDIRECT_URI, RegisteredClient
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import Flow, client_redirect, new_pkce

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PERSON_IP = "198.51.100.7"


# A well-formed user or session id that no row has.
SOME_ID = "3f2a6c1e-0000-4000-8000-000000000001"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(autouse=True)
def _audit_store(empty_audit_store) -> None:
    """Pages show events from the audit store: its tables exist and hold no other test's."""


@pytest.fixture
def operator(db):
    """The staff member most tests sign in as: an administrator, who may do everything."""
    return user_create(email="ops@example.com", password=PASSWORD, staff_role="administrator")


@pytest.fixture
def staff(operator) -> HttpClient:
    """The operator's browser, signed in, with Django's CSRF checks on as in production."""
    http = HttpClient(enforce_csrf_checks=True)
    force_sign_in(http, operator)
    return http


# Who may sign in to the console, weakest first: no one, a person who is not staff, then each
# console role (StaffRole: viewer < operator < administrator).
ROLES = ("anonymous", "nobody", "viewer", "operator", "administrator")


def signed_in_as(role: str, *, enforce_csrf_checks: bool = True) -> HttpClient:
    """A browser of a new person with `role` ("nobody": not staff; "anonymous": no one
    signed in)."""
    http = HttpClient(enforce_csrf_checks=enforce_csrf_checks)
    if role != "anonymous":
        user = user_create(
            email=f"{role}-{uuid.uuid4().hex[:8]}@example.com",
            staff_role="" if role == "nobody" else role,
        )
        force_sign_in(http, user)
        http.user = user  # type: ignore[attr-defined]  # the test may need who it is
    return http


@pytest.fixture
def viewer(db) -> HttpClient:
    """A signed-in staff member with the viewer role (reads only)."""
    return signed_in_as("viewer")


@pytest.fixture
def operator_staff(db) -> HttpClient:
    """A signed-in staff member with the operator role (also acts on people)."""
    return signed_in_as("operator")


@pytest.fixture
def administrator(db) -> HttpClient:
    """A signed-in staff member with the administrator role (the `staff` fixture is one too)."""
    return signed_in_as("administrator")


@pytest.fixture
def outsider(db) -> HttpClient:
    """A signed-in person who is not staff."""
    http = HttpClient(enforce_csrf_checks=True)
    force_sign_in(http, user_create(email="eve@example.com", password=PASSWORD))
    return http


@pytest.fixture
def person_session(person) -> LoginSession:
    """Ada signed in through the hosted page from Firefox, and one client got tokens."""
    http = HttpClient(REMOTE_ADDR=PERSON_IP, HTTP_USER_AGENT=FIREFOX)
    http.get("/login")  # the device cookie
    assert http.post("/login", {"email": person.email, "password": PASSWORD}).status_code == 302
    session = LoginSession.objects.get(pk=http.session["tessera_sid"])
    session_client_record(session=session, client_id="example-rp")
    return session


def new_session(user, **fields: Any) -> LoginSession:
    """An unsaved login session of `user`, live for an hour unless `fields` say otherwise."""
    now = timezone.now()
    values = {"acr": "x", "amr": ["pwd"], "created_at": now, "last_active_at": now}
    return LoginSession(user=user, **{"expires_at": now + timedelta(hours=1), **values, **fields})


def add_session(user, **fields: Any) -> LoginSession:
    session = new_session(user, **fields)
    session.save(force_insert=True)
    return session


def csrf_token(html: bytes) -> str:
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1).decode()


def confirm(http: HttpClient, path: str):
    """GET the confirmation page, then POST its form, as the operator's browser does."""
    page = http.get(path)
    assert page.status_code == 200
    return http.post(path, {"csrfmiddlewaretoken": csrf_token(page.content)}, follow=True)


def audited(event_type: str, actor) -> list[SecurityEvent]:
    """In the order they happened: rows reach the outbox in another order when some came
    through the process's journal (recorded outside a transaction, drained later)."""
    return list(
        SecurityEvent.objects.filter(event_type=event_type, actor_id=str(actor.pk)).order_by(
            "occurred_at"
        )
    )


def access_token(user, scope: str) -> str:
    """An access token issued to `user` through the real authorization code flow, by a
    first-party client (only those may be granted the admin scope: apps.tokens.scopes)."""
    client, secret = client_create(
        name=f"Ops tool {scope}",
        redirect_uris=["https://rp.example.com/callback"],
        grant_types=["authorization_code"],
        skip_consent=True,
    )
    consent_grant(user_id=user.pk, client=client, scopes=scope.split())
    http = HttpClient()
    force_sign_in(http, user)
    tokens = Flow(http, RegisteredClient(client.client_id, secret)).tokens(scope=scope)
    token: str = tokens["access_token"]
    return token


@dataclass(frozen=True)
class Offline:
    """An offline grant as the client holds it: the grant's row and the tokens it received."""

    grant: OfflineGrant
    rp: RegisteredClient
    access_token: str
    refresh_token: str


def offline_grant(
    user, *, name: str = "Mail app", scope: str = "openid email offline_access"
) -> Offline:
    """`user`, signed in, lets a client registered for refresh tokens stay connected: OIDC
    Core §11, offline_access asked for with prompt=consent and allowed on the consent page,
    then the code exchanged at the token endpoint."""
    client, secret = client_create(
        name=name, redirect_uris=[REDIRECT_URI], grant_types=["authorization_code", "refresh_token"]
    )
    rp = RegisteredClient(client.client_id, secret)
    browser = HttpClient()
    force_sign_in(browser, user)
    flow, pkce = Flow(browser, rp), new_pkce()
    asked = flow.authorize(pkce, scope=scope, prompt="consent")
    assert asked.status_code == 200, asked.content[:500]
    blob = re.search(rb'name="request" value="([^"]+)"', asked.content)
    assert blob, "no consent page"
    allowed = browser.post(
        "/oauth/authorize/consent",
        {"request": unescape(blob.group(1).decode()), "decision": "allow"},
    )
    exchanged = flow.exchange(client_redirect(allowed)["code"], pkce.verifier)
    assert exchanged.status_code == 200, exchanged.content
    tokens = exchanged.json()
    assert "offline_access" in tokens["scope"].split()
    grant = OfflineGrant.objects.select_related("client").get(user=user, client=client)
    return Offline(grant, rp, tokens["access_token"], tokens["refresh_token"])
