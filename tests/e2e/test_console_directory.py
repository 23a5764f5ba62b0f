"""An administrator builds the authorization picture in the console, in headless Chromium:
an organization, a workspace, a permission, a role with it, a person added with that role;
the person's page previews their claims, and their next token, refreshed through the live
server's token endpoint, carries them (issue 13). Screenshots in test-artifacts/."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
import requests

from apps.accounts.models import Organization, Permission, Role, Workspace
from apps.accounts.services import user_create
from tests.console.conftest import offline_grant
from tests.tokens.conftest import unverified_payload

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN_PASSWORD = "an administrator's long passphrase"


def refresh(base_url: str, client_id: str, secret: str, refresh_token: str) -> dict[str, Any]:
    """RFC 6749 §6 over HTTP to the live server, client_secret_basic (§2.3.1)."""
    response = requests.post(
        f"{base_url}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(quote(client_id, safe=""), quote(secret, safe="")),
        timeout=15,
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def test_administrator_builds_an_organization_and_the_persons_token_follows(
    live_server, page, person, artifacts
) -> None:
    user_create(email="root@example.com", password=ADMIN_PASSWORD, staff_role="administrator")
    app = offline_grant(person, name="Ledger")
    before = unverified_payload(app.access_token)
    assert (before["orgs"], before["perms"]) == ([], [])
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    base = live_server.url

    page.goto(f"{base}/console/organizations/")
    page.fill("#id_email", "root@example.com")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/organizations/")
    page.get_by_role("link", name="New organization").click()
    page.fill("#id_name", "Acme Corp")
    page.fill("#id_slug", "acme")
    page.get_by_role("button", name="Create").click()
    page.wait_for_selector("text=Organization “Acme Corp” created.")
    org = Organization.objects.get(slug="acme")
    assert page.url == f"{base}/console/organizations/{org.pk}/"

    page.get_by_role("link", name="New workspace").click()
    page.fill("#id_name", "Billing")
    page.fill("#id_slug", "billing")
    page.screenshot(path=str(artifacts / "console-directory-workspace-form.png"), full_page=True)
    page.get_by_role("button", name="Create").click()
    page.wait_for_selector("text=Workspace “Billing” created.")
    workspace = Workspace.objects.get(organization=org, slug="billing")

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Organizations").click()
    page.get_by_role("link", name="Permissions").click()
    page.wait_for_url(f"{base}/console/permissions/")
    page.fill("#id_resource", "invoices")
    page.fill("#id_action", "approve")
    page.select_option("#id_scope", "organization")
    page.get_by_role("button", name="Create permission").click()
    page.wait_for_selector("text=Permission invoices:approve:organization created.")
    permission = Permission.objects.get(resource="invoices", action="approve")

    page.goto(f"{base}/console/organizations/{org.pk}/")
    page.get_by_role("link", name="New role of Acme Corp").click()
    page.fill("#id_name", "approver")
    page.fill("#id_description", "Approves invoices")
    assert page.input_value("#id_organization") == str(org.pk)
    page.get_by_label("invoices:approve:organization").check()
    page.screenshot(path=str(artifacts / "console-directory-role-form.png"), full_page=True)
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("text=Role “approver” created.")
    role = Role.objects.get(name="approver", organization=org)
    assert list(role.permissions.all()) == [permission]
    assert "invoices:approve:organization" in page.inner_text("table.roles >> nth=1")
    page.screenshot(path=str(artifacts / "console-directory-roles.png"), full_page=True)

    page.goto(f"{base}/console/organizations/{org.pk}/")
    page.fill("#add_user", person.email)
    page.select_option("#add_role", label="approver")
    page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_selector(f"text={person.email} added as “approver”.")
    assert person.email in page.inner_text("table.members")
    page.screenshot(path=str(artifacts / "console-directory-organization.png"), full_page=True)

    page.goto(f"{base}/console/workspaces/{workspace.pk}/")
    page.fill("#add_user", person.email)
    page.select_option("#add_role", label="approver")
    page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_selector(f"text={person.email} added as “approver”.")
    page.screenshot(path=str(artifacts / "console-directory-workspace.png"), full_page=True)

    page.get_by_role("link", name=person.email).click()
    page.wait_for_url(f"{base}/console/users/{person.pk}/")
    assert page.get_by_role("heading", name="Memberships").is_visible()
    preview = json.loads(page.inner_text("pre.claims-preview"))
    assert [o["id"] for o in preview["orgs"]] == [str(org.pk)]
    assert [w["id"] for w in preview["workspaces"]] == [str(workspace.pk)]
    expected_perm = {"resource": "invoices", "action": "approve", "scope": "organization"}
    assert preview["perms"] == [expected_perm]
    page.get_by_role("heading", name="Claims preview").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "console-directory-person.png"), full_page=True)

    tokens = refresh(base, app.rp.client_id, app.rp.client_secret or "", app.refresh_token)
    after = unverified_payload(tokens["access_token"])
    assert {key: after[key] for key in ("orgs", "workspaces", "groups", "perms")} == preview
    assert after["orgs"][0]["role"] == "approver"

    # Bulk add: a preview with each line's result, then "Add N people".
    user_create(email="bo@example.com")
    bulk_url = f"{base}/console/organizations/{org.pk}/members/bulk/"
    page.goto(f"{base}/console/organizations/{org.pk}/")
    page.get_by_role("link", name="Add a list…").click()
    page.wait_for_url(bulk_url)
    page.fill(
        "#id_csv", "email,role,workspace\nbo@example.com,approver\nghost@example.com,approver\n"
    )
    page.get_by_role("button", name="Preview").click()
    assert "No account has the address ghost@example.com" in page.inner_text("table.bulk-preview")
    assert page.get_by_role("button", name="Add 1 person").count() == 0
    page.screenshot(path=str(artifacts / "console-directory-bulk-errors.png"), full_page=True)
    page.get_by_role("link", name="Start over").click()
    page.fill("#id_csv", "bo@example.com,approver\nbo@example.com,approver,billing\n")
    page.get_by_role("button", name="Preview").click()
    page.screenshot(path=str(artifacts / "console-directory-bulk-preview.png"), full_page=True)
    page.get_by_role("button", name="Add 2 people").click()
    page.wait_for_selector("text=2 added (0 already there).")
    assert "bo@example.com" in page.inner_text("table.members")
    assert problems == []
