"""The second factor in headless Chromium, on the real pages (issue 15):
- a passkey (registered on the security page, Chromium's virtual WebAuthn authenticator
  through the Chrome DevTools Protocol) used as the second factor after the password, on the
  page that offers it beside an authenticator app and a recovery code;
- step-up through `acr_values` (OIDC Core §3.1.2.1): a relying party asks a password-only
  session for MFA; the browser is asked for the second factor alone (docs/architecture.md,
  "Authentication levels and step-up"), types the authenticator app's code and comes back to
  the client with a code whose ID token says acr/amr/auth_time (OIDC Core §2, RFC 8176) for
  the same sign-in (sid);
- enrolment at sign-in when a policy requires a second factor and the person has none
  (NIST SP 800-63B §5.1.2: recovery codes shown once).
The relying party's redirect is intercepted (page.route), never loaded."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import expect

from apps.mfa.models import RecoveryCode, TotpDevice, WebAuthnCredential
from apps.mfa.recovery import recovery_codes_generate
from apps.sessions.levels import ACR_MFA, ACR_PASSWORD
from apps.sessions.models import LoginSession
from tests.e2e.browser_steps import (
    NO_CONDITIONAL_UI,
    password_sign_in,
    shot,
    sign_out,
    virtual_authenticator,
)
from tests.rp import REDIRECT_URI, TotpCodes, new_verifier, totp_enrolled

pytestmark = pytest.mark.django_db(transaction=True)

SECOND_FACTOR = re.compile(r".*/login/second-factor$")


def _page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    return context, page, errors


def _live_session(person) -> LoginSession:
    [session] = LoginSession.objects.filter(user=person, ended_at__isnull=True)
    return session


def test_a_passkey_as_second_factor_after_the_password(
    live_server, browser, person, artifacts
) -> None:
    context, page, errors = _page(browser)
    cdp, authenticator_id = virtual_authenticator(page)

    # A passkey added on the security page (the script and the virtual authenticator).
    password_sign_in(page, live_server, person.email, "/account/security/")
    page.wait_for_url(f"{live_server.url}/account/security/")
    page.fill("#id_name", "Work laptop")
    page.click("button:text-is('Add a passkey')")
    page.wait_for_selector("text=“Work laptop” was added")
    assert WebAuthnCredential.objects.filter(user=person).count() == 1
    sign_out(page, live_server)
    # An authenticator app and recovery codes too (the services): the page offers all three.
    totp_enrolled(person)
    recovery_codes_generate(user=person)

    # The password is right: the second step asks for the passkey; nothing signed in yet.
    page.add_init_script(NO_CONDITIONAL_UI)  # the password, not the passkey autofill
    password_sign_in(page, live_server, person.email, "/account/")
    page.wait_for_url(SECOND_FACTOR)
    assert page.inner_text("h1") == "Second step of sign-in"
    assert page.locator("#id_password").count() == 0
    assert not LoginSession.objects.filter(user=person, ended_at__isnull=True).exists()
    shot(page, artifacts, "second-factor.png")
    assert page.locator("#id_totp_code").is_visible()
    page.click("summary:text-is('Use a recovery code')")
    expect(page.locator("#id_recovery_code")).to_be_visible()
    shot(page, artifacts, "second-factor-recovery-code.png")

    page.click("form[data-webauthn=get] button[type=submit]")
    page.wait_for_url(f"{live_server.url}/account/")
    session = _live_session(person)
    # Chromium's virtual authenticator is device-bound (not backup-eligible) and verified
    # the person: RFC 8176 hwk + mfa after pwd, level 3 (apps.sessions.levels).
    assert session.amr[:2] == ["pwd", "hwk"]
    assert session.amr == ["pwd", "hwk", "mfa"]
    assert session.security_level >= 2
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    assert stored["credentials"][0]["signCount"] >= 2  # registered, then asserted

    assert errors == []
    context.close()


def _authorize(live_server, page, client: OAuth2Session, **params: str) -> tuple[str, str, str]:
    """Opens an authorize URL in the page; returns (url, verifier, nonce)."""
    verifier, nonce = new_verifier(), new_verifier()
    url, _ = client.create_authorization_url(
        f"{live_server.url}/oauth/authorize", code_verifier=verifier, nonce=nonce, **params
    )
    page.goto(url)
    return url, verifier, nonce


def _id_token(live_server, client: OAuth2Session, location: str, verifier: str, nonce: str):
    """The client's back channel: the code for tokens, the ID token checked against our
    JWKS (OIDC Core §3.1.3.7: issuer, audience, nonce)."""
    token = client.fetch_token(
        f"{live_server.url}/oauth/token", authorization_response=location, code_verifier=verifier
    )
    metadata = requests.get(f"{live_server.url}/.well-known/openid-configuration", timeout=10)
    keys = KeySet.import_key_set(requests.get(metadata.json()["jwks_uri"], timeout=10).json())
    claims = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims
    assert (claims["iss"], claims["aud"], claims["nonce"]) == (
        live_server.url,
        client.client_id,
        nonce,
    )
    return claims


def test_step_up_through_acr_values_asks_the_second_factor_alone(
    live_server, browser, person, rp, artifacts
) -> None:
    context, page, errors = _page(browser)
    # The relying party's redirect: recorded, answered here, never loaded.
    page.route(
        "https://rp.example.com/**",
        lambda route: route.fulfill(status=200, content_type="text/plain", body="RP"),
    )
    client = OAuth2Session(
        rp.client_id, rp.client_secret, redirect_uri=REDIRECT_URI,
        code_challenge_method="S256", scope="openid profile email",
    )  # fmt: skip

    # Signed in with the password alone (no factor yet); the client gets a password-level
    # sign-in after consent.
    password_sign_in(page, live_server, person.email, "/account/")
    page.wait_for_url(f"{live_server.url}/account/")
    _, verifier, nonce = _authorize(live_server, page, client)
    page.click("button[name=decision][value=allow]")
    page.wait_for_url(lambda url: url.startswith(REDIRECT_URI))
    first = _id_token(live_server, client, page.url, verifier, nonce)
    assert (first["acr"], first["amr"]) == (ACR_PASSWORD, ["pwd"])

    # The person sets up an authenticator app afterwards (the service, as the security page).
    codes = TotpCodes(totp_enrolled(person))

    # The client asks for MFA: the second-factor page, not the password form.
    _, verifier, nonce = _authorize(live_server, page, client, acr_values=ACR_MFA)
    page.wait_for_url(SECOND_FACTOR)
    assert page.inner_text("h1") == "Confirm it is you"
    assert page.locator("#id_password").count() == 0
    shot(page, artifacts, "second-factor-step-up.png")
    page.fill("#id_totp_code", codes())
    page.click("button:text-is('Verify')")
    page.wait_for_url(lambda url: url.startswith(REDIRECT_URI))
    assert "code" in parse_qs(urlsplit(page.url).query)
    stepped = _id_token(live_server, client, page.url, verifier, nonce)
    assert (stepped["acr"], stepped["amr"]) == (ACR_MFA, ["pwd", "otp"])
    assert stepped["sid"] == first["sid"]  # the same sign-in, stepped up
    assert stepped["auth_time"] >= first["auth_time"]
    session = _live_session(person)
    assert str(session.pk) == stepped["sid"]
    assert (session.amr, session.security_level) == (["pwd", "otp"], 2)
    assert int(session.authenticated_at.timestamp()) == stepped["auth_time"]

    client.close()
    assert errors == []
    context.close()


def test_enrolment_at_sign_in_when_a_second_factor_is_required(
    live_server, browser, person, artifacts, settings
) -> None:
    settings.MFA_REQUIRED = True  # IDP_MFA_REQUIRED; the live server runs in this process
    context, page, errors = _page(browser)

    password_sign_in(page, live_server, person.email, "/account/")
    page.wait_for_url(f"{live_server.url}/login/second-factor/enrol")
    assert page.inner_text("h1") == "Set up a second factor"
    assert not LoginSession.objects.filter(user=person, ended_at__isnull=True).exists()
    shot(page, artifacts, "second-factor-enrol.png")

    # The key shown as text, as a person types it into their app.
    secret = "".join(page.inner_text("code.secret").split())
    totp = pyotp.TOTP(secret)
    # A mistyped code first: said next to the field, which is marked invalid.
    window = {totp.at(time.time() + offset) for offset in (-60, -30, 0, 30, 60)}
    page.fill("#id_totp_code", next(c for c in ("123456", "654321", "111111") if c not in window))
    page.click("button:text-is('Confirm')")
    expect(page.locator("#id_totp_code-error")).to_be_visible()
    assert page.get_attribute("#id_totp_code", "aria-invalid") == "true"
    assert page.get_attribute("#id_totp_code", "aria-describedby") == "id_totp_code-error"
    shot(page, artifacts, "second-factor-enrol-error.png")
    # The page's own 400, as answered (Chromium logs it); nothing else.
    assert [e for e in errors if "status of 400" not in e] == []
    errors.clear()
    page.fill("#id_totp_code", totp.now())
    page.click("button:text-is('Confirm')")
    page.wait_for_selector("h1:text-is('Your second factor is set up')")
    shown = [code.strip() for code in page.locator("ol.codes li").all_inner_texts()]
    assert len(shown) == len(set(shown)) == 10
    assert RecoveryCode.objects.filter(code_set__user=person, used_at__isnull=True).count() == 10
    assert TotpDevice.objects.get(user=person).confirmed_at is not None
    shot(page, artifacts, "second-factor-recovery-codes.png")

    page.click("a:text-is('I have saved them: continue')")
    page.wait_for_url(f"{live_server.url}/account/")
    session = _live_session(person)
    assert (session.amr, session.acr, session.security_level) == (["pwd", "otp"], ACR_MFA, 2)
    # Shown once: the enrolment is over, the page does not come back with them.
    page.goto(f"{live_server.url}/login/second-factor/enrol")
    page.wait_for_selector("h1:text-is('Sign in again')")
    assert page.locator("ol.codes").count() == 0

    assert errors == []
    context.close()
