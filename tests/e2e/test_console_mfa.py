"""An operator looks at a person's second factors in the console and resets them after a
lost phone, in headless Chromium: the factors and who requires one are on the person page,
the confirmation says what goes and offers signing them out everywhere (ticked)."""

from __future__ import annotations

import pytest

from apps.accounts.services import mfa_requirement_set, user_create
from apps.mfa.models import TotpDevice
from apps.sessions.models import LoginSession
from tests.console.conftest import add_session
from tests.console.test_mfa import enrol_every_factor

pytestmark = pytest.mark.django_db(transaction=True)

OPS_PASSWORD = "an operator's long passphrase"


def test_an_operator_resets_a_persons_factors(live_server, page, person, artifacts) -> None:
    user_create(email="ops@example.com", password=OPS_PASSWORD, staff_role="operator")
    enrol_every_factor(person)
    mfa_requirement_set(user=person, required=True, actor_id=None, source="operator")
    session = add_session(person)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))

    page.goto(f"{live_server.url}/console/users/{person.pk}/")
    page.fill("#id_email", "ops@example.com")
    page.fill("#id_password", OPS_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/console/users/{person.pk}/")

    rows = page.locator("table.factors tbody tr")
    assert rows.count() == 4
    assert "Work phone" in rows.nth(0).inner_text()
    assert "cloned" in rows.nth(2).inner_text()
    assert "9 unused" in rows.nth(3).inner_text()
    assert "set by an operator" in page.inner_text("dl.mfa-policy")
    page.locator("h2", has_text="Second factors").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "console-mfa-person.png"), full_page=True)

    page.get_by_role("link", name="Reset second factors").click()
    assert page.inner_text("h1") == f"Reset the second factors of {person.email}?"
    signed_out = page.get_by_label("Also sign them out everywhere (end every session)")
    assert signed_out.is_checked()
    page.screenshot(path=str(artifacts / "console-mfa-reset-confirm.png"), full_page=True)
    page.get_by_role("button", name="Reset second factors").click()

    page.wait_for_url(f"{live_server.url}/console/users/{person.pk}/")
    assert "4 second factors removed, 1 live session ended." in page.inner_text("[role=status]")
    assert "No second factor enrolled." in page.inner_text("table.factors")
    assert "none enrolled: they enrol one at their next sign-in" in page.inner_text("dl.mfa-policy")
    page.screenshot(path=str(artifacts / "console-mfa-person-reset.png"), full_page=True)
    assert not TotpDevice.objects.filter(user=person).exists()
    assert LoginSession.objects.get(pk=session.pk).ended_at is not None
    assert problems == []
