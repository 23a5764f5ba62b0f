"""A person's own federation pages in headless Chromium (issue 17): signed in with a password,
they link Google from their security page (the Google stand-in approves at once and sends
them back) and unlink it; the sign-in page shows one button per enabled provider under the
passkey button, at a laptop's width and a phone's. Screenshots in test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.accounts.services import user_create
from apps.federation.models import FederatedIdentity
from apps.federation.providers import provider_create, provider_set_enabled
from tests.e2e.browser_steps import shot
from tests.federation.standins import GitHubStandIn, GoogleStandIn
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

SECURITY = "/account/security/"


@pytest.fixture
def google(live_server) -> Iterator[tuple[GoogleStandIn, object]]:
    """The Google stand-in and its provider, made as the console makes one."""
    standin = GoogleStandIn().start()
    provider = provider_create(
        actor_id=None, slug="google", name="Google", kind="google", issuer=standin.url,
        client_id=standin.client_id, client_secret=standin.client_secret,
    )  # fmt: skip
    yield standin, provider
    # Every process's cached list of enabled providers is dropped with it (tests/e2e/
    # test_federation_browser.py's fixture does the same).
    provider_set_enabled(provider=provider, enabled=False, actor_id=None)
    standin.stop()


@pytest.fixture
def github(live_server) -> Iterator[object]:
    standin = GitHubStandIn().start()
    provider = provider_create(
        actor_id=None, slug="github", name="GitHub", kind="github", issuer=standin.url,
        client_id=standin.client_id, client_secret=standin.client_secret,
    )  # fmt: skip
    yield provider
    provider_set_enabled(provider=provider, enabled=False, actor_id=None)
    standin.stop()


def test_a_person_links_google_on_the_security_page_then_unlinks_it(
    live_server, page, artifacts, google
) -> None:
    standin, provider = google
    person = user_create(email="pat@example.com", name="Pat Example", password=PASSWORD)
    standin.user = {**standin.user, "email": "pat.upstream@example.com"}
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on("response", lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}"))

    page.goto(f"{live_server.url}/login?next={SECURITY}")
    page.fill("#id_email", person.email)
    page.fill("#id_password", PASSWORD)
    page.click("form:not([data-webauthn]) button[type=submit]")
    page.wait_for_url(f"{live_server.url}{SECURITY}")
    section = page.locator("#linked")
    assert section.get_by_role("heading", name="Linked accounts").is_visible()
    assert "No account of another provider is linked" in section.inner_text()
    section.scroll_into_view_if_needed()
    shot(page, artifacts, "federation-security-unlinked.png")

    section.get_by_role("button", name="Link Google").click()
    page.wait_for_url(f"{live_server.url}{SECURITY}#linked")
    page.wait_for_selector("text=The account was linked")
    identity = FederatedIdentity.objects.get(user=person)
    assert (identity.provider_id, identity.subject) == (provider.pk, standin.user["sub"])
    row = page.locator("#linked tbody tr")
    assert row.count() == 1
    assert "Google" in row.inner_text()
    assert (identity.display or identity.email) in row.inner_text()
    shot(page, artifacts, "federation-security-linked.png")

    row.get_by_role("button", name="Unlink Google").click()
    page.wait_for_selector("text=Google is no longer linked to your account.")
    assert not FederatedIdentity.objects.filter(user=person).exists()
    assert "No account of another provider is linked" in page.inner_text("#linked")
    shot(page, artifacts, "federation-security-unlinked-again.png")
    assert errors == []


def test_the_sign_in_page_has_a_button_per_enabled_provider_under_the_passkey_one(
    live_server, browser, artifacts, google, github
) -> None:
    for name, width, height in (("desktop", 1280, 800), ("phone", 390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/login")
        buttons = page.locator("nav.providers a[data-provider]")
        assert sorted(buttons.all_inner_texts()) == ["Sign in with GitHub", "Sign in with Google"]
        passkey = page.get_by_role("button", name="Sign in with a passkey").bounding_box()
        assert passkey is not None
        for index in range(buttons.count()):
            box = buttons.nth(index).bounding_box()
            assert box is not None
            assert box["y"] >= passkey["y"] + passkey["height"]  # under the passkey button
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= width  # no sideways scrolling on a phone
        shot(page, artifacts, f"federation-login-providers-{name}.png")
        context.close()
