"""Self-service session revocation in headless Chromium (issue 14): a person signed in in two
browsers ends the other one from their account page, and the access token that browser's
relying party got through a real authorization-code flow is refused at userinfo within a
second; "sign out everywhere else" keeps the browser that asked."""

from __future__ import annotations

import contextlib
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from playwright.sync_api import Error as PlaywrightError

from apps.sessions.models import LoginSession
from apps.tokens.services import client_create
from tests.rp import PASSWORD, REDIRECT_URI
from tests.tokens.conftest import authorize_params, new_pkce

pytestmark = pytest.mark.django_db(transaction=True)

# Issue 14: the revoked session's tokens are refused within 1 s.
REFUSED_WITHIN = 1.0


def _signed_in(browser, live_server, email: str, *, next_url: str = "/account/"):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/login?{urlencode({'next': next_url})}")
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    return context, page


def _access_token(page, live_server, client_id: str, secret: str) -> str:
    """The code flow in this browser (its login session), the code exchanged by the RP."""
    pkce = new_pkce()
    url = f"{live_server.url}/oauth/authorize?{urlencode(authorize_params(client_id, pkce))}"
    # The relying party is not on this network: where the browser is sent is what counts.
    sent_back = page.expect_request(lambda r: r.url.startswith(REDIRECT_URI))
    with sent_back as redirect, contextlib.suppress(PlaywrightError):
        page.goto(url)
    code = parse_qs(urlsplit(redirect.value.url).query)["code"][0]
    tokens = requests.post(
        f"{live_server.url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce.verifier,
        },
        auth=(client_id, secret),
        timeout=30,
    )
    assert tokens.status_code == 200, tokens.text
    token: str = tokens.json()["access_token"]
    return token


def _userinfo(live_server, token: str) -> int:
    response = requests.get(
        f"{live_server.url}/oauth/userinfo",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    return response.status_code


def test_person_signs_out_their_other_browser_and_its_token_dies(
    live_server, browser, person, artifacts, empty_audit_store
) -> None:
    rp, secret = client_create(name="First party", redirect_uris=[REDIRECT_URI], skip_consent=True)
    assert secret is not None
    problems: list[str] = []

    laptop_context, laptop = _signed_in(browser, live_server, person.email)
    laptop.wait_for_url(f"{live_server.url}/account/")
    phone_context, phone = _signed_in(browser, live_server, person.email)
    phone.wait_for_url(f"{live_server.url}/account/")
    token = _access_token(phone, live_server, rp.client_id, secret)
    assert _userinfo(live_server, token) == 200

    laptop.on("console", lambda message: problems.append(message.text))
    laptop.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    laptop.reload()
    rows = laptop.locator("table.sessions tbody tr")
    assert rows.count() == 2
    assert "this device" in laptop.locator("table.sessions tr.current").inner_text()
    laptop.screenshot(path=str(artifacts / "account-page.png"), full_page=True)
    # Keyboard: the first control the person tabs to is a labelled field, focus visible.
    laptop.keyboard.press("Tab")
    laptop.keyboard.press("Tab")
    focused = laptop.evaluate("document.activeElement.id")
    assert focused == "id_name"
    laptop.screenshot(path=str(artifacts / "account-page-focus.png"))

    other = laptop.locator("table.sessions tbody tr:not(.current)")
    other.get_by_role("button", name="Sign out").click()
    started = time.monotonic()
    laptop.wait_for_selector("text=That session was signed out.")

    status = _userinfo(live_server, token)
    while status == 200 and time.monotonic() - started < REFUSED_WITHIN:
        time.sleep(0.02)
        status = _userinfo(live_server, token)
    assert status == 401, f"still accepted {time.monotonic() - started:.2f}s after sign-out"
    assert rows.count() == 1
    # The sign-ins were journaled outside a transaction (core.journal): they reach the audit
    # store when the drain thread moves them, within 50 ms (issue 11), so the page is read
    # again until they are there. (They once never came: tests/audit/test_journal_thread.py.)
    deadline = time.monotonic() + 30
    history = laptop.locator("table.history").inner_text()
    while "Signed in from a new device" not in history and time.monotonic() < deadline:
        time.sleep(0.2)
        laptop.goto(f"{live_server.url}/account/")  # a GET: the sign-out was a POST
        history = laptop.locator("table.history").inner_text()
    assert "A session was signed out from the account page" in history
    assert "Signed in from a new device" in history
    laptop.screenshot(path=str(artifacts / "account-page-signed-out-other.png"), full_page=True)

    # The other browser is signed out: its next page asks it to sign in.
    phone.goto(f"{live_server.url}/account/")
    assert "/login" in phone.url
    assert problems == []
    phone_context.close()
    laptop_context.close()


def test_sign_out_everywhere_else_keeps_this_browser(live_server, browser, person) -> None:
    contexts = []
    pages = []
    for _ in range(3):
        context, page = _signed_in(browser, live_server, person.email)
        page.wait_for_url(f"{live_server.url}/account/")
        contexts.append(context)
        pages.append(page)
    here = pages[0]
    here.reload()
    assert here.locator("table.sessions tbody tr").count() == 3

    here.get_by_role("button", name="Sign out everywhere else").click()

    here.wait_for_selector("text=2 other sessions signed out.")
    assert here.locator("table.sessions tbody tr").count() == 1
    assert here.get_by_role("button", name="Sign out everywhere else").count() == 0
    assert LoginSession.objects.filter(user=person, ended_at__isnull=True).count() == 1
    for page in pages[1:]:
        page.goto(f"{live_server.url}/account/")
        assert "/login" in page.url
    here.goto(f"{live_server.url}/account/")
    assert here.url == f"{live_server.url}/account/"
    for context in contexts:
        context.close()


def test_account_page_on_a_phone(live_server, browser, person, artifacts) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{live_server.url}/login?next=/account/")
    page.fill("#id_email", person.email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/account/")
    page.get_by_text("Change your e-mail address").click()
    assert page.locator("#id_email").is_visible()
    # Nothing wider than the screen but the tables' own scrolling boxes.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    page.screenshot(path=str(artifacts / "account-page-phone.png"), full_page=True)
    context.close()
