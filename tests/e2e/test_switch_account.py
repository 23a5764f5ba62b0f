"""In Chromium: the consent page says where the browser goes next, "Not you? Sign in as
someone else" ends the first person's session and resumes the authorization request for the
second, keyboard only; a sign-out to an unregistered address says exactly that."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from apps.accounts.services import user_create
from apps.sessions.models import LoginSession
from tests.rp import PASSWORD, REDIRECT_URI, new_verifier

pytestmark = pytest.mark.django_db(transaction=True)


def _authorize_url(live_server, client_id: str) -> str:
    query = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email", "state": "s-switch", "code_challenge_method": "S256",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",  # RFC 7636 App. B
        "nonce": new_verifier(),
    }  # fmt: skip
    return f"{live_server.url}/oauth/authorize?{urlencode(query)}"


def _sign_in(page, email: str) -> None:
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD)
    page.press("#id_password", "Enter")


def _live_sessions(user) -> int:
    return LoginSession.objects.filter(user=user, ended_at__isnull=True).count()


def test_not_you_signs_out_and_resumes_the_request_for_someone_else(
    live_server, page, person, rp, artifacts
) -> None:
    grace = user_create(email="grace@example.com", name="Grace Hopper", password=PASSWORD)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))

    page.goto(_authorize_url(live_server, rp.client_id))
    _sign_in(page, "ada@example.com")
    page.wait_for_selector("text=Allow Example RP?")
    assert page.inner_text(".redirect-origin") == "https://rp.example.com"
    assert "Signed in as ada@example.com" in page.inner_text("main")
    page.screenshot(path=str(artifacts / "consent-switch-account.png"), full_page=True)
    assert _live_sessions(person) == 1

    # keyboard only: Tab reaches the button, Enter presses it
    switch = page.locator("button[value=switch_account]")
    for _ in range(20):
        if switch.evaluate("element => element === document.activeElement"):
            break
        page.keyboard.press("Tab")
    assert switch.evaluate("element => element === document.activeElement")
    page.keyboard.press("Enter")

    page.wait_for_selector("#id_email")
    assert page.inner_text("h1") == "Sign in"
    assert page.input_value("#id_email") == ""  # the first person's address is not offered
    assert _live_sessions(person) == 0
    _sign_in(page, "grace@example.com")
    page.wait_for_selector("text=Allow Example RP?")
    assert "Signed in as grace@example.com" in page.inner_text("main")
    with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI)) as redirect:
        page.click("button[value=allow]")

    params = parse_qs(urlsplit(redirect.value.url).query)
    assert params["state"] == ["s-switch"]
    assert "code" in params
    assert _live_sessions(grace) == 1
    assert [m for m in console if "rp.example.com" not in m] == []  # CSP: nothing blocked


def test_sign_out_to_an_unregistered_address_says_so(
    live_server, page, person, rp, artifacts
) -> None:
    page.goto(_authorize_url(live_server, rp.client_id))
    _sign_in(page, "ada@example.com")
    page.wait_for_selector("text=Allow Example RP?")

    query = urlencode(
        {"client_id": rp.client_id, "post_logout_redirect_uri": "https://evil.example/out"}
    )
    response = page.goto(f"{live_server.url}/oauth/logout?{query}")

    assert response is not None
    assert response.status == 400
    assert page.inner_text("h1") == "This application's sign-out address is not registered"
    assert "has not registered for after sign-out" in page.inner_text("main")
    page.screenshot(path=str(artifacts / "logout-unregistered-address.png"), full_page=True)
    page.click("button[value=logout]")
    page.wait_for_selector("text=You are signed out")
    assert urlsplit(page.url).netloc == urlsplit(live_server.url).netloc  # sent nowhere else
    assert _live_sessions(person) == 0
