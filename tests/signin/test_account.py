"""The person's own account page (apps/signin/account.py, issue 14): each action, ownership
(another person's session, consent or grant → 404), CSRF, and bad input as form errors."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client as HttpClient

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.core.models import SecurityEvent
from apps.sessions.models import LoginSession
from apps.signin import account
from apps.signin.links import link_make
from apps.tokens.models import Consent, OfflineGrant
from tests.console.conftest import add_session, csrf_token, offline_grant
from tests.rp import PASSWORD
from tests.signin.browser import force_sign_in

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "an entirely new passphrase"


@pytest.fixture
def signed_in(person) -> HttpClient:
    http = HttpClient()
    force_sign_in(http, person)
    return http


def _events(event_type: str, user: User) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(event_type=event_type, user_id=str(user.pk)))


def _errors(response) -> list[str]:
    return re.findall(r'class="error"[^>]*>([^<]*)<', response.content.decode())


# --- The page ------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(client) -> None:
    response = client.get("/account/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login?next=/account/")


def test_the_page_shows_profile_sessions_applications_and_history(
    signed_in, person, empty_audit_store
) -> None:
    other = add_session(
        person, ip_address="203.0.113.9", user_agent="Mozilla/5.0 (X11; Linux) Firefox/120.0"
    )
    offline_grant(person, name="Mail app")

    page = signed_in.get("/account/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Ada Lovelace" in html
    assert "ada@example.com" in html
    assert "not verified" in html
    assert html.count(">this device<") == 1
    assert f"/account/sessions/{other.pk}/sign-out" in html
    assert "203.0.113.9" in html
    assert "Firefox on Linux" in html
    assert "Sign out everywhere else" in html
    assert "Mail app" in html
    assert "Offline access" in html
    assert "offline_access" in html
    # History: people's words, never bare event codes.
    assert "Gave Mail app offline access" in html
    assert "Allowed Mail app" in html
    assert "offline_access.granted" not in html
    assert page["Cache-Control"].startswith("max-age=0")


def test_every_action_needs_the_csrf_token(person) -> None:
    http = HttpClient(enforce_csrf_checks=True)
    force_sign_in(http, person)
    other = add_session(person)
    for path, data in [
        ("/account/name", {"name": "Ada"}),
        ("/account/email", {"email": "new@example.com", "password": PASSWORD}),
        ("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                               "new_password_again": NEW_PASSWORD}),
        (f"/account/sessions/{other.pk}/sign-out", {}),
        ("/account/sessions/sign-out-others", {}),
    ]:  # fmt: skip
        assert http.post(path, data).status_code == 403, path
    assert LoginSession.objects.get(pk=other.pk).ended_at is None
    person.refresh_from_db()
    assert person.name == "Ada Lovelace"
    # With the page's token the same form works.
    token = csrf_token(http.get("/account/").content)
    assert (
        http.post("/account/name", {"name": "Ada", "csrfmiddlewaretoken": token}).status_code == 302
    )


def test_actions_are_posts_only(signed_in) -> None:
    for path in ["/account/name", "/account/password", "/account/sessions/sign-out-others"]:
        assert signed_in.get(path).status_code == 405, path


# --- Name ----------------------------------------------------------------------------------


def test_name_change_is_recorded_with_the_person_as_actor(signed_in, person) -> None:
    response = signed_in.post("/account/name", {"name": "  Augusta Ada King  "})

    assert response.status_code == 302
    person.refresh_from_db()
    assert person.name == "Augusta Ada King"
    [event] = _events("user.changed", person)
    assert event.actor_id == str(person.pk)
    assert event.metadata == {"fields": ["name"]}  # not the names: personal data
    assert "Your name was changed." in signed_in.get("/account/").content.decode()


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("A" * 201, "at most 200 characters"),
        ("Ada\r\nBcc: victim@example.com", "line breaks"),
        ("Ada\nLovelace", "line breaks"),
        ("Ada\x07", "control"),
        ("Ada\x00", "Null characters"),
        ("Ada \u202egnirts", "direction"),
    ],
)
def test_bad_names_are_form_errors(signed_in, person, name, error) -> None:
    response = signed_in.post("/account/name", {"name": name})

    assert response.status_code == 400
    assert any(error in message for message in _errors(response)), _errors(response)
    person.refresh_from_db()
    assert person.name == "Ada Lovelace"
    assert _events("user.changed", person) == []


# --- E-mail change -------------------------------------------------------------------------


def _ask(http: HttpClient, email: str, password: str = PASSWORD, ip: str = "127.0.0.1"):
    return http.post("/account/email", {"email": email, "password": password}, REMOTE_ADDR=ip)


def test_email_change_asks_for_the_password_and_changes_nothing_until_confirmed(
    signed_in, person, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as queued:
        response = _ask(signed_in, "Ada.New@Example.com")

    assert response.status_code == 302
    assert len(queued) == 1  # the message to the new address
    person.refresh_from_db()
    assert person.email == "ada@example.com"
    [sent] = _events("email.verification_sent", person)
    assert sent.metadata == {"purpose": "email_change", "email": "ada.new@example.com"}
    assert "We sent a link to ada.new@example.com" in signed_in.get("/account/").content.decode()


def test_a_taken_address_gets_the_same_answer_when_asked(signed_in, person) -> None:
    user_create(email="grace@example.com", password=PASSWORD)
    taken = _ask(signed_in, "grace@example.com")
    free = _ask(signed_in, "free@example.com")

    # WSTG-IDNT-04: the form's answer does not say which addresses have accounts.
    assert (taken.status_code, taken["Location"]) == (free.status_code, free["Location"])
    page = signed_in.get("/account/").content.decode()
    assert "We sent a link to grace@example.com" in page
    assert "We sent a link to free@example.com" in page


def test_email_change_with_a_wrong_password_is_refused_and_counted(signed_in, person) -> None:
    statuses = [_ask(signed_in, "new@example.com", "wrong guess").status_code for _ in range(5)]
    assert statuses == [400] * 5
    assert _events("email.verification_sent", person) == []

    # The sign-in lockout counted them: now even the right password is refused unchecked.
    right = _ask(signed_in, "new@example.com", PASSWORD)
    assert right.status_code == 400
    assert any("Too many wrong passwords" in e for e in _errors(right)), _errors(right)
    assert _events("email.verification_sent", person) == []
    assert len(_events("account.locked", person)) >= 1


@pytest.mark.parametrize(
    ("email", "error"),
    [
        ("new@example.com\r\nBcc: victim@example.com", "valid email"),
        ("new@example.com\nBcc: victim@example.com", "valid email"),
        ("x" * 250 + "@example.com", "at most 254 characters"),
        ("not an address", "valid email"),
        ("ADA@example.com", "already your address"),
        ("", "required"),
    ],
)
def test_bad_addresses_are_form_errors(signed_in, person, email, error) -> None:
    response = _ask(signed_in, email)

    assert response.status_code == 400
    assert any(error in message for message in _errors(response)), _errors(response)
    assert _events("email.verification_sent", person) == []


def _link(user: User, email: str) -> str:
    return link_make("email_change", user, {"email": email})


def test_confirm_page_shows_a_button_and_changes_nothing_on_get(client, person) -> None:
    token = _link(person, "ada.new@example.com")

    page = client.get("/account/email/confirm", {"t": token})

    assert page.status_code == 200
    assert "ada.new@example.com" in page.content.decode()
    assert "Use this address" in page.content.decode()
    person.refresh_from_db()
    assert person.email == "ada@example.com"


def test_confirm_post_changes_the_address_once(
    client, person, django_capture_on_commit_callbacks
) -> None:
    token = _link(person, "ada.new@example.com")
    with django_capture_on_commit_callbacks() as queued:
        done = client.post("/account/email/confirm", {"t": token})

    assert done.status_code == 200
    assert "ada.new@example.com" in done.content.decode()
    assert len(queued) == 1  # the notice to the old address
    person.refresh_from_db()
    assert (person.email, person.email_verified) == ("ada.new@example.com", True)
    [changed] = _events("email.changed", person)
    assert changed.metadata == {"old": "ada@example.com", "new": "ada.new@example.com"}
    assert changed.actor_id == str(person.pk)

    again = client.post("/account/email/confirm", {"t": token})
    assert again.status_code == 400
    assert "used already" in again.content.decode()
    assert client.get("/account/email/confirm", {"t": token}).status_code == 400
    assert len(_events("email.changed", person)) == 1


def test_confirm_refuses_an_address_another_account_took_meanwhile(client, person) -> None:
    token = _link(person, "grace@example.com")
    user_create(email="Grace@example.com", password=PASSWORD)

    refused = client.post("/account/email/confirm", {"t": token})

    assert refused.status_code == 409
    assert "Another account already uses this address" in refused.content.decode()
    person.refresh_from_db()
    assert person.email == "ada@example.com"
    assert _events("email.changed", person) == []


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "x" * 2000, "ab:cd:ef", "\u202e"],
)
def test_malformed_confirm_links_are_refused(client, person, token) -> None:
    assert client.get("/account/email/confirm", {"t": token}).status_code == 400
    assert client.post("/account/email/confirm", {"t": token}).status_code == 400


def test_tampered_expired_and_other_purpose_links_are_refused(client, person, monkeypatch) -> None:
    token = _link(person, "ada.new@example.com")
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert client.post("/account/email/confirm", {"t": tampered}).status_code == 400
    reset = link_make("password_reset", person, {"email": "ada.new@example.com"})
    assert client.post("/account/email/confirm", {"t": reset}).status_code == 400

    monkeypatch.setattr(account, "EMAIL_CHANGE_MAX_AGE", -1)
    expired = client.post("/account/email/confirm", {"t": token})
    assert expired.status_code == 400
    assert "expired" in expired.content.decode()
    person.refresh_from_db()
    assert person.email == "ada@example.com"


def test_a_password_change_voids_an_email_change_link(client, person) -> None:
    token = _link(person, "ada.new@example.com")
    person.set_password(NEW_PASSWORD)
    person.save()

    assert client.post("/account/email/confirm", {"t": token}).status_code == 400


# --- Password ------------------------------------------------------------------------------


def _change(http: HttpClient, current: str, new: str, again: str | None = None):
    return http.post(
        "/account/password",
        {"current_password": current, "new_password": new, "new_password_again": again or new},
    )


def test_password_change_ends_every_session_and_offers_sign_in(signed_in, person) -> None:
    other = add_session(person)

    done = _change(signed_in, PASSWORD, NEW_PASSWORD)

    assert done.status_code == 200
    assert "Your password was changed" in done.content.decode()
    assert 'href="/login?next=/account/"' in done.content.decode()
    person.refresh_from_db()
    assert person.check_password(NEW_PASSWORD)
    assert not LoginSession.objects.filter(user=person, ended_at__isnull=True).exists()
    assert LoginSession.objects.get(pk=other.pk).end_reason == "password_changed"
    [changed] = _events("password.changed", person)
    assert changed.metadata == {"method": "account"}
    assert signed_in.get("/account/").status_code == 302  # signed out here too


@pytest.mark.parametrize(
    ("current", "new", "again", "error"),
    [
        ("wrong guess", NEW_PASSWORD, None, "current password is incorrect"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "two new passwords differ"),
        (PASSWORD, "short", None, "Use at least 12 characters"),
        (PASSWORD, "x" * 1025, None, "at most 1024 characters"),
        ("", NEW_PASSWORD, None, "required"),
    ],
)
def test_bad_password_changes_are_form_errors(
    signed_in, person, current, new, again, error
) -> None:
    response = _change(signed_in, current, new, again)

    assert response.status_code == 400
    assert any(error in message for message in _errors(response)), _errors(response)
    person.refresh_from_db()
    assert person.check_password(PASSWORD)
    assert LoginSession.objects.filter(user=person, ended_at__isnull=True).exists()


# --- Sessions ------------------------------------------------------------------------------


def test_sign_out_one_of_my_other_sessions(signed_in, person) -> None:
    other = add_session(person)

    response = signed_in.post(f"/account/sessions/{other.pk}/sign-out")

    assert response.status_code == 302
    other.refresh_from_db()
    assert other.end_reason == "account_page"
    [event] = _events("logout", person)
    assert (event.actor_id, event.metadata) == (str(person.pk), {"reason": "account_page"})
    assert signed_in.get("/account/").status_code == 200  # this one lives on


def test_signing_out_this_device_from_the_list_signs_out_here(signed_in, person) -> None:
    current = LoginSession.objects.get(user=person)
    response = signed_in.post(f"/account/sessions/{current.pk}/sign-out")
    assert response.status_code == 302
    assert response["Location"] == "/login"
    assert signed_in.get("/account/").status_code == 302


def test_someone_elses_session_is_not_found(signed_in, person) -> None:
    grace = user_create(email="grace@example.com", password=PASSWORD)
    theirs = add_session(grace)

    for sid in [str(theirs.pk), str(uuid.uuid4()), "not-a-uuid", "1" * 300]:
        assert signed_in.post(f"/account/sessions/{sid}/sign-out").status_code == 404, sid
    assert LoginSession.objects.get(pk=theirs.pk).ended_at is None


def test_sign_out_everywhere_else_keeps_this_one(signed_in, person) -> None:
    others = [add_session(person), add_session(person)]
    grace_session = add_session(user_create(email="grace@example.com", password=PASSWORD))

    response = signed_in.post("/account/sessions/sign-out-others")

    assert response.status_code == 302
    for other in others:
        other.refresh_from_db()
        assert other.end_reason == "account_page"
    live = LoginSession.objects.filter(user=person, ended_at__isnull=True)
    assert live.count() == 1
    assert LoginSession.objects.get(pk=grace_session.pk).ended_at is None
    assert "2 other sessions signed out." in signed_in.get("/account/").content.decode()


# --- Applications --------------------------------------------------------------------------


def test_revoke_my_offline_grant(signed_in, person) -> None:
    mail = offline_grant(person, name="Mail app")

    response = signed_in.post(f"/account/applications/offline/{mail.grant.pk}/revoke")

    assert response.status_code == 302
    mail.grant.refresh_from_db()
    assert mail.grant.revoke_reason == "user_revoked"
    [event] = _events("offline_access.revoked", person)
    assert event.actor_id == str(person.pk)


def test_revoke_my_consent_revokes_the_clients_tokens(signed_in, person) -> None:
    mail = offline_grant(person, name="Mail app")
    client_id = mail.rp.client_id

    response = signed_in.post(f"/account/applications/consent/{client_id}/revoke")

    assert response.status_code == 302
    assert not Consent.objects.filter(user=person).exists()
    assert OfflineGrant.objects.get(pk=mail.grant.pk).revoked_at is not None
    [event] = _events("consent.revoked", person)
    assert event.actor_id == str(person.pk)
    page = signed_in.get("/account/").content.decode()
    assert "You have not allowed any application" in page


def test_someone_elses_application_is_not_found(signed_in, person) -> None:
    grace = user_create(email="grace@example.com", password=PASSWORD)
    theirs = offline_grant(grace, name="Grace's app")

    for path in [
        f"/account/applications/offline/{theirs.grant.pk}/revoke",
        f"/account/applications/consent/{theirs.rp.client_id}/revoke",
        f"/account/applications/offline/{uuid.uuid4()}/revoke",
        "/account/applications/offline/not-a-uuid/revoke",
        "/account/applications/consent/no-such-client/revoke",
        f"/account/applications/consent/{'c' * 300}/revoke",
    ]:
        assert signed_in.post(path).status_code == 404, path
    assert OfflineGrant.objects.get(pk=theirs.grant.pk).revoked_at is None
    assert Consent.objects.filter(user=grace).exists()


# --- History -------------------------------------------------------------------------------


def test_history_tells_what_happened_in_words(signed_in, person, empty_audit_store) -> None:
    signed_in.post("/account/name", {"name": "Augusta"})
    other = add_session(person)
    signed_in.post(f"/account/sessions/{other.pk}/sign-out")

    html = signed_in.get("/account/").content.decode()

    history = html[html.index("Recent security events") :]
    assert "Name changed" in history
    assert "A session was signed out from the account page" in history
    assert "user.changed" not in history
    assert "account_page" not in history


def test_email_change_requests_are_rate_limited_per_account(signed_in, person, settings) -> None:
    settings.RATELIMIT_ALLOW = ()  # the suite allow-lists loopback for unrelated tests
    # RATELIMIT_RULES account_email.account: 5/1h burst=3, keyed by the account, not the IP.
    statuses = [
        _ask(signed_in, f"new{n}@example.com", PASSWORD, ip=f"198.51.100.{n}").status_code
        for n in range(4)
    ]

    assert statuses == [302, 302, 302, 429]
    refused = _ask(signed_in, "new9@example.com", PASSWORD, ip="198.51.100.9")
    assert refused.status_code == 429
    assert any("Too many address changes" in e for e in _errors(refused)), _errors(refused)
    assert int(refused["Retry-After"]) >= 1
    assert len(_events("email.verification_sent", person)) == 3
