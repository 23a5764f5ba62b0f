"""An operator ends every session of every person from the console, in headless Chromium
(OWASP ASVS 7.4.5): the Sessions page's button, the confirmation that says how many will end
and wants the phrase typed, a wrong phrase refused, then the run; their own session goes on."""

from __future__ import annotations

import pytest

from apps.accounts.services import user_create
from apps.sessions.models import LoginSession
from tests.console.conftest import add_session
from tests.e2e.browser_steps import password_sign_in
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_operator_ends_every_session_from_the_console(
    live_server, page, person, artifacts
) -> None:
    for _ in range(3):
        add_session(person)
    user_create(email="ops@example.com", password=PASSWORD, staff_role="operator")
    password_sign_in(page, live_server, "ops@example.com", "/console/sessions/")
    page.wait_for_url(f"{live_server.url}/console/sessions/")

    page.get_by_role("link", name="End every session…").click()
    page.wait_for_url(f"{live_server.url}/console/sessions/end-all/")
    assert "3 sessions will end." in page.inner_text("main")
    page.screenshot(path=str(artifacts / "console-end-all-confirm.png"), full_page=True)

    page.fill("#id_confirmation", "yes")
    page.get_by_role("button", name="End 3 sessions").click()
    page.wait_for_selector("p.error")
    assert "nothing was ended" in page.inner_text("p.error")
    assert LoginSession.objects.filter(user=person, ended_at__isnull=True).count() == 3
    page.screenshot(path=str(artifacts / "console-end-all-refused.png"), full_page=True)

    page.fill("#id_confirmation", "end all sessions")
    page.get_by_role("button", name="End 3 sessions").click()
    page.wait_for_url(f"{live_server.url}/console/sessions/")

    assert "3 sessions ended. Yours was kept, under a new key." in page.inner_text("main")
    assert LoginSession.objects.filter(ended_at__isnull=True).get().user.email == "ops@example.com"
    page.screenshot(path=str(artifacts / "console-end-all-done.png"), full_page=True)
