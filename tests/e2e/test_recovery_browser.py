"""Verification and password reset in headless Chromium, with the links read from the mail the
Celery worker delivered: verify an address; forget, reset, and every old session (another
browser, and the access token it got) dead; a used link and an expired link refused."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from apps.accounts.models import User
from apps.signin.links import link_make
from apps.signin.recovery import RESET
from tests.conftest import Mailbox
from tests.rp import PASSWORD, REDIRECT_URI, new_verifier

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("mailbox")]

NEW_PASSWORD = "a brand new passphrase"


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def _sign_in(page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login?next=/account/")
    page.fill("#id_email", email)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/account/")


@pytest.fixture
def contexts(browser) -> Iterator[Callable[[], object]]:
    opened = []

    def new_page():
        context = browser.new_context(viewport={"width": 1100, "height": 760})
        opened.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield new_page
    for context in opened:
        context.close()


def test_a_person_verifies_their_address_from_the_mail(
    mailbox: Mailbox, live_server, person, contexts, artifacts
) -> None:
    base = live_server.url
    page = contexts()
    _sign_in(page, base, person.email, PASSWORD)

    page.goto(f"{base}/account/verify")
    assert "is not verified yet" in page.inner_text("main")
    page.screenshot(path=str(artifacts / "verify-resend.png"), full_page=True)
    page.click("text=Send a new link")
    page.wait_for_selector("text=We sent a new link to ada@example.com.")
    page.screenshot(path=str(artifacts / "verify-resend-sent.png"), full_page=True)

    link = Mailbox.link(
        mailbox.wait_for(to=person.email, subject_contains="Verify"), "/account/verify/"
    )
    page.goto(link)
    assert "Confirm that ada@example.com is your address." in page.inner_text("main")
    page.screenshot(path=str(artifacts / "verify-confirm.png"), full_page=True)
    assert not User.objects.get(pk=person.pk).email_verified  # the GET changed nothing
    page.click("button[type=submit]")

    page.wait_for_selector("h1:has-text('E-mail address verified')")
    page.screenshot(path=str(artifacts / "verify-done.png"), full_page=True)
    assert User.objects.get(pk=person.pk).email_verified
    page.goto(link)  # the same link again
    assert "This link does not work" in page.inner_text("main")


def _access_token(page, base: str, rp) -> str:
    """The authorization code flow, in this browser (signed in already), for an access token."""
    verifier = new_verifier()
    client = OAuth2Session(
        rp.client_id, rp.client_secret, redirect_uri=REDIRECT_URI,
        code_challenge_method="S256", scope="openid email",
    )  # fmt: skip
    url, _state = client.create_authorization_url(
        f"{base}/oauth/authorize", code_verifier=verifier, nonce=new_verifier()
    )
    with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI)) as redirect:
        page.goto(url)
        if page.url.startswith(base):  # the consent page (first time)
            page.click("button[value=allow]")
    token = client.fetch_token(
        f"{base}/oauth/token", authorization_response=redirect.value.url, code_verifier=verifier
    )
    client.close()
    return str(token["access_token"])


def _userinfo(base: str, token: str) -> int:
    response = requests.get(
        f"{base}/oauth/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    return response.status_code


def test_forget_reset_signs_out_everywhere_and_the_links_die(
    mailbox: Mailbox, live_server, person, rp, contexts, artifacts, settings
) -> None:
    base = live_server.url
    other = contexts()  # signed in before the reset, with an access token
    _sign_in(other, base, person.email, PASSWORD)
    token = _access_token(other, base, rp)
    assert _userinfo(base, token) == 200

    page = contexts()
    page.goto(f"{base}/login")
    page.click("text=Forgot your password?")
    page.wait_for_url(f"{base}/password/forgot")
    page.screenshot(path=str(artifacts / "forgot.png"), full_page=True)
    page.fill("#id_email", person.email)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Check your mail')")
    page.screenshot(path=str(artifacts / "forgot-sent.png"), full_page=True)

    link = Mailbox.link(
        mailbox.wait_for(to=person.email, subject_contains="new password"), "/password/"
    )
    page.goto(link)
    assert page.inner_text("h1") == "Choose a new password"
    page.screenshot(path=str(artifacts / "reset-form.png"), full_page=True)
    page.fill("#id_password", "too short")
    page.fill("#id_password_again", "too short")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Use at least 12 characters (this one has 9).")
    page.screenshot(path=str(artifacts / "reset-refused.png"), full_page=True)
    page.fill("#id_password", NEW_PASSWORD)
    page.fill("#id_password_again", NEW_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Password changed')")
    page.screenshot(path=str(artifacts / "reset-done.png"), full_page=True)

    # Every old session ended: the other browser is signed out, its access token refused.
    def signed_out() -> bool:
        other.goto(f"{base}/account/")
        return urlsplit(other.url).path == "/login"

    _wait_for(signed_out, "the other browser signed out")
    _wait_for(lambda: _userinfo(base, token) == 401, "the old access token refused", 5)

    page.click("text=Sign in")
    page.fill("#id_email", person.email)
    page.fill("#id_password", NEW_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: urlsplit(url).path != "/login")

    page.goto(link)  # used: dead
    assert "This link does not work: it was used already" in page.inner_text("main")
    page.screenshot(path=str(artifacts / "reset-used.png"), full_page=True)

    expired = _expired_reset_link(person, settings.PASSWORD_RESET_MINUTES * 60 + 5)
    response = page.goto(f"{base}/password/reset/{expired}")
    assert response is not None
    assert response.status == 410
    assert "This link has expired" in page.inner_text("main")
    page.screenshot(path=str(artifacts / "reset-expired.png"), full_page=True)
    page.click("a:has-text('Ask for a new link')")
    page.wait_for_url(f"{base}/password/forgot")


def _expired_reset_link(person: User, age: int) -> str:
    from tests.signin.test_recovery import old_token

    person.refresh_from_db()
    token = old_token(RESET, person, {}, age)
    assert token != link_make(RESET, person)
    return token


def test_an_operator_sends_the_mails_from_the_persons_page(
    mailbox: Mailbox, live_server, person, contexts, artifacts
) -> None:
    from apps.accounts.services import user_create

    base = live_server.url
    user_create(email="ops@example.com", password="an operator's passphrase", staff_role="operator")
    page = contexts()
    page.goto(f"{base}/login?next=/console/users/{person.pk}/")
    page.fill("#id_email", "ops@example.com")
    page.fill("#id_password", "an operator's passphrase")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/users/{person.pk}/")
    assert "not verified" in page.inner_text("dl.facts")
    page.screenshot(path=str(artifacts / "console-person-mail.png"), full_page=True)

    page.click("text=Send password-reset e-mail")
    page.wait_for_selector("h1:has-text('Send ada@example.com a password-reset e-mail?')")
    page.screenshot(path=str(artifacts / "console-reset-confirm.png"), full_page=True)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Password-reset e-mail sent to ada@example.com.")

    page.click("text=Resend verification e-mail")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Verification e-mail sent to ada@example.com.")
    page.screenshot(path=str(artifacts / "console-person-mail-sent.png"), full_page=True)
    mailbox.wait_for(to=person.email, subject_contains="Choose a new password")
