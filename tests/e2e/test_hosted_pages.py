"""A person signs in and consents in headless Chromium: the hosted pages as people use them."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.rp import PASSWORD, REDIRECT_URI, new_verifier

pytestmark = pytest.mark.django_db(transaction=True)


def _authorize_url(live_server, client_id: str) -> str:
    query = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email", "state": "s-123", "code_challenge_method": "S256",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",  # RFC 7636 App. B
        "nonce": new_verifier(),
    }  # fmt: skip
    return f"{live_server.url}/oauth/authorize?{urlencode(query)}"


@pytest.mark.parametrize(("device", "viewport"), [("desktop", (1280, 800)), ("phone", (390, 844))])
def test_person_signs_in_and_consents_in_chromium(
    live_server, browser, person, rp, artifacts, device, viewport
) -> None:
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = context.new_page()
    blocked_scripts: list[str] = []
    page.on("console", lambda message: blocked_scripts.append(message.text))

    page.goto(_authorize_url(live_server, rp.client_id))
    assert page.inner_text("h1") == "Sign in"
    page.screenshot(path=str(artifacts / f"login-{device}.png"), full_page=True)
    page.fill("#id_email", "ADA@example.com")  # any case signs in
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    page.wait_for_selector("text=Allow Example RP?")
    assert "openid" in page.inner_text(".scopes")
    assert "See your email address" in page.inner_text(".scopes")
    page.screenshot(path=str(artifacts / f"consent-{device}.png"), full_page=True)
    # The relying party is not on this network: what matters is where the browser is sent.
    with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI)) as redirect:
        page.click("button[value=allow]")

    params = parse_qs(urlsplit(redirect.value.url).query)
    assert params["state"] == ["s-123"]
    assert params["iss"] == [live_server.url]
    assert len(params["code"][0]) >= 22
    assert [m for m in blocked_scripts if "rp.example.com" not in m] == []  # no console errors
    context.close()


def test_wrong_password_says_so_without_telling_which_part(
    live_server, browser, person, rp
) -> None:
    page = browser.new_page()
    page.goto(_authorize_url(live_server, rp.client_id))
    page.fill("#id_email", "ada@example.com")
    page.fill("#id_password", "not the password")
    page.click("button[type=submit]")

    assert page.inner_text("[role=alert]") == "Email or password is incorrect."
    assert page.input_value("#id_email") == "ada@example.com"
    page.close()
