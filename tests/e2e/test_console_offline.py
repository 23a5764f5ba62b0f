"""An operator revokes the offline access a person gave an application (OIDC Core §11), from
the console in headless Chromium: the grant leaves the person's page and the client's tokens
stop working."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from apps.accounts.services import user_create
from apps.audit.store import EventFilters, audit_store
from apps.tokens.models import OfflineGrant
from tests.console.conftest import offline_grant
from tests.tokens.conftest import TOKEN, form_post

pytestmark = pytest.mark.django_db(transaction=True)

OPS_PASSWORD = "another long passphrase"


def test_operator_revokes_an_offline_grant(
    live_server, page, person, empty_audit_store, artifacts
) -> None:
    operator = user_create(
        email="ops@example.com", password=OPS_PASSWORD, staff_role="administrator"
    )
    mail = offline_grant(person, name="Mail app")
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))

    user_url = f"{live_server.url}/console/users/{person.pk}/"
    page.goto(user_url)
    page.fill("#id_email", "ops@example.com")
    page.fill("#id_password", OPS_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(user_url)

    offline = page.get_by_role("heading", name="Offline access")
    assert offline.is_visible()
    rows = page.locator("table.offline-grants tbody tr")
    assert rows.count() == 1
    row = rows.first
    assert "Mail app" in row.inner_text()
    assert mail.rp.client_id in row.inner_text()
    assert "offline_access" in row.inner_text()
    assert page.get_by_role("link", name="Revoke all offline access").is_visible()
    assert page.get_by_role("link", name="Revoke everything").is_visible()
    offline.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "console-offline-grants.png"), full_page=True)

    row.get_by_role("link", name="Revoke").click()
    page.wait_for_url(f"{live_server.url}/console/offline-grants/{mail.grant.pk}/revoke/")
    assert page.inner_text("h1") == "Revoke the offline access of Mail app for ada@example.com?"
    page.screenshot(path=str(artifacts / "console-offline-grant-confirm.png"), full_page=True)
    page.get_by_role("button", name="Revoke offline access").click()

    page.wait_for_url(user_url)
    assert "Offline access of Mail app revoked." in page.inner_text("[role=status]")
    assert rows.count() == 1
    assert rows.first.inner_text().strip() == "No offline access."
    assert page.get_by_role("link", name="Revoke all offline access").count() == 0
    page.screenshot(path=str(artifacts / "console-offline-grant-revoked.png"), full_page=True)

    grant = OfflineGrant.objects.get(pk=mail.grant.pk)
    assert grant.revoke_reason == "operator"
    # The outbox merged with ClickHouse: a worker of another test may have shipped it.
    revoked = EventFilters(user_id=str(person.pk), event_type="offline_access.revoked")
    [event] = audit_store().iterate(revoked)
    assert event.actor_id == str(operator.pk)
    data = {"grant_type": "refresh_token", "refresh_token": mail.refresh_token}
    refused = form_post(HttpClient(), TOKEN, data, auth=mail.rp)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    assert problems == []
