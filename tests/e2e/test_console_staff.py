"""An administrator makes someone an operator on the console's Staff page, in headless
Chromium; the new operator signs in and finds the actions of their role, and no Staff page."""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.core.models import SecurityEvent

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD_OF = {"root@example.com": "a long admin passphrase", "bo@example.com": "bo's passphrase!"}


def _sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/console/")
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD_OF[email])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/")


def test_an_administrator_gives_a_role_and_the_console_follows_it(
    live_server, browser, artifacts
) -> None:
    root = user_create(
        email="root@example.com",
        password=PASSWORD_OF["root@example.com"],
        staff_role="administrator",
    )
    bo = user_create(email="bo@example.com", password=PASSWORD_OF["bo@example.com"])
    admin_context, bo_context = browser.new_context(), browser.new_context()
    admin_page, bo_page = admin_context.new_page(), bo_context.new_page()
    problems: list[str] = []
    for page in (admin_page, bo_page):
        page.set_default_timeout(15_000)
        page.on("console", lambda message: problems.append(message.text))

    _sign_in(admin_page, live_server.url, "root@example.com")
    admin_page.get_by_role("link", name="Staff").click()
    admin_page.wait_for_url(f"{live_server.url}/console/staff/")
    assert "The last administrator" in admin_page.inner_text("table.staff")
    admin_page.fill("#id_email", "bo@example.com")
    admin_page.select_option("#id_role", "operator")
    admin_page.get_by_role("button", name="Give role…").click()
    assert admin_page.inner_text("h1") == "Make bo@example.com staff, an operator?"
    admin_page.screenshot(path=str(artifacts / "console-staff-confirm.png"), full_page=True)
    admin_page.get_by_role("button", name="Make operator").click()

    admin_page.wait_for_url(f"{live_server.url}/console/staff/")
    assert "bo@example.com is now an operator." in admin_page.inner_text("[role=status]")
    row = admin_page.locator("table.staff tbody tr", has_text="bo@example.com")
    assert "Operator" in row.inner_text()
    admin_page.screenshot(path=str(artifacts / "console-staff.png"), full_page=True)
    assert User.objects.get(pk=bo.pk).staff_role == "operator"
    event = SecurityEvent.objects.get(event_type="user.changed", user_id=str(bo.pk))
    assert event.actor_id == str(root.pk)

    # Bo, an operator now, signs in: people's actions are there, the Staff page is not.
    _sign_in(bo_page, live_server.url, "bo@example.com")
    assert bo_page.get_by_role("link", name="Staff").count() == 0
    bo_page.goto(f"{live_server.url}/console/users/{root.pk}/")
    assert bo_page.get_by_role("link", name="Revoke everything").is_visible()
    assert bo_page.get_by_role("link", name="Erase…").count() == 0
    assert problems == []  # before the 403 below, which the browser logs
    refused = bo_page.goto(f"{live_server.url}/console/staff/")
    assert refused is not None
    assert refused.status == 403
    assert "This needs the administrator role" in bo_page.inner_text("body")
    admin_context.close()
    bo_context.close()
