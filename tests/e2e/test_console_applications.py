"""An administrator registers an OAuth client in the console, rotates its secret and looks at
the signing keys, in headless Chromium (screenshots in test-artifacts/)."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import check_password

from apps.accounts.services import user_create
from apps.tokens.models import Client

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN_PASSWORD = "an administrator's long passphrase"


def test_administrator_registers_a_client_rotates_its_secret_and_sees_the_keys(
    live_server, page, artifacts
) -> None:
    user_create(email="root@example.com", password=ADMIN_PASSWORD, staff_role="administrator")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))

    page.goto(f"{live_server.url}/console/clients/")
    page.fill("#id_email", "root@example.com")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/console/clients/")
    page.get_by_role("link", name="Register a client").click()

    page.wait_for_url(f"{live_server.url}/console/clients/register/")
    page.fill("#id_name", "Billing portal")
    page.fill(
        "#id_redirect_uris",
        "https://billing.example.com/callback\nhttps://billing.example.com/silent",
    )
    page.fill("#id_post_logout_redirect_uris", "https://billing.example.com/bye")
    page.select_option("#id_id_token_alg", "ES256")
    page.screenshot(path=str(artifacts / "console-client-register.png"), full_page=True)
    page.get_by_role("button", name="Register").click()

    page.wait_for_selector("text=Billing portal is registered")
    first_secret = page.inner_text(".secret-value")
    assert "only time it is shown" in page.inner_text("[role=alert]")
    page.screenshot(path=str(artifacts / "console-client-secret.png"), full_page=True)
    client = Client.objects.get(name="Billing portal")
    assert check_password(first_secret, client.client_secret)

    page.get_by_role("link", name="Done").click()
    page.wait_for_url(f"{live_server.url}/console/clients/{client.client_id}/")
    facts = page.inner_text("dl.facts")
    assert "https://billing.example.com/silent" in facts
    assert first_secret not in page.content()  # shown once
    page.screenshot(path=str(artifacts / "console-client.png"), full_page=True)

    page.get_by_role("link", name="Rotate secret").click()
    assert page.inner_text("h1") == "Rotate the secret of Billing portal?"
    page.screenshot(path=str(artifacts / "console-client-rotate-confirm.png"), full_page=True)
    page.get_by_role("button", name="Rotate secret").click()
    page.wait_for_selector("text=New secret for Billing portal")
    second_secret = page.inner_text(".secret-value")
    assert second_secret != first_secret
    client.refresh_from_db()
    assert check_password(second_secret, client.client_secret)
    assert not check_password(first_secret, client.client_secret)

    page.get_by_role("link", name="Applications").click()
    page.wait_for_url(f"{live_server.url}/console/clients/")
    assert "Billing portal" in page.inner_text("table.clients")
    page.screenshot(path=str(artifacts / "console-clients.png"), full_page=True)

    page.get_by_role("link", name="Keys").click()
    page.wait_for_url(f"{live_server.url}/console/keys/")
    for alg in ("RS256", "ES256", "EdDSA"):
        assert page.get_by_role("heading", name=alg).is_visible()
    assert page.locator("table.keys .pill", has_text="active").count() == 3
    page.screenshot(path=str(artifacts / "console-keys.png"), full_page=True)
    page.get_by_role("link", name="Rotate now…").click()
    assert "stay in the JWKS" in page.inner_text(".confirm")
    page.screenshot(path=str(artifacts / "console-keys-rotate-confirm.png"), full_page=True)
    page.get_by_role("button", name="Rotate now").click()
    page.wait_for_url(f"{live_server.url}/console/keys/")
    assert page.locator("table.keys .pill", has_text="retired").count() == 3
    page.screenshot(path=str(artifacts / "console-keys-rotated.png"), full_page=True)
    assert problems == []
