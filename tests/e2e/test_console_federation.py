"""The console's identity providers in headless Chromium (issue 17): an administrator adds a
Google provider on the form (its secret typed, never shown back; a wrong field's message under
it), reads its redirect URI, disables and enables it behind confirmations, is refused the
delete while someone is linked, unlinks that person's identity from their page, then deletes
it; a viewer sees the same pages without a control that changes anything. Screenshots are kept
in test-artifacts/ for a person to look at."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.accounts.services import user_create
from apps.federation.models import FederatedIdentity, Provider
from apps.federation.providers import provider_secret
from tests.e2e.browser_steps import shot
from tests.federation.standins import GoogleStandIn

pytestmark = pytest.mark.django_db(transaction=True)

STAFF_PASSWORD = "a staff member's long passphrase"
PROVIDERS = "/console/federation/providers/"


@pytest.fixture
def google_standin() -> Iterator[GoogleStandIn]:
    standin = GoogleStandIn().start()
    yield standin
    standin.stop()


def _sign_in(page, live_server, email: str, path: str) -> None:
    page.goto(f"{live_server.url}{path}")
    page.fill("#id_email", email)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("form:not([data-webauthn]) button[type=submit]")
    page.wait_for_url(f"{live_server.url}{path}")


def test_an_administrator_adds_a_provider_and_manages_it_and_a_viewer_only_reads(
    live_server, page, browser, artifacts, google_standin, empty_audit_store
) -> None:
    user_create(email="root@example.com", password=STAFF_PASSWORD, staff_role="administrator")
    user_create(email="viewer@example.com", password=STAFF_PASSWORD, staff_role="viewer")
    person = user_create(email="ada@example.com", name="Ada Lovelace", password=STAFF_PASSWORD)
    problems: list[str] = []
    # The form shown again with its errors answers 400 (Chromium logs that as a console
    # error); script errors and 5xx are what must not happen.
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    page.on("response", lambda r: r.status >= 500 and problems.append(f"{r.status} {r.url}"))
    secret = "a-google-client-secret-" + google_standin.client_secret[:8]

    _sign_in(page, live_server, "root@example.com", PROVIDERS)
    assert "No identity providers" in page.inner_text("table.providers")
    shot(page, artifacts, "console-federation-empty.png")

    # The form: a reserved parameter and an issuer with a query, each refused under its field.
    page.get_by_role("link", name="Add a provider").click()
    page.wait_for_url(f"{live_server.url}{PROVIDERS}new/")
    page.fill("#id_slug", "google")
    page.fill("#id_name", "Google")
    page.select_option("#id_kind", "google")
    page.fill("#id_issuer", google_standin.url + "/?tenant=x")
    page.fill("#id_client_id", google_standin.client_id)
    page.fill("#id_client_secret", secret)
    page.fill("#id_extra_params", "prompt=select_account\nnonce=mine")
    page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_selector(".field.invalid")
    issuer_error = page.inner_text("#id_issuer_error")
    assert "query" in issuer_error, issuer_error
    params_error = page.inner_text("#id_extra_params_error")
    assert "nonce" in params_error, params_error
    # The secret typed is not carried back, not even into the form shown again.
    assert page.input_value("#id_client_secret") == ""
    assert secret not in page.content()
    assert not Provider.objects.exists()
    shot(page, artifacts, "console-federation-form-errors.png")

    page.fill("#id_issuer", google_standin.url)
    page.fill("#id_extra_params", "prompt=select_account")
    page.fill("#id_client_secret", secret)
    page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_selector("text=Google created.")
    provider = Provider.objects.get(slug="google")
    assert page.url == f"{live_server.url}{PROVIDERS}{provider.pk}/"
    assert provider_secret(provider) == secret
    assert secret not in page.content()
    facts = page.inner_text("dl.facts")
    assert f"{live_server.url}/login/federated/google/callback" in facts
    assert "prompt=select_account" in facts
    shot(page, artifacts, "console-federation-provider.png")

    # Disable, then enable: each behind a page that says what it does.
    page.get_by_role("link", name="Disable").click()
    assert page.inner_text("h1") == "Disable Google?"
    shot(page, artifacts, "console-federation-disable-confirm.png")
    page.get_by_role("button", name="Disable").click()
    page.wait_for_selector("text=Google disabled.")
    assert page.locator("dl.facts .pill", has_text="disabled").is_visible()
    provider.refresh_from_db()
    assert not provider.enabled
    page.get_by_role("link", name="Enable").click()
    assert page.inner_text("h1") == "Enable Google?"
    page.get_by_role("button", name="Enable").click()
    page.wait_for_selector("text=Google enabled.")
    provider.refresh_from_db()
    assert provider.enabled

    # Someone is linked: the delete is refused, with the reason, on the provider's page.
    identity = FederatedIdentity.objects.create(
        user=person,
        provider=provider,
        subject="110169484474386276334",
        email="ada@example.com",
        email_verified=True,
        display="Ada Lovelace",
    )
    page.reload()
    page.get_by_role("link", name="Delete").click()
    page.wait_for_url(f"{live_server.url}{PROVIDERS}{provider.pk}/")
    refusal = page.inner_text(".messages")
    assert "linked" in refusal, refusal
    assert Provider.objects.filter(pk=provider.pk).exists()
    shot(page, artifacts, "console-federation-delete-refused.png")

    page.get_by_role("link", name="← All identity providers").click()
    row = page.locator("table.providers tbody tr", has_text="Google")
    assert "enabled" in row.inner_text()
    assert row.locator("td").nth(5).inner_text() == "1"
    shot(page, artifacts, "console-federation-list.png")

    # The person's page: the linked identity, unlinked by the operator behind a confirmation.
    page.goto(f"{live_server.url}/console/users/{person.pk}/")
    identities = page.locator("table.identities")
    assert "110169484474386276334" in identities.inner_text()
    page.locator("#identities").scroll_into_view_if_needed()
    shot(page, artifacts, "console-federation-person.png")
    identities.get_by_role("link", name="Unlink").click()
    assert page.inner_text("h1") == "Unlink Google from ada@example.com?"
    shot(page, artifacts, "console-federation-unlink-confirm.png")
    page.get_by_role("button", name="Unlink").click()
    page.wait_for_selector("text=Google unlinked from ada@example.com.")
    assert "No linked identity" in page.inner_text("table.identities")
    assert not FederatedIdentity.objects.filter(pk=identity.pk).exists()

    # Nobody linked now: the delete is asked, then done.
    page.goto(f"{live_server.url}{PROVIDERS}{provider.pk}/")
    page.get_by_role("link", name="Delete").click()
    assert page.inner_text("h1") == "Delete Google (google)?"
    page.get_by_role("button", name="Delete provider").click()
    page.wait_for_selector("text=Google deleted.")
    assert page.url == f"{live_server.url}{PROVIDERS}"
    assert not Provider.objects.exists()
    assert problems == []

    # A viewer reads the same pages with no control that changes anything.
    again = Provider.objects.create(
        slug="google",
        name="Google",
        kind="google",
        issuer=google_standin.url,
        client_id=google_standin.client_id,
    )
    FederatedIdentity.objects.create(user=person, provider=again, subject="s-2", display="Ada")
    viewer = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    viewer.set_default_timeout(15_000)
    _sign_in(viewer, live_server, "viewer@example.com", PROVIDERS)
    assert viewer.get_by_role("link", name="Add a provider").count() == 0
    viewer.get_by_role("link", name="Google").click()
    viewer.wait_for_url(f"{live_server.url}{PROVIDERS}{again.pk}/")
    for control in ("Edit", "Disable", "Enable", "Delete"):
        assert viewer.get_by_role("link", name=control, exact=True).count() == 0, control
    shot(viewer, artifacts, "console-federation-provider-viewer.png")
    viewer.goto(f"{live_server.url}/console/users/{person.pk}/")
    assert "s-2" in viewer.inner_text("table.identities")
    assert viewer.locator("table.identities").get_by_role("link", name="Unlink").count() == 0
    refused = viewer.goto(f"{live_server.url}{PROVIDERS}new/")
    assert refused is not None
    assert refused.status == 403
    assert "administrator role" in viewer.inner_text("main")
    viewer.context.close()
