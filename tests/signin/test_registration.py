"""Registration (/register) and invitation links (/invite/<token>): nothing is created until
the address is verified; the same answer whether or not the address has an account (OWASP
Authentication Cheat Sheet, account enumeration at registration); rate limited; bad input
gets a clear error, never a 500."""

from __future__ import annotations

import re
import uuid
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client as HttpClient

from apps.accounts.invitations import invitation_create, invitation_revoke
from apps.accounts.models import OrganizationMembership, User
from apps.accounts.services import user_create
from apps.ratelimit import limiter
from apps.ratelimit.rules import rules_reload
from apps.signin.registration import registration_pending
from tests.accounts.factories import OrganizationFactory, RoleFactory
from tests.conftest import Mailbox
from tests.events import recorded
from tests.ratelimit.conftest import set_rule
from tests.servers import wait_for

PASSWORD = "correct horse battery staple 42"
CONFIRM = "/register/confirm/"


def _address() -> str:
    return f"new-{uuid.uuid4().hex[:10]}@example.com"


def _form(email: str, **overrides: str) -> dict[str, str]:
    return {"name": "Ada Lovelace", "email": email, "password1": PASSWORD,
            "password2": PASSWORD, **overrides}  # fmt: skip


def _visible(html: bytes) -> str:
    """The page's text without the per-request CSRF token and CSP nonce."""
    page = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html.decode())
    return re.sub(r'nonce="[^"]*"', "", page)


@pytest.fixture
def open_registration(settings: Any) -> None:
    settings.REGISTRATION = "open"


@pytest.fixture
def invitation(db: None) -> tuple[Any, str]:
    return invitation_create(
        organization=OrganizationFactory(name="Analytical Engines"),
        role=RoleFactory(),
        actor_id=None,
        max_uses=5,
    )


# --- closed by default --------------------------------------------------------------------


@pytest.mark.django_db
def test_registration_is_off_by_default(client: HttpClient) -> None:
    response = client.get("/register")
    assert response.status_code == 404
    assert b"Registration is closed" in response.content
    email = _address()
    assert client.post("/register", _form(email)).status_code == 404
    assert not User.objects.filter(email=email).exists()
    assert b"Create an account" not in client.get("/login").content


@pytest.mark.django_db
def test_login_page_links_to_registration_when_open(
    client: HttpClient, open_registration: None
) -> None:
    page = client.get("/login").content.decode()
    assert 'href="/register"' in page
    assert "Create an account" in page
    assert client.get("/register").status_code == 200


# --- the whole road -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_registration_creates_a_verified_account_only_when_confirmed(
    client: HttpClient, open_registration: None, mailbox: Mailbox
) -> None:
    email = _address()
    with recorded() as events:
        response = client.post("/register", _form(email.upper()))
    assert response.status_code == 200
    assert b"Check your mail" in response.content
    assert not User.objects.filter(email=email).exists()  # nothing until verified
    [requested] = [e for e in events if e.event_type == "registration.requested"]
    assert requested.metadata["existing_account"] is False
    assert requested.metadata["via"] == "registration"

    # not yet an account: the sign-in is refused like any unknown address
    refused = client.post("/login", {"email": email, "password": PASSWORD})
    assert refused.status_code == 400

    message = mailbox.wait_for(to=email)
    assert "Confirm your e-mail address" in str(message["Subject"])
    assert PASSWORD not in message.as_string()
    path = _path(message, CONFIRM)
    token = path.removeprefix(CONFIRM)

    # GET (a mail scanner's prefetch) spends nothing
    shown = client.get(path)
    assert shown.status_code == 200
    assert b"Confirm and create my account" in shown.content
    assert registration_pending(token) is not None
    assert not User.objects.filter(email=email).exists()

    with recorded() as events:
        done = client.post(path)
    assert done.status_code == 200
    assert b"Your account is ready" in done.content
    user = User.objects.get(email=email)
    assert user.email_verified
    assert user.name == "Ada Lovelace"
    assert user.check_password(PASSWORD)
    [created] = [e for e in events if e.event_type == "user.created"]
    assert created.metadata["via"] == "registration"

    # single use
    again = client.post(path)
    assert again.status_code == 410
    assert b"not valid" in again.content
    assert client.get(path).status_code == 410

    signed_in = client.post("/login", {"email": email, "password": PASSWORD})
    assert signed_in.status_code == 302


@pytest.mark.django_db(transaction=True)
def test_existing_address_gets_the_same_page_and_another_mail(
    client: HttpClient, open_registration: None, mailbox: Mailbox
) -> None:
    email = _address()
    user_create(email=email, password=PASSWORD)
    fresh = _address()
    for_new = client.post("/register", _form(fresh))
    with recorded() as events:
        for_existing = client.post("/register", _form(email))
    assert for_existing.status_code == for_new.status_code == 200
    assert _visible(for_existing.content).replace(email, "X") == _visible(for_new.content).replace(
        fresh, "X"
    )
    [requested] = [e for e in events if e.event_type == "registration.requested"]
    assert requested.metadata["existing_account"] is True

    message = mailbox.wait_for(to=email)
    assert "Someone tried to register" in str(message["Subject"])
    assert CONFIRM not in Mailbox.text(message)
    assert "/login?login_hint=" in Mailbox.text(message)
    assert User.objects.filter(email=email).count() == 1


@pytest.mark.django_db(transaction=True)
def test_expired_link_is_refused(
    client: HttpClient, open_registration: None, mailbox: Mailbox, settings: Any
) -> None:
    settings.REGISTRATION_LINK_MAX_AGE = 1
    email = _address()
    client.post("/register", _form(email))
    path = _path(mailbox.wait_for(to=email), CONFIRM)
    wait_for(lambda: registration_pending(path.removeprefix(CONFIRM)) is None, 10, "not expired")
    response = client.post(path)
    assert response.status_code == 410
    assert not User.objects.filter(email=email).exists()


@pytest.mark.django_db(transaction=True)
def test_link_of_a_registration_closed_meanwhile_makes_nothing(
    client: HttpClient, open_registration: None, mailbox: Mailbox, settings: Any
) -> None:
    email = _address()
    client.post("/register", _form(email))
    path = _path(mailbox.wait_for(to=email), CONFIRM)
    settings.REGISTRATION = "off"
    response = client.post(path)
    assert response.status_code == 410
    assert b"closed" in response.content
    assert not User.objects.filter(email=email).exists()


# --- invitations ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_invitation_registers_and_makes_a_member_with_registration_off(
    client: HttpClient, invitation: tuple[Any, str], mailbox: Mailbox
) -> None:
    row, token = invitation
    page = client.get(f"/invite/{token}")
    assert page.status_code == 200
    assert b"Join Analytical Engines" in page.content
    email = _address()
    assert client.post(f"/invite/{token}", _form(email)).status_code == 200
    message = mailbox.wait_for(to=email)
    assert "Analytical Engines" in Mailbox.text(message)
    with recorded() as events:
        done = client.post(_path(message, CONFIRM))
    assert done.status_code == 200
    assert b"Analytical Engines" in done.content
    user = User.objects.get(email=email)
    assert user.email_verified
    membership = OrganizationMembership.objects.get(user=user)
    assert membership.organization_id == row.organization_id
    row.refresh_from_db()
    assert row.uses == 1
    kinds = {(e.event_type, e.action) for e in events}
    assert ("invitation.changed", "used") in kinds
    created = next(e for e in events if e.event_type == "user.created")
    assert created.metadata == {**created.metadata, "via": "invitation",
                                "invitation_id": str(row.pk)}  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_invitation_revoked_after_the_mail_makes_no_account(
    client: HttpClient, invitation: tuple[Any, str], mailbox: Mailbox
) -> None:
    row, token = invitation
    email = _address()
    client.post(f"/invite/{token}", _form(email))
    path = _path(mailbox.wait_for(to=email), CONFIRM)
    invitation_revoke(invitation=row, actor_id=None)
    response = client.post(path)
    assert response.status_code == 410
    assert b"withdrawn" in response.content
    assert not User.objects.filter(email=email).exists()


@pytest.mark.django_db
def test_invitation_for_one_address_refuses_another(client: HttpClient) -> None:
    _, token = invitation_create(
        organization=OrganizationFactory(), role=RoleFactory(), actor_id=None,
        email="invited@example.com",
    )  # fmt: skip
    page = client.get(f"/invite/{token}")
    assert b'value="invited@example.com"' in page.content
    response = client.post(f"/invite/{token}", _form("someone-else@example.com"))
    assert response.status_code == 400
    assert b"This invitation is for another e-mail address." in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("state", ["revoked", "expired", "used"])
def test_unusable_invitation_shows_a_clear_page(client: HttpClient, state: str) -> None:
    from datetime import timedelta

    from django.utils import timezone

    row, token = invitation_create(
        organization=OrganizationFactory(), role=RoleFactory(), actor_id=None
    )
    if state == "revoked":
        invitation_revoke(invitation=row, actor_id=None)
    elif state == "expired":
        type(row).objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(1))
    else:
        type(row).objects.filter(pk=row.pk).update(uses=1)
    for response in (
        client.get(f"/invite/{token}"),
        client.post(f"/invite/{token}", _form(_address())),
    ):
        assert response.status_code == 410
        assert b"Invitation not usable" in response.content


@pytest.mark.django_db
def test_signed_in_person_joins_with_their_account(
    client: HttpClient, invitation: tuple[Any, str]
) -> None:
    from tests.signin.browser import force_sign_in

    row, token = invitation
    person = user_create(email=_address(), password=PASSWORD)
    anonymous = client.get(f"/invite/{token}").content.decode()
    assert f"/login?next=%2Finvite%2F{token}" in anonymous
    force_sign_in(client, person)
    page = client.get(f"/invite/{token}")
    assert b"Join Analytical Engines" in page.content
    assert b'name="password1"' not in page.content
    joined = client.post(f"/invite/{token}", {"action": "join"})
    assert joined.status_code == 200
    assert b"You are now a member" in joined.content
    assert OrganizationMembership.objects.filter(
        user=person, organization=row.organization
    ).exists()
    again = client.post(f"/invite/{token}", {"action": "join"})
    assert again.status_code == 400
    assert b"already a member" in again.content


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"name": "A" * 201}, "at most 200 characters"),
        ({"name": "Ada\r\nBcc: eve@example.com"}, "control characters"),
        ({"name": "Ada\x00"}, "Null characters are not allowed"),
        ({"name": "Ada\x07bell"}, "control characters"),
        ({"email": "ada@example.com\r\nBcc: eve@example.com"}, "valid email address"),
        ({"email": "ada@example.com\nBcc:eve@example.com"}, "valid email address"),
        ({"email": "a" * 250 + "@example.com"}, "at most 254 characters"),
        ({"email": "not an address"}, "valid email address"),
        ({"password2": "something else entirely"}, "The two passwords differ."),
        ({"password1": "short", "password2": "short"}, "Use at least 12 characters"),
        ({"password1": "x" * 1025, "password2": "x" * 1025}, "at most 1024 characters"),
        ({"name": ""}, "This field is required."),
    ],
)
def test_bad_input_is_a_clear_error(
    client: HttpClient, open_registration: None, overrides: dict[str, str], says: str
) -> None:
    data = {**_form(_address()), **overrides}
    response = client.post("/register", data)
    assert response.status_code == 400
    assert says in response.content.decode().replace("&#x27;", "'")
    assert not User.objects.filter(email=data["email"].strip().lower()).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "token", ["x", "A" * 43, "A" * 3000, "%00", "..%5C..%5Cadmin", "%E2%80%AE", "a b"]
)
def test_forged_tokens_get_a_clear_page(client: HttpClient, token: str) -> None:
    for response in (
        client.get(f"{CONFIRM}{token}"),
        client.post(f"{CONFIRM}{token}"),
    ):
        assert response.status_code == 410
        assert b"not valid" in response.content
    for response in (client.get(f"/invite/{token}"), client.post(f"/invite/{token}", {})):
        assert response.status_code == 404
        assert b"not valid" in response.content


# --- rate limits ----------------------------------------------------------------------------


@pytest.fixture
def real_limits(settings: Any) -> Any:
    """The suite allow-lists loopback; these tests run the limits (as tests/ratelimit do)."""
    settings.RATELIMIT_ALLOW = ()
    rules_reload()
    limiter.local_store.entries.clear()
    yield settings
    rules_reload()
    limiter.local_store.entries.clear()


@pytest.mark.django_db
def test_registration_posts_are_limited_per_ip(
    client: HttpClient, open_registration: None, real_limits: Any
) -> None:
    set_rule(real_limits, "register.ip", "2/1h burst=2")
    statuses = [
        client.post("/register", _form(_address(), name=""), REMOTE_ADDR="192.0.2.7").status_code
        for _ in range(3)
    ]
    assert statuses == [400, 400, 429]
    refused = client.post("/register", _form(_address()), REMOTE_ADDR="192.0.2.7")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert b"Too many requests" in refused.content
    # another client is not held back by this one
    assert (
        client.post("/register", _form(_address(), name=""), REMOTE_ADDR="192.0.2.8").status_code
        == 400
    )


@pytest.mark.django_db
def test_registration_posts_are_limited_per_address_existing_or_not(
    client: HttpClient, open_registration: None, real_limits: Any, invitation: tuple[Any, str]
) -> None:
    set_rule(real_limits, "register.account", "2/1h burst=2")
    _, token = invitation
    existing = _address()
    user_create(email=existing, password=PASSWORD)
    for email in (_address(), existing):
        statuses = [
            client.post(
                path, _form(email.upper() if n else email, name=""), REMOTE_ADDR=f"192.0.2.{n + 20}"
            ).status_code
            for n, path in enumerate(["/register", f"/invite/{token}", "/register"])
        ]
        assert statuses == [400, 400, 429], email
        refused = client.post("/register", _form(email), REMOTE_ADDR="192.0.2.99")
        assert refused.status_code == 429
        assert "Retry-After" in refused


@pytest.mark.django_db
def test_showing_the_forms_is_not_limited(
    client: HttpClient, open_registration: None, real_limits: Any, invitation: tuple[Any, str]
) -> None:
    set_rule(real_limits, "register.ip", "1/1h burst=1")
    _, token = invitation
    for _ in range(3):
        assert client.get("/register", REMOTE_ADDR="192.0.2.30").status_code == 200
        assert client.get(f"/invite/{token}", REMOTE_ADDR="192.0.2.30").status_code == 200


def _path(message: EmailMessage, prefix: str) -> str:
    """The path (and query) of the message's link under `prefix`, for the test client."""
    url = urlsplit(Mailbox.link(message, prefix))
    return url.path + (f"?{url.query}" if url.query else "")
