"""An operator ends a person's session from the console, in headless Chromium; the person's
browser is signed out on its next page load."""

from __future__ import annotations

import pytest

from apps.accounts.services import user_create
from apps.sessions.models import LoginSession
from apps.sessions.services import session_client_record
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

OPS_PASSWORD = "another long passphrase"


def _sign_in(page, email: str, password: str) -> None:
    page.fill("#id_email", email)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def test_operator_revokes_a_session_and_the_person_must_sign_in_again(
    live_server, browser, person, artifacts
) -> None:
    user_create(email="ops@example.com", password=OPS_PASSWORD, staff_role="administrator")
    ada = browser.new_context(viewport={"width": 1280, "height": 800})
    ops = browser.new_context(viewport={"width": 1280, "height": 800})
    ada_page, ops_page = ada.new_page(), ops.new_page()
    problems: list[str] = []
    for page in (ada_page, ops_page):
        page.set_default_timeout(15_000)
        page.on("console", lambda message: problems.append(message.text))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))

    # Ada signs in on the hosted page.
    ada_page.goto(f"{live_server.url}/login")
    _sign_in(ada_page, "ada@example.com", PASSWORD)
    ada_page.wait_for_selector("text=You are signed in")
    session = LoginSession.objects.get(user=person, ended_at__isnull=True)
    session_client_record(session=session, client_id="example-rp")

    # The operator opens the console: sent to sign in first, then back to the search.
    ops_page.goto(f"{live_server.url}/console/users/")
    assert "/login?next=/console/users/" in ops_page.url
    _sign_in(ops_page, "ops@example.com", OPS_PASSWORD)
    ops_page.wait_for_url(f"{live_server.url}/console/users/")
    ops_page.fill("#id_q", "ada@example.com")
    ops_page.click("button[type=submit]")

    ops_page.wait_for_url(f"{live_server.url}/console/users/{person.pk}/")
    assert ops_page.inner_text("h1") == "ada@example.com"
    row = ops_page.locator("table.sessions tbody tr", has_text=str(session.pk)[:8])
    assert "live" in row.inner_text()
    assert "example-rp" in row.inner_text()
    assert " on Linux" in row.inner_text()  # the device, from the session context
    ops_page.screenshot(path=str(artifacts / "console-user.png"), full_page=True)

    row.get_by_role("link", name="Revoke").click()
    assert ops_page.inner_text("h1") == f"Revoke session {str(session.pk)[:8]} of ada@example.com?"
    ops_page.screenshot(path=str(artifacts / "console-confirm.png"), full_page=True)
    ops_page.get_by_role("button", name="Revoke session").click()

    ops_page.wait_for_url(f"{live_server.url}/console/users/{person.pk}/")
    assert f"Session {str(session.pk)[:8]} revoked." in ops_page.inner_text("[role=status]")
    assert "ended" in row.inner_text()
    assert "operator" in row.inner_text()
    ops_page.screenshot(path=str(artifacts / "console-user-revoked.png"), full_page=True)

    # Ada's next page load finds her signed out (apps.sessions.middleware).
    ada_page.goto(f"{live_server.url}/")
    assert ada_page.inner_text("h1") == "Tessera"
    assert ada_page.get_by_role("link", name="Sign in").is_visible()
    assert problems == []
    ada.close()
    ops.close()


def test_console_sessions_list_in_a_browser(live_server, page, person, artifacts) -> None:
    user_create(email="ops@example.com", password=OPS_PASSWORD, staff_role="administrator")
    page.goto(f"{live_server.url}/console/sessions/")
    _sign_in(page, "ops@example.com", OPS_PASSWORD)
    page.wait_for_url(f"{live_server.url}/console/sessions/")

    page.fill("#id_email", "ops@example.com")
    page.check("#id_live_only")
    page.get_by_role("button", name="Filter").click()

    page.wait_for_url("**/console/sessions/?email=ops%40example.com*")
    rows = page.locator("table.sessions tbody tr")
    assert rows.count() == 1  # the operator's own session, just opened
    assert "ops@example.com" in rows.inner_text()
    page.screenshot(path=str(artifacts / "console-sessions.png"), full_page=True)


def test_console_lockouts_page_in_a_browser(live_server, page, person, artifacts) -> None:
    # issue 12: an operator sees a locked address and unlocks it
    from apps.ratelimit.services import lockouts_for

    user_create(email="ops@example.com", password=OPS_PASSWORD, staff_role="administrator")
    page.goto(f"{live_server.url}/console/lockouts/")
    _sign_in(page, "ops@example.com", OPS_PASSWORD)
    page.wait_for_url(f"{live_server.url}/console/lockouts/")
    ada = page.context.browser.new_context()
    ada_page = ada.new_page()
    for _ in range(5):  # LOCKOUT_IP_THRESHOLD wrong passwords from Ada's browser
        ada_page.goto(f"{live_server.url}/login")
        _sign_in(ada_page, "ada@example.com", "wrong guess")
        ada_page.wait_for_selector("p.error")
    ada.close()

    page.reload()
    row = page.locator("table.lockouts tbody tr", has_text="ada@example.com")
    assert "from" in row.inner_text()
    page.screenshot(path=str(artifacts / "console-lockouts.png"), full_page=True)
    row.get_by_role("link", name="Unlock").click()
    page.get_by_role("button", name="Unlock").click()
    page.wait_for_selector("text=ada@example.com unlocked")
    assert lockouts_for(kind="login", identifier="ada@example.com") == []
