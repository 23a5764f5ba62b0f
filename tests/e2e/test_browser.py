"""Real pages in headless Chromium (Playwright, launched from the system chromium binary)."""

from __future__ import annotations

import json

import pytest

from apps.accounts.models import User
from apps.core.tasks import heartbeat


def test_chromium_opens_readyz(live_server, celery_worker, page) -> None:
    heartbeat.apply_async(ignore_result=False).get(timeout=30)

    response = page.goto(f"{live_server.url}/readyz")

    assert response is not None
    assert response.status == 200
    body = json.loads(page.inner_text("body"))
    assert body["status"] == "ready"
    assert response.headers["x-request-id"]


@pytest.mark.django_db(transaction=True)
def test_operator_signs_in_and_sees_system_status(live_server, page, artifacts) -> None:
    User.objects.create_superuser(email="ops@example.com", password="correct horse battery")

    stylesheets: list[int] = []
    page.on("response", lambda r: r.url.endswith(".css") and stylesheets.append(r.status))
    page.goto(f"{live_server.url}/console/")
    assert "/login" in page.url  # staff only: anonymous visitors are sent to sign in
    page.fill("input[name=email]", "ops@example.com")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")

    page.wait_for_url(f"{live_server.url}/console/")
    assert page.inner_text("h1") == "System status"
    rows = {
        row.query_selector("td").inner_text(): row.query_selector(".pill").inner_text()
        for row in page.query_selector_all("tbody tr")
    }
    assert rows["database"] == "up"
    assert rows["redis"] == "up"
    assert rows["worker"] == "down"  # no worker here: the page says so instead of hiding it
    assert stylesheets
    assert set(stylesheets) == {200}
    page.screenshot(path=str(artifacts / "console-status.png"), full_page=True)


def test_unknown_page_in_a_browser_is_a_readable_404(live_server, page) -> None:
    response = page.goto(f"{live_server.url}/definitely/not/here")

    assert response is not None
    assert response.status == 404
    assert page.inner_text("h1") == "Error 404"
    assert "Check the URL" in page.inner_text("main")
