"""An operator searches the audit trail in headless Chromium: filters, an older page, a CSV
download; the page is screenshotted for a person to look at (test-artifacts/)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.services import user_create
from tests.audit.factories import audit_event, outbox_insert, ship_all

pytestmark = pytest.mark.django_db(transaction=True)

OPS_PASSWORD = "another long passphrase"


def test_operator_searches_pages_and_exports_the_audit_trail(
    live_server, page, person, empty_audit_store, artifacts
) -> None:
    user_create(email="ops@example.com", password=OPS_PASSWORD, staff_role="administrator")
    start = timezone.now() - timedelta(hours=2)
    failures = [
        audit_event(
            event_type="login.failed",
            occurred_at=start + timedelta(minutes=i),
            success=False,
            severity="high",
            error_code="wrong_credentials",
            ip_address=f"203.0.113.{i % 7 + 1}",
            user_agent="curl/8.5.0",
            metadata={"provider": "local", "email": f"guess{i}@example.com"},
        )
        for i in range(60)
    ]
    outbox_insert(failures[:40])
    ship_all()  # most in ClickHouse, the newest still in the outbox
    outbox_insert(failures[40:])
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))

    page.goto(f"{live_server.url}/console/audit/")
    page.fill("#id_email", "ops@example.com")
    page.fill("#id_password", OPS_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/console/audit/")
    page.select_option("#id_event_type", "login.failed")
    page.select_option("#id_success", "no")
    page.fill("#id_since", (start - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Search").click()

    page.wait_for_url("**/console/audit/?*event_type=login.failed*")
    rows = page.locator("table.events tbody tr")
    assert rows.count() == 50
    assert "guess59@example.com" in rows.first.inner_text()  # the newest first
    assert page.locator("#id_event_type").input_value() == "login.failed"  # the form keeps it
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, "the results fit a 1280px window"
    page.screenshot(path=str(artifacts / "console-audit.png"), full_page=True)

    page.get_by_role("link", name="Older →").click()
    page.wait_for_url("**/console/audit/?*after=*")
    assert rows.count() == 10
    assert "guess0@example.com" in rows.last.inner_text()

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    # A plain link, no download attribute: Chromium fetches those without client hints, and
    # the session's device binding (apps.sessions.binding) would end the session.
    exported = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert len(exported) == 60  # the whole search, not the page
    assert download.value.suggested_filename.startswith("audit-events-")
    assert problems == []
