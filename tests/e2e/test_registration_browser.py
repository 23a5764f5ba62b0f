"""An operator makes an invitation in the console; a new person follows its link in
Chromium, registers, confirms from the mailed link, signs in and is a member of the
organization. Mail is read from what the worker delivered."""

from __future__ import annotations

import pytest

from apps.accounts.models import OrganizationMembership, User
from apps.accounts.services import user_create
from tests.accounts.factories import OrganizationFactory, RoleFactory
from tests.conftest import Mailbox

pytestmark = pytest.mark.django_db(transaction=True)

OPERATOR_PASSWORD = "operator passphrase for the console"
PASSWORD = "a new person's long passphrase"


def test_invitation_register_confirm_sign_in_member(
    live_server, browser, artifacts, mailbox, settings
) -> None:
    organization = OrganizationFactory(name="Analytical Engines")
    RoleFactory(name="member")
    user_create(email="ops@example.com", password=OPERATOR_PASSWORD, staff_role="operator")
    problems: list[str] = []

    # The operator makes the invitation; the link is shown once.
    console = browser.new_context(viewport={"width": 1280, "height": 800})
    staff = console.new_page()
    staff.on("console", lambda message: problems.append(message.text))
    staff.goto(f"{live_server.url}/login?next=/console/organizations/{organization.pk}/")
    staff.fill("#id_email", "ops@example.com")
    staff.fill("#id_password", OPERATOR_PASSWORD)
    staff.click("button[type=submit]")
    staff.click("text=Invitations")
    staff.click("text=New invitation")
    staff.select_option("#id_role", label="member (built-in)")
    staff.fill("#id_max_uses", "5")
    staff.screenshot(path=str(artifacts / "invitation-new.png"), full_page=True)
    staff.click("button[type=submit]")
    invite = staff.input_value("#invitation-link")
    assert invite.startswith(f"{live_server.url}/invite/")
    staff.screenshot(path=str(artifacts / "invitation-link.png"), full_page=True)
    staff.click("text=Done")
    assert "0 of 5" in staff.inner_text("table.invitations")
    staff.screenshot(path=str(artifacts / "invitation-list.png"), full_page=True)
    console.close()

    # A new person follows it and registers.
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.on("console", lambda message: problems.append(message.text))
    page.goto(invite)
    assert page.inner_text("h1") == "Join Analytical Engines"
    page.fill("#id_name", "Ada Lovelace")
    page.fill("#id_email", "ada.new@example.com")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", "not the same")
    page.click("button[type=submit]")
    assert page.inner_text("#id_password2_error") == "The two passwords differ."
    page.screenshot(path=str(artifacts / "invite-register-error.png"), full_page=True)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.screenshot(path=str(artifacts / "invite-register.png"), full_page=True)
    page.click("button[type=submit]")
    assert page.inner_text("h1") == "Check your mail"
    page.screenshot(path=str(artifacts / "register-sent.png"), full_page=True)
    assert not User.objects.filter(email="ada.new@example.com").exists()

    message = mailbox.wait_for(to="ada.new@example.com")
    page.goto(Mailbox.link(message, "/register/confirm/"))
    assert page.inner_text("h1") == "Confirm your address"
    page.screenshot(path=str(artifacts / "register-confirm.png"), full_page=True)
    page.click("button[type=submit]")
    assert page.inner_text("h1") == "Your account is ready"
    page.screenshot(path=str(artifacts / "register-done.png"), full_page=True)

    page.click("a.button.primary")
    assert page.input_value("#id_email") == "ada.new@example.com"
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/account/")
    profile = page.inner_text("#profile")
    assert "ada.new@example.com" in profile
    assert "verified" in profile
    assert "not verified" not in profile
    page.screenshot(path=str(artifacts / "register-account.png"), full_page=True)
    context.close()

    user = User.objects.get(email="ada.new@example.com")
    assert user.email_verified
    membership = OrganizationMembership.objects.get(user=user)
    assert membership.organization_id == organization.pk
    assert membership.role.name == "member"
    # With open registration the sign-in page offers it.
    settings.REGISTRATION = "open"
    visitor = browser.new_page()
    visitor.goto(f"{live_server.url}/login")
    visitor.click("text=Create an account")
    assert visitor.inner_text("h1") == "Create an account"
    visitor.screenshot(path=str(artifacts / "register-open.png"), full_page=True)
    visitor.close()

    # no CSP refusal or script error on any page (the form refused above answered 400)
    assert [m for m in problems if "status of 400" not in m] == []
