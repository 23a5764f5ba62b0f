"""Changing one's e-mail address in headless Chromium (issue 14), with the messages read from
the suite's SMTP server: the link goes to the NEW address and changes nothing until the
person confirms it; then the account signs in with the new address, verified, the OLD address
gets a notice, and the same link is refused (ID tokens and userinfo reading email_verified:
tests/tokens/test_claim_release.py)."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import pytest

from apps.accounts.models import User
from apps.accounts.services import user_create
from tests.conftest import Mailbox
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_person_changes_their_address_from_the_account_page(
    live_server, browser, mailbox: Mailbox, artifacts
) -> None:
    old = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    new = f"ada.lovelace-{uuid.uuid4().hex[:8]}@example.org"
    person = user_create(email=old, name="Ada Lovelace", password=PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    page.goto(f"{live_server.url}/login?{urlencode({'next': '/account/'})}")
    page.fill("#id_email", old)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/account/")

    # Keyboard only: open the disclosure, fill the form, send.
    page.focus("summary:has-text('Change your e-mail address')")
    page.keyboard.press("Enter")
    form = page.locator("form[action$='/account/email']")
    form.locator("input[type=email]:not([hidden])").fill(new)
    form.locator("input[type=password]").fill(PASSWORD)
    with page.expect_navigation():
        form.locator("button[type=submit]").press("Enter")
    page.screenshot(path=str(artifacts / "email-change-sent.png"), full_page=True)
    assert new in page.inner_text("main")
    assert User.objects.get(pk=person.pk).email == old  # nothing changed yet

    message = mailbox.wait_for(to=new, subject_contains="Confirm your new e-mail address")
    link = Mailbox.link(message, "/account/email/confirm")
    page.goto(link)  # what a mail scanner's GET would do: nothing changes
    assert User.objects.get(pk=person.pk).email == old
    page.screenshot(path=str(artifacts / "email-change-confirm.png"), full_page=True)
    with page.expect_navigation():
        page.click("button:has-text('Use this address')")
    page.screenshot(path=str(artifacts / "email-change-done.png"), full_page=True)

    person.refresh_from_db()
    assert (person.email, person.email_verified) == (new, True)
    notice = mailbox.wait_for(to=old, subject_contains="Your e-mail address was changed")
    assert new in Mailbox.text(notice)

    page.goto(f"{live_server.url}/account/")
    profile = page.inner_text("#profile")
    assert new in profile
    assert "verified" in profile
    assert "not verified" not in profile

    assert problems == []  # no CSP violation or script error on the way

    # The link is single use: the second time it says so (a 400 page), and changes nothing.
    page.goto(link)
    assert page.inner_text("h1") == "Address not changed"
    assert "used already" in page.inner_text("main")
    page.screenshot(path=str(artifacts / "email-change-used.png"), full_page=True)
    assert User.objects.get(pk=person.pk).email == new
    context.close()
