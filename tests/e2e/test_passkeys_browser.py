"""Passkeys in headless Chromium with a virtual WebAuthn authenticator (Chrome DevTools
Protocol WebAuthn domain, through Playwright): a person adds a passkey on their security page
(apps/mfa/static/mfa/webauthn.js → apps/mfa/views.py), signs out, signs in by the browser's
passkey autofill (conditional UI) and with the "Sign in with a passkey" button (no password),
and removes the passkey after confirming it is them (OWASP ASVS 4.0.3 V3.7.1): the passkey
confirms for adding, only the password or another factor for its own removal. The
virtual authenticator is a platform one (internal transport) with resident keys and user
verification, as a phone or laptop passkey is."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from apps.mfa.models import WebAuthnCredential
from apps.sessions.models import LoginSession
from tests.e2e.browser_steps import (
    NO_CONDITIONAL_UI,
    password_sign_in,
    shot,
    sign_out,
    virtual_authenticator,
)
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_passkey_added_signs_in_without_password_and_is_removed_after_reauth(
    live_server, browser, person, artifacts
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    cdp, authenticator_id = virtual_authenticator(page)

    # Signed in with the password (a fresh sign-in: adding a factor needs no confirmation).
    password_sign_in(page, live_server, person.email, "/account/security/")
    page.wait_for_url(f"{live_server.url}/account/security/")

    # Add a passkey: the script fetches the options, the virtual authenticator answers.
    page.fill("#id_name", "Work laptop")
    page.click("button:text-is('Add a passkey')")
    page.wait_for_selector("text=“Work laptop” was added")
    credential = WebAuthnCredential.objects.get(user=person)
    assert credential.discoverable  # credProps said rk
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    assert len(stored["credentials"]) == 1
    assert stored["credentials"][0]["isResidentCredential"]
    assert "Work laptop" in page.inner_text("#factors")
    shot(page, artifacts, "security-page.png")

    # Conditional UI (WebAuthn L3 §5.1.4.1): on the sign-in page the script asks for a
    # passkey with mediation "conditional"; Chromium's virtual authenticator answers it with
    # its one discoverable credential, as a person picking it from the autofill list does.
    sign_out(page, live_server)
    page.goto(f"{live_server.url}/login?{urlencode({'next': '/account/'})}")
    page.wait_for_url(f"{live_server.url}/account/")
    [by_autofill] = LoginSession.objects.filter(user=person, ended_at__isnull=True)
    assert by_autofill.amr == ["hwk", "mfa"]  # device-bound key, user verified: level 3
    assert by_autofill.security_level == 3

    # The button, in a browser without conditional UI (made so for the next pages).
    sign_out(page, live_server)
    page.add_init_script(NO_CONDITIONAL_UI)
    page.goto(f"{live_server.url}/login?{urlencode({'next': '/account/'})}")
    assert page.get_attribute("#id_email", "autocomplete") == "username webauthn"
    shot(page, artifacts, "login-page.png")
    page.click("button:text-is('Sign in with a passkey')")
    page.wait_for_url(f"{live_server.url}/account/")
    [session] = LoginSession.objects.filter(user=person, ended_at__isnull=True)
    assert session.amr == ["hwk", "mfa"]

    # Removing it needs a fresh authentication: make the sign-in ten minutes old.
    LoginSession.objects.filter(pk=session.pk).update(
        authenticated_at=timezone.now() - timedelta(minutes=10)
    )
    # The passkey confirms it is them (a second-factor assertion: allowCredentials) ...
    page.goto(f"{live_server.url}/account/security/")
    page.click("#confirm-note a")
    page.wait_for_selector("h1:text('Confirm it is you')")
    page.click("button:text-is('Use a passkey')")
    page.wait_for_url(f"{live_server.url}/account/security/")
    assert page.locator("form[data-webauthn=create]").is_visible()  # adding is open now
    # ... but not its own removal: that takes the password or another factor (issue 15).
    page.click(f"a[href='/account/security/remove/webauthn/{credential.pk}']")
    page.wait_for_selector("text=another factor than the one you remove")
    shot(page, artifacts, "security-confirm.png")
    page.fill("#id_password", PASSWORD)
    page.click("button:text-is('Confirm with password')")
    page.wait_for_selector("h1:text('Remove “Work laptop”?')")
    page.click("button:text('Remove')")
    page.wait_for_selector("text=“Work laptop” was removed")
    assert not WebAuthnCredential.objects.filter(user=person).exists()

    assert [m for m in console if m.startswith(("error", "pageerror"))] == []
    context.close()


def test_cancelled_or_unknown_passkey_shows_an_error_and_the_button_comes_back(
    live_server, browser, person, artifacts
) -> None:
    """No credential on the authenticator for this site: the browser refuses
    (NotAllowedError); the page says so in its alert and the button works again."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    virtual_authenticator(page)
    # no autofill request: the button's own request is the one refused
    page.add_init_script(NO_CONDITIONAL_UI)
    page.goto(f"{live_server.url}/login")
    button = page.locator("button:text-is('Sign in with a passkey')")
    button.click()
    alert = page.locator("form[data-webauthn] [data-webauthn-error]")
    alert.wait_for(state="visible", timeout=150_000)  # the browser's own time-out at worst
    assert "cancelled or timed out" in alert.inner_text()
    assert button.is_enabled()
    assert button.inner_text() == "Sign in with a passkey"
    shot(page, artifacts, "login-page-passkey-error.png")
    context.close()


def test_button_shows_progress_while_the_browser_waits_for_a_key(
    live_server, browser, person
) -> None:
    """WebAuthn on, no authenticator attached: the browser waits (up to the options' time-out)
    and the button says so, disabled, until then."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    page.add_init_script(NO_CONDITIONAL_UI)
    page.goto(f"{live_server.url}/login")
    button = page.locator("form[data-webauthn] button[type=submit]")
    button.focus()
    page.keyboard.press("Enter")  # keyboard alone
    page.wait_for_selector("form[data-webauthn] button[aria-busy=true]")
    assert button.is_disabled()
    assert button.inner_text() == "Waiting for your passkey…"
    context.close()
