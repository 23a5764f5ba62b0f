"""Steps the Chromium tests of passkeys and second factors share: a virtual WebAuthn
authenticator (Chrome DevTools Protocol WebAuthn domain), screenshots kept for a person to
look at, signing out as a person does, and a password sign-in."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from tests.rp import PASSWORD

SHOTS = Path("/tmp/mfa-shots")
# No autofill request (conditional UI) on the sign-in page: with a discoverable passkey on
# the virtual authenticator Chromium would answer it at once and sign in without password.
NO_CONDITIONAL_UI = (
    "PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);"
)


def virtual_authenticator(page) -> tuple[object, str]:
    """A platform authenticator (internal transport) with resident keys and user
    verification, as a phone or laptop passkey is."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


def shot(page, artifacts: Path, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)
    page.screenshot(path=str(artifacts / name), full_page=True)


def sign_out(page, live_server) -> None:
    """RP-initiated logout's confirmation page, as a person signs out."""
    page.goto(f"{live_server.url}/oauth/logout")
    page.click("button[value=logout]")
    page.wait_for_selector("text=You are signed out")


def password_sign_in(page, live_server, email: str, next_url: str) -> None:
    """Types the email and password on the sign-in page (the password form, not the passkey
    one) and submits; the caller waits for where that leads."""
    page.goto(f"{live_server.url}/login?{urlencode({'next': next_url})}")
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD)
    page.click("form:not([data-webauthn]) button[type=submit]")
