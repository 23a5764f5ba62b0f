"""E-mail verification and password reset (apps/signin/recovery.py, recovery_views.py):
pages, links, limits, and what operators can do. OWASP Forgot Password Cheat Sheet."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.core import signing
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.core.models import SecurityEvent
from apps.ratelimit.rules import rules_reload
from apps.ratelimit.services import lockouts_for
from apps.sessions.models import LoginSession
from apps.signin.links import link_make
from apps.signin.recovery import NO_ACCOUNT, RESET, VERIFY
from apps.signin.tasks import password_reset_mail_task
from tests.signin.browser import force_sign_in

pytestmark = pytest.mark.django_db

PASSWORD = "a long correct passphrase"
NEW_PASSWORD = "quite another passphrase"
CLIENT_IP = "198.51.100.30"


@pytest.fixture
def ada() -> User:
    return user_create(email="ada@example.com", name="Ada", password=PASSWORD)


@pytest.fixture
def real_limits(settings: Any) -> Any:
    settings.RATELIMIT_ALLOW = ()  # the suite allow-lists loopback for unrelated tests
    rules_reload()
    yield
    rules_reload()


def csrf_client() -> HttpClient:
    return HttpClient(REMOTE_ADDR=CLIENT_IP)


def page_text(response: Any) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())).strip()


def events(event_type: str) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(event_type=event_type).order_by("occurred_at"))


def old_token(purpose: str, user: User, data: dict[str, Any], age: int) -> str:
    """A token as link_make made it `age` seconds ago (Django's TimestampSigner takes the
    time from its timestamp(); nothing else changes)."""
    real = signing.TimestampSigner.timestamp

    def earlier(self: signing.TimestampSigner) -> str:
        return signing.b62_encode(int(time.time()) - age)

    signing.TimestampSigner.timestamp = earlier  # type: ignore[method-assign]
    try:
        return link_make(purpose, user, data)
    finally:
        signing.TimestampSigner.timestamp = real  # type: ignore[method-assign]


def tampered(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


BAD_TOKENS = {
    "forged": lambda user, purpose, data: signing.dumps(
        {"u": str(user.pk), "d": data, "f": "0" * 32}, salt=f"tessera.links.{purpose}", key="x"
    ),
    "tampered": lambda user, purpose, data: tampered(link_make(purpose, user, data)),
    "other purpose": lambda user, purpose, data: link_make(
        RESET if purpose == VERIFY else VERIFY, user, data
    ),
    "oversized": lambda user, purpose, data: "A" * 5000,
    "junk": lambda user, purpose, data: "not-a-token:%00",
}


# --- e-mail verification --------------------------------------------------------------------


def test_a_verification_link_changes_nothing_on_get_and_verifies_on_post(ada: User) -> None:
    token = link_make(VERIFY, ada, {"email": ada.email})
    http = HttpClient()

    shown = http.get(f"/account/verify/{token}")  # what a mail scanner's prefetch does
    assert shown.status_code == 200
    assert "Confirm that ada@example.com is your address." in page_text(shown)
    ada.refresh_from_db()
    assert not ada.email_verified

    done = http.post(f"/account/verify/{token}", {"token": token})
    assert done.status_code == 200
    assert "ada@example.com is verified." in page_text(done)
    ada.refresh_from_db()
    assert ada.email_verified
    [verified] = events("email.verified")
    assert verified.user_id == str(ada.pk)


def test_a_verification_link_works_once(ada: User) -> None:
    token = link_make(VERIFY, ada, {"email": ada.email})
    http = HttpClient()
    assert http.post(f"/account/verify/{token}", {"token": token}).status_code == 200

    again = http.post(f"/account/verify/{token}", {"token": token})
    shown = http.get(f"/account/verify/{token}")

    assert again.status_code == shown.status_code == 400
    assert "This link does not work: it was used already" in page_text(again)
    assert len(events("email.verified")) == 1


def test_an_expired_verification_link_says_how_to_get_a_new_one(ada: User, settings) -> None:
    age = settings.EMAIL_VERIFY_HOURS * 3600 + 5
    token = old_token(VERIFY, ada, {"email": ada.email}, age)

    for response in (
        HttpClient().get(f"/account/verify/{token}"),
        HttpClient().post(f"/account/verify/{token}", {"token": token}),
    ):
        assert response.status_code == 410
        text = page_text(response)
        assert "This link has expired: a verification link works for 24 hours." in text
        assert "Sign in to ask for a new link" in text
    ada.refresh_from_db()
    assert not ada.email_verified


def test_a_verification_link_for_an_address_changed_since_does_not_work(ada: User) -> None:
    token = link_make(VERIFY, ada, {"email": ada.email})
    User.objects.filter(pk=ada.pk).update(email="ada@elsewhere.example")

    response = HttpClient().post(f"/account/verify/{token}", {"token": token})

    assert response.status_code == 400
    assert not User.objects.get(pk=ada.pk).email_verified


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_verification_link_gets_a_clear_page(ada: User, kind: str) -> None:
    token = BAD_TOKENS[kind](ada, VERIFY, {"email": ada.email})
    http = HttpClient()

    for response in (
        http.get(f"/account/verify/{token}"),
        http.post(f"/account/verify/{token}", {"token": token}),
    ):
        assert response.status_code == 400, kind
        assert "This link does not work" in page_text(response)
    assert not User.objects.get(pk=ada.pk).email_verified


def test_a_verification_post_without_a_token_gets_a_clear_page(ada: User) -> None:
    token = link_make(VERIFY, ada, {"email": ada.email})

    for data in ({}, {"token": ""}, {"token": "A" * 5000}):
        response = HttpClient().post(f"/account/verify/{token}", data)
        assert response.status_code == 400
        assert "This link does not work" in page_text(response)


def test_the_verification_page_asks_to_sign_in() -> None:
    response = HttpClient().get("/account/verify")

    assert response.status_code == 302
    assert response["Location"].startswith("/login?next=/account/verify")


def test_a_person_asks_for_a_new_verification_link(ada: User) -> None:
    http = HttpClient()
    force_sign_in(http, ada)

    page = http.get("/account/verify")
    assert "ada@example.com is not verified yet." in page_text(page)
    sent = http.post("/account/verify", follow=True)

    assert sent.status_code == 200
    assert "We sent a new link to ada@example.com." in page_text(sent)
    [event] = events("email.verification_sent")
    assert event.user_id == event.actor_id == str(ada.pk)


def test_a_verified_person_is_sent_nothing(ada: User) -> None:
    User.objects.filter(pk=ada.pk).update(email_verified=True)
    http = HttpClient()
    force_sign_in(http, ada)

    response = http.post("/account/verify", follow=True)

    assert "ada@example.com is verified. There is nothing to do." in page_text(response)
    assert events("email.verification_sent") == []


def test_new_verification_links_are_limited_per_account(ada: User, real_limits: None) -> None:
    http = HttpClient(REMOTE_ADDR=CLIENT_IP)
    force_sign_in(http, ada)

    statuses = [http.post("/account/verify").status_code for _ in range(4)]

    assert statuses == [302, 302, 302, 429]  # verify.account: 3 at once
    refused = http.post("/account/verify")
    assert refused.status_code == 429
    assert "You asked for several links in a short time. Try again in" in page_text(refused)
    assert int(refused["Retry-After"]) >= 1
    assert len(events("email.verification_sent")) == 3


# --- forgot password ------------------------------------------------------------------------


def _shapes(queries: CaptureQueriesContext) -> list[str]:
    """The statements without their values (the address typed, event ids and times)."""
    return [re.sub(r"'(?:[^']|'')*'", "?", q["sql"]) for q in queries]


def _forgot(http: HttpClient, email: str) -> Any:
    return http.post("/password/forgot", {"email": email})


def test_forgot_answers_the_same_for_an_account_and_an_unknown_address(ada: User) -> None:
    """OWASP Forgot Password Cheat Sheet: a consistent message, and uniform time: the same
    statements whether or not an account has the address (the mail is the worker's)."""
    _forgot(csrf_client(), "warm@example.com")  # first-request costs out of the way
    with CaptureQueriesContext(connection) as known_queries:
        known = _forgot(csrf_client(), "ada@example.com")
    with CaptureQueriesContext(connection) as unknown_queries:
        unknown = _forgot(csrf_client(), "nobody@example.com")

    assert known.status_code == unknown.status_code == 200
    assert page_text(known).replace("ada@", "X@") == page_text(unknown).replace("nobody@", "X@")
    assert "If X@example.com is the address of an account" in page_text(known).replace("ada@", "X@")
    assert len(known_queries) == len(unknown_queries) > 0
    assert _shapes(known_queries) == _shapes(unknown_queries)
    requested = events("password.reset_requested")
    assert [(e.user_id, e.metadata["email"]) for e in requested[1:]] == [
        (str(ada.pk), "ada@example.com"),
        ("", "nobody@example.com"),
    ]


def test_the_worker_mails_an_account_and_nothing_to_an_unknown_address(ada: User) -> None:
    assert password_reset_mail_task.run(str(ada.pk), CLIENT_IP) is True
    assert password_reset_mail_task.run(str(NO_ACCOUNT), CLIENT_IP) is False
    User.objects.filter(pk=ada.pk).update(is_active=False)
    assert password_reset_mail_task.run(str(ada.pk), CLIENT_IP) is False


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("", "Enter the e-mail address of your account."),
        ("not an address", "Enter an e-mail address such as name@example.com."),
        ("ada@example.com\r\nBcc: eve@example.com", "Enter an e-mail address such as"),
        ("ada@example.com\nBcc: eve@example.com", "Enter an e-mail address such as"),
        ("a" * 300 + "@example.com", "An e-mail address is at most 254 characters."),
    ],
)
def test_forgot_refuses_what_is_not_an_address(ada: User, email: str, message: str) -> None:
    response = _forgot(csrf_client(), email)

    assert response.status_code == 400
    assert message in page_text(response)
    assert events("password.reset_requested") == []


def test_forgot_is_limited_per_address_whether_or_not_it_has_an_account(
    ada: User, real_limits: None
) -> None:
    for address in ("ada@example.com", "nobody@example.com"):
        statuses = [
            _forgot(HttpClient(REMOTE_ADDR=f"198.51.100.{n}"), address).status_code
            for n in range(40, 44)
        ]
        assert statuses == [200, 200, 200, 429], address  # forgot.account: 3 at once

    known = _forgot(HttpClient(REMOTE_ADDR="198.51.100.50"), "ADA@example.com")
    unknown = _forgot(HttpClient(REMOTE_ADDR="198.51.100.51"), "nobody@example.com")
    assert known.status_code == unknown.status_code == 429
    pattern = r"Try again in [^.]*\."
    assert re.sub(pattern, "", page_text(known)) == re.sub(pattern, "", page_text(unknown))
    assert "Several links were asked for in a short time. Try again in" in page_text(known)


def test_forgot_is_limited_per_client_ip(real_limits: None) -> None:
    http = HttpClient(REMOTE_ADDR="198.51.100.60")
    statuses = [_forgot(http, f"person{n}@example.com").status_code for n in range(6)]

    assert statuses == [200] * 5 + [429]  # forgot.ip: 5 at once


def test_the_sign_in_page_links_to_forgot() -> None:
    assert 'href="/password/forgot"' in HttpClient().get("/login").content.decode()


# --- reset password -------------------------------------------------------------------------


def _reset(http: HttpClient, token: str, password: str, again: str | None = None) -> Any:
    data = {"token": token, "password": password, "password_again": again or password}
    return http.post(f"/password/reset/{token}", data)


def test_a_reset_link_shows_the_form_and_changes_nothing_on_get(ada: User) -> None:
    token = link_make(RESET, ada)
    before = User.objects.get(pk=ada.pk).password

    shown = HttpClient().get(f"/password/reset/{token}")

    assert shown.status_code == 200
    assert f'name="token" value="{token}"' in shown.content.decode()
    assert "At least 12 characters" in page_text(shown)
    assert User.objects.get(pk=ada.pk).password == before


def test_a_reset_sets_the_password_ends_every_session_and_dies(ada: User) -> None:
    signed_in = HttpClient()
    session = force_sign_in(signed_in, ada)
    token = link_make(RESET, ada)

    done = _reset(HttpClient(), token, NEW_PASSWORD)

    assert done.status_code == 200
    assert "Your new password is set." in page_text(done)
    ada.refresh_from_db()
    assert ada.check_password(NEW_PASSWORD)
    session.refresh_from_db()
    assert session.ended_at is not None
    assert not LoginSession.objects.filter(user=ada, ended_at__isnull=True).exists()
    assert signed_in.get("/account/").status_code == 302  # signed out
    [changed] = events("password.changed")
    assert changed.metadata["method"] == "reset"

    again = _reset(HttpClient(), token, "yet another passphrase")
    assert again.status_code == 400
    assert "This link does not work: it was used already" in page_text(again)
    ada.refresh_from_db()
    assert ada.check_password(NEW_PASSWORD)


def test_a_reset_link_dies_when_the_password_changes_otherwise(ada: User) -> None:
    token = link_make(RESET, ada)
    ada.set_password("changed on the account page")
    ada.save()

    assert _reset(HttpClient(), token, NEW_PASSWORD).status_code == 400


def test_an_expired_reset_link_is_refused_with_the_way_to_a_new_one(ada: User, settings) -> None:
    token = old_token(RESET, ada, {}, settings.PASSWORD_RESET_MINUTES * 60 + 5)

    for response in (
        HttpClient().get(f"/password/reset/{token}"),
        _reset(HttpClient(), token, NEW_PASSWORD),
    ):
        assert response.status_code == 410
        assert "This link has expired: a password-reset link works for 30 minutes." in (
            page_text(response)
        )
        assert 'href="/password/forgot"' in response.content.decode()
    assert User.objects.get(pk=ada.pk).check_password(PASSWORD)


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_reset_link_gets_a_clear_page(ada: User, kind: str) -> None:
    token = BAD_TOKENS[kind](ada, RESET, {})

    for response in (
        HttpClient().get(f"/password/reset/{token}"),
        _reset(HttpClient(), token, NEW_PASSWORD),
    ):
        assert response.status_code == 400, kind
        assert "This link does not work" in page_text(response)
    assert User.objects.get(pk=ada.pk).check_password(PASSWORD)


@pytest.mark.parametrize(
    ("password", "again", "message"),
    [
        ("short", None, "Use at least 12 characters (this one has 5)."),
        ("x" * 129, None, "Use at most 128 characters (this one has 129)."),
        ("x" * 5000, None, "Use at most 1024 characters."),
        ("password1234", None, "on a list of passwords known to attackers"),
        (NEW_PASSWORD, "a different passphrase", "The two passwords differ."),
        ("", None, "Choose a new password."),
    ],
)
def test_a_new_password_the_policy_refuses_is_explained_and_the_link_still_works(
    ada: User, password: str, again: str | None, message: str
) -> None:
    token = link_make(RESET, ada)

    refused = _reset(HttpClient(), token, password, again)

    assert refused.status_code == 400
    assert message in page_text(refused)
    assert User.objects.get(pk=ada.pk).check_password(PASSWORD)
    assert _reset(HttpClient(), token, NEW_PASSWORD).status_code == 200


def test_a_128_character_password_is_accepted(ada: User) -> None:
    password = "correct horse " * 9 + "ab"

    assert _reset(HttpClient(), link_make(RESET, ada), password).status_code == 200
    assert User.objects.get(pk=ada.pk).check_password(password)


def test_a_reset_lifts_the_addresss_sign_in_lockout(ada: User, real_limits: None) -> None:
    attacker = HttpClient(REMOTE_ADDR="198.51.100.70")
    for _ in range(5):
        attacker.post("/login", {"email": ada.email, "password": "a wrong guess"})
    assert any(lockout.locked for lockout in lockouts_for(kind="login", identifier=ada.email))

    assert _reset(HttpClient(), link_make(RESET, ada), NEW_PASSWORD).status_code == 200

    assert lockouts_for(kind="login", identifier=ada.email) == []
    [unlocked] = events("account.unlocked")
    assert unlocked.metadata["reason"] == "password_reset"


# --- operators ------------------------------------------------------------------------------


def test_an_operator_sends_a_verification_mail_recorded_with_them(ada: User) -> None:
    from tests.console.conftest import confirm, signed_in_as

    operator = signed_in_as("operator")
    page = operator.get(f"/console/users/{ada.pk}/").content.decode()
    assert "not verified" in page
    assert f"/console/users/{ada.pk}/verification/send/" in page

    done = confirm(operator, f"/console/users/{ada.pk}/verification/send/")

    assert "Verification e-mail sent to ada@example.com." in done.content.decode()
    [sent] = events("email.verification_sent")
    assert (sent.user_id, sent.actor_id) == (str(ada.pk), str(operator.user.pk))  # type: ignore[attr-defined]


def test_an_operator_sends_a_password_reset_mail_and_sees_no_password(ada: User) -> None:
    from tests.console.conftest import confirm, signed_in_as

    operator = signed_in_as("operator")
    done = confirm(operator, f"/console/users/{ada.pk}/password-reset/send/")

    body = done.content.decode()
    assert "Password-reset e-mail sent to ada@example.com." in body
    assert "/password/reset/" not in body
    [sent] = events("password.reset_requested")
    assert (sent.user_id, sent.actor_id) == (str(ada.pk), str(operator.user.pk))  # type: ignore[attr-defined]
    assert sent.metadata["by_operator"] is True
    assert User.objects.get(pk=ada.pk).check_password(PASSWORD)  # unchanged until used


def test_the_api_sends_both_mails_and_shows_the_verification_state(ada: User) -> None:
    from tests.console.conftest import signed_in_as

    operator = signed_in_as("operator", enforce_csrf_checks=False)
    shown = operator.get(f"/api/v1/users/{ada.pk}").json()
    assert shown["email_verified"] is False

    verification = operator.post(f"/api/v1/users/{ada.pk}/verification/send")
    reset = operator.post(f"/api/v1/users/{ada.pk}/password-reset/send")

    assert verification.status_code == reset.status_code == 200
    assert verification.json() == {
        "sent": True,
        "detail": "Verification e-mail sent to ada@example.com.",
    }
    assert reset.json()["sent"] is True
    assert "/password/reset/" not in reset.content.decode()
    actor = str(operator.user.pk)  # type: ignore[attr-defined]
    assert [e.actor_id for e in events("email.verification_sent")] == [actor]
    assert [e.actor_id for e in events("password.reset_requested")] == [actor]

    User.objects.filter(pk=ada.pk).update(email_verified=True)
    again = operator.post(f"/api/v1/users/{ada.pk}/verification/send").json()
    assert again["sent"] is False
    assert operator.get(f"/api/v1/users/{ada.pk}").json()["email_verified"] is True


def test_forgot_queues_the_reset_mail_task_by_its_name() -> None:
    """password_reset_request queues the task by name (tasks.py imports recovery.py)."""
    from apps.signin.recovery import RESET_MAIL_TASK

    assert password_reset_mail_task.name == RESET_MAIL_TASK
