"""Staff roles (issue 13; OWASP ASVS 4.1.1, 4.1.3: access control on the server, least
privilege): every console page and every admin API route, walked with each role; the Staff
page and its API; the Django admin for administrators only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import URLPattern, reverse
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings

from apps.accounts.models import StaffRole, User
from apps.accounts.services import staff_role_set, user_create
from apps.console import urls as console_urls
from apps.console.api import urls as api_urls
from apps.console.permissions import AdministratorOnly
from apps.core.models import SecurityEvent
from tests.console.conftest import (
    ROLES,
    SOME_ID,
    access_token,
    bearer,
    confirm,
    csrf_token,
    signed_in_as,
)

# What each console page needs (the least role that may open it). Reads are for viewers;
# acting on a person for operators; erasing a person and managing staff for administrators.
CONSOLE = {
    "home": "viewer",
    "staff": "administrator",
    "staff_role": "administrator",
    "user_search": "viewer",
    "user": "viewer",
    "user_sessions_revoke": "operator",
    "user_offline_grants_revoke": "operator",
    "user_revoke_all": "operator",
    "user_verification_send": "operator",
    "user_password_reset_send": "operator",
    "user_mfa_reset": "operator",  # a lost phone: the operator on duty helps at once
    "user_mfa_required": "operator",
    "offline_grant_revoke": "operator",
    "user_lockouts_clear": "operator",
    "lockouts": "viewer",
    "lockout_unlock": "operator",
    # Threats (issue 16): staff read; operators block and unblock a person; the rules decide
    # for everyone, so they are the administrators'.
    "threats": "viewer",
    "user_block": "operator",
    "user_unblock": "operator",
    "threat_rule_create": "administrator",
    "threat_rule_edit": "administrator",
    "threat_rule_enable": "administrator",
    "threat_rule_delete": "administrator",
    "user_blocks_clear": "operator",
    "block_clear": "operator",
    "user_export": "operator",  # a person's whole data, handed over (GDPR Art. 15)
    "user_erase": "administrator",  # cannot be undone (GDPR Art. 17)
    "clients": "viewer",
    "client": "viewer",
    "client_register": "administrator",
    "permission_edit": "administrator",
    "client_edit": "administrator",
    "client_secret_rotate": "administrator",
    "client_disable": "administrator",
    "client_enable": "administrator",
    "client_delete": "administrator",
    "keys": "viewer",
    "keys_rotate": "administrator",
    "sessions": "viewer",
    "sessions_end_all": "operator",
    "audit": "viewer",
    "audit_csv": "viewer",
    "audit_jsonl": "viewer",
    "session_revoke": "operator",
    "session_compromise": "operator",
    # Who may do what: staff read; operators manage memberships; administrators the structure
    # (organizations, workspaces, groups, roles, permissions).
    "organizations": "viewer",
    "organization": "viewer",
    "organization_create": "administrator",
    "organization_rename": "administrator",
    "organization_delete": "administrator",
    "organization_mfa_policy": "administrator",  # the organization itself: administrators'
    "organization_member_add": "operator",
    "organization_members_bulk": "operator",
    "organization_membership_role": "operator",
    "organization_membership_remove": "operator",
    "organization_invitations": "viewer",
    "organization_invitation_create": "operator",
    "invitation_revoke": "operator",
    "workspace_create": "administrator",
    "workspace": "viewer",
    "workspace_rename": "administrator",
    "workspace_delete": "administrator",
    "workspace_member_add": "operator",
    "workspace_membership_role": "operator",
    "workspace_membership_remove": "operator",
    "group_create": "administrator",
    "group": "viewer",
    "group_rename": "administrator",
    "group_delete": "administrator",
    "group_member_add": "operator",
    "group_membership_remove": "operator",
    "roles": "viewer",
    "role_create": "administrator",
    "role_edit": "administrator",
    "role_delete": "administrator",
    "permissions": "viewer",
    "permission_create": "administrator",
    "permission_delete": "administrator",
    # Identity providers (issue 17): staff read; they decide who may sign in at all, so
    # administrators change them (as clients); unlinking acts on one person: operators.
    "federation_providers": "viewer",
    "federation_provider": "viewer",
    "federation_provider_create": "administrator",
    "federation_provider_edit": "administrator",
    "federation_provider_enable": "administrator",
    "federation_provider_disable": "administrator",
    "federation_provider_delete": "administrator",
    "user_identity_unlink": "operator",
}
# The pages that act (GET confirms, POST does).
CONSOLE_POSTS = {name for name, role in CONSOLE.items() if role != "viewer"} - {
    "staff",
    "user_export",
}

# Each admin API route: its methods and the least role each needs.
API = {
    "users": {"GET": "viewer"},
    "user": {"GET": "viewer"},
    "user_staff_role": {"PUT": "administrator"},
    "clients": {"GET": "viewer", "POST": "administrator"},
    "client": {"GET": "viewer", "PATCH": "administrator", "DELETE": "administrator"},
    "client_secret_rotate": {"POST": "administrator"},
    "client_disable": {"POST": "administrator"},
    "client_enable": {"POST": "administrator"},
    "keys": {"GET": "viewer"},
    "keys_rotate": {"POST": "administrator"},
    "organizations": {"GET": "viewer", "POST": "administrator"},
    "organization": {"GET": "viewer", "PATCH": "administrator", "DELETE": "administrator"},
    "organization_workspaces": {"POST": "administrator"},
    "organization_members": {"GET": "viewer", "POST": "operator"},
    "organization_members_bulk": {"POST": "operator"},
    "organization_member": {"PATCH": "operator", "DELETE": "operator"},
    "organization_invitations": {"GET": "viewer", "POST": "operator"},
    "invitation_revoke": {"POST": "operator"},
    "workspace": {"GET": "viewer", "PATCH": "administrator", "DELETE": "administrator"},
    "workspace_groups": {"POST": "administrator"},
    "workspace_members": {"GET": "viewer", "POST": "operator"},
    "workspace_member": {"PATCH": "operator", "DELETE": "operator"},
    "group": {"GET": "viewer", "PATCH": "administrator", "DELETE": "administrator"},
    "group_members": {"GET": "viewer", "POST": "operator"},
    "group_member": {"DELETE": "operator"},
    "permissions": {"GET": "viewer", "POST": "administrator"},
    "permission": {"PATCH": "administrator", "DELETE": "administrator"},
    "roles": {"GET": "viewer", "POST": "administrator"},
    "role": {"GET": "viewer", "PATCH": "administrator", "DELETE": "administrator"},
    "user_claims_preview": {"GET": "viewer"},
    "user_memberships": {"GET": "viewer"},
    "staff": {"GET": "administrator"},
    "user_sessions": {"GET": "viewer"},
    "user_events": {"GET": "viewer"},
    "user_export": {"GET": "operator"},
    "user_erase": {"POST": "administrator"},
    "user_sessions_revoke": {"POST": "operator"},
    "user_offline_grants": {"GET": "viewer"},
    "user_offline_grants_revoke": {"POST": "operator"},
    "user_revoke_all": {"POST": "operator"},
    "user_verification_send": {"POST": "operator"},
    "user_password_reset_send": {"POST": "operator"},
    "user_factors": {"GET": "viewer"},
    "user_factors_reset": {"POST": "operator"},
    "user_mfa_required": {"PUT": "operator"},
    "user_block": {"POST": "operator"},
    "user_unblock": {"POST": "operator"},
    "threats_assessments": {"GET": "viewer"},
    "threats_blocked": {"GET": "viewer"},
    "threats_rules": {"GET": "viewer", "POST": "administrator"},
    "threats_rule": {"GET": "viewer", "PATCH": "administrator", "DELETE": "administrator"},
    "offline_grant": {"GET": "viewer"},
    "offline_grant_revoke": {"POST": "operator"},
    "sessions": {"GET": "viewer"},
    "sessions_revoke_all": {"POST": "operator"},
    "lockouts": {"GET": "viewer"},
    "lockout_unlock": {"POST": "operator"},
    "ratelimit_blocks": {"GET": "viewer"},
    "ratelimit_block_clear": {"POST": "operator"},
    "audit_events": {"GET": "viewer"},
    "audit_events_csv": {"GET": "viewer"},
    "audit_events_jsonl": {"GET": "viewer"},
    "session": {"GET": "viewer"},
    "session_revoke": {"POST": "operator"},
    "session_compromise": {"POST": "operator"},
    # Identity providers (issue 17): as clients; unlinking acts on a person: operators.
    "federation_providers": {"GET": "viewer", "POST": "administrator"},
    "federation_provider": {"GET": "viewer", "PATCH": "administrator", "DELETE": "administrator"},
    "user_identities": {"GET": "viewer"},
    "user_identity": {"DELETE": "operator"},
}


def _patterns(module: Any) -> dict[str, URLPattern]:
    return {p.name: p for p in module.urlpatterns if isinstance(p, URLPattern) and p.name}


def _path(namespace: str, pattern: URLPattern) -> str:
    """The pattern's address, with an id no row has wherever it takes one."""
    kwargs = dict.fromkeys(pattern.pattern.converters, SOME_ID)  # type: ignore[attr-defined]
    return reverse(f"{namespace}:{pattern.name}", kwargs=kwargs)


def _may(role: str, needed: str) -> bool:
    return role not in ("anonymous", "nobody") and StaffRole.rank(role) >= StaffRole.rank(needed)


def test_every_console_page_names_its_role() -> None:
    patterns = _patterns(console_urls)

    assert set(patterns) == set(CONSOLE), "a console page without a row in CONSOLE"
    for name, pattern in patterns.items():
        assert getattr(pattern.callback, "required_role", None) == CONSOLE[name], name


def test_every_api_route_names_its_methods_and_roles() -> None:
    patterns = _patterns(api_urls)

    assert set(patterns) == set(API), "an API route without a row in API"
    for name, pattern in patterns.items():
        view = pattern.callback.cls  # type: ignore[attr-defined]
        methods = {m.upper() for m in view.http_method_names} - {"OPTIONS"}
        assert methods == set(API[name]), name
        [permission] = view.permission_classes
        for method, needed in API[name].items():
            given = permission.read_role if method in SAFE_METHODS else permission.role
            assert given == needed, (name, method)


def test_a_route_that_names_no_permission_is_for_administrators() -> None:
    """Fail secure (OWASP ASVS 4.1.5): the settings' default is the strictest class."""
    assert [AdministratorOnly] == api_settings.DEFAULT_PERMISSION_CLASSES


def _refusal(response: Any) -> str:
    """A refusal's page (a download that was let through streams: no page to read)."""
    if response.streaming:
        return b"".join(response.streaming_content).decode(errors="replace")
    return str(response.content.decode(errors="replace"))


@pytest.mark.parametrize("role", ROLES)
def test_console_pages_by_role(db, role: str) -> None:
    """Every page, and the POST of every page that acts, with an id no row has: refused below
    its role (anonymous: sent to sign in), let through from it (404, 400 or the page)."""
    http = signed_in_as(role, enforce_csrf_checks=False)
    wrong = []
    for name, pattern in _patterns(console_urls).items():
        path = _path("console", pattern)
        methods = ["GET", "POST"] if name in CONSOLE_POSTS else ["GET"]
        for method in methods:
            response = http.generic(method, path, headers={"Accept": "text/html"})
            status, body = response.status_code, _refusal(response)
            if role == "anonymous":
                ok = status == 302 and response["Location"].startswith("/login?next=")
            elif role == "nobody":
                ok = status == 403 and "The console is for staff." in body
            elif not _may(role, CONSOLE[name]):
                ok = status == 403 and f"This needs the {CONSOLE[name]} role" in body
            else:  # let through: the page, a 404/400, or the redirect after acting (no id)
                ok = status != 403 and not (
                    status == 302 and response["Location"].startswith("/login")
                )
            if not ok:
                wrong.append((method, path, status))
    assert wrong == []


@pytest.mark.parametrize("role", ROLES)
def test_api_routes_by_role(db, role: str) -> None:
    """Every route and method: 401 without credentials, 403 saying why below the role, let
    through from it (404, 400 or the answer)."""
    http = signed_in_as(role, enforce_csrf_checks=False)
    wrong = []
    for name, pattern in _patterns(api_urls).items():
        path = _path("api", pattern)
        for method, needed in API[name].items():
            response = http.generic(method, path, "{}", content_type="application/json")
            status = response.status_code
            detail = response.json().get("detail", "") if status in (401, 403) else ""
            if role == "anonymous":
                ok = status == 401
            elif role == "nobody":
                ok = status == 403 and detail == "The admin API is for staff."
            elif not _may(role, needed):
                ok = status == 403 and detail.startswith(f"This needs the {needed} role")
            else:
                ok = status not in (401, 403)
            if not ok:
                wrong.append((method, path, status, detail))
    assert wrong == []


def test_a_bearer_token_carries_its_owners_role(db, person_session) -> None:
    """The admin scope opens the API; what the token's person may do there is their role's."""
    viewer = user_create(email="reader@example.com", staff_role=StaffRole.VIEWER)
    token = access_token(viewer, "openid admin")
    http = HttpClient()

    assert (
        http.get(f"/api/v1/sessions/{person_session.pk}", headers=bearer(token)).status_code == 200
    )
    refused = http.post(f"/api/v1/sessions/{person_session.pk}/revoke", headers=bearer(token))
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("This needs the operator role")
    person_session.refresh_from_db()
    assert person_session.ended_at is None


def test_the_api_schema_is_for_every_staff_role(db) -> None:
    assert signed_in_as("viewer").get("/api/schema/").status_code == 200
    assert signed_in_as("nobody").get("/api/schema/").status_code == 403


# What a page offers: actions a role may not take are left out, not refused after a click.


def test_a_viewer_sees_no_action_they_may_not_take(viewer, person, person_session) -> None:
    page = viewer.get(f"/console/users/{person.pk}/").content.decode()

    assert "Revoke everything" not in page
    assert "Revoke all sessions" not in page
    assert f"/console/sessions/{person_session.pk}/revoke/" not in page
    assert "Exporting needs the operator role." in page
    assert "Erasing needs the administrator role." in page
    assert "/console/staff/" not in page  # the nav's Staff link
    assert "/admin/" not in page


def test_an_operator_sees_their_actions_but_not_erasure(operator_staff, person, person_session):
    page = operator_staff.get(f"/console/users/{person.pk}/").content.decode()

    assert f"/console/users/{person.pk}/revoke-all/" in page
    assert f"/console/sessions/{person_session.pk}/revoke/" in page
    assert f"/console/users/{person.pk}/export/" in page
    assert f"/console/users/{person.pk}/erase/" not in page
    assert "/console/staff/" not in page


def test_an_administrator_sees_everything(administrator, person) -> None:
    page = administrator.get(f"/console/users/{person.pk}/").content.decode()

    assert f"/console/users/{person.pk}/erase/" in page
    assert "/console/staff/" in page
    assert "/admin/" in page


# The Staff page.


def _staff_page(http: HttpClient) -> str:
    response = http.get("/console/staff/")
    assert response.status_code == 200
    return response.content.decode()


def _changed(user: User) -> list[SecurityEvent]:
    return list(
        SecurityEvent.objects.filter(
            event_type="user.changed", user_id=str(user.pk), action="staff_role_changed"
        )
    )


def test_the_staff_page_lists_staff_with_their_roles(administrator, person) -> None:
    user_create(email="reader@example.com", staff_role=StaffRole.VIEWER)

    page = _staff_page(administrator)

    assert "reader@example.com" in page
    assert administrator.user.email in page
    assert person.email not in page  # not staff
    assert re.search(r"reader@example\.com.*?<td>Viewer</td>", page, re.S)


def test_an_administrator_makes_someone_an_operator(administrator, person) -> None:
    path = f"/console/staff/role/?email={person.email}&role=operator"
    asked = administrator.get(path)
    assert asked.status_code == 200
    assert f"Make {person.email} staff, an operator?" in asked.content.decode()
    person.refresh_from_db()
    assert not person.is_staff  # the GET changed nothing

    done = confirm(administrator, path)

    assert f"{person.email} is now an operator." in done.content.decode()
    person.refresh_from_db()
    assert (person.is_staff, person.staff_role) == (True, "operator")
    [event] = _changed(person)
    assert event.actor_id == str(administrator.user.pk)
    assert event.metadata == {"staff_role_before": "", "staff_role_after": "operator"}
    assert {"SOC2", "GDPR"} <= set(event.compliance_tags)


def test_an_administrator_removes_someone_from_staff(administrator) -> None:
    reader = user_create(email="reader@example.com", staff_role=StaffRole.VIEWER)

    done = confirm(administrator, f"/console/staff/role/?email={reader.email}&role=none")

    assert f"{reader.email} is now not staff." in done.content.decode()
    reader.refresh_from_db()
    assert (reader.is_staff, reader.staff_role) == (False, "")
    assert _changed(reader)[0].metadata == {
        "staff_role_before": "viewer",
        "staff_role_after": "",
    }


def test_the_last_administrator_cannot_demote_themselves(db) -> None:
    http = signed_in_as("administrator")
    me: User = http.user  # type: ignore[attr-defined]
    assert User.objects.filter(staff_role="administrator").count() == 1

    page = _staff_page(http)
    assert "The last administrator" in page
    done = confirm(http, f"/console/staff/role/?email={me.email}&role=viewer")

    assert "is the last administrator" in done.content.decode()
    me.refresh_from_db()
    assert me.staff_role == "administrator"
    assert _changed(me) == []


def test_with_another_administrator_one_may_step_down(db) -> None:
    http = signed_in_as("administrator")
    me: User = http.user  # type: ignore[attr-defined]
    user_create(email="other-admin@example.com", staff_role=StaffRole.ADMINISTRATOR)

    confirm(http, f"/console/staff/role/?email={me.email}&role=operator")

    me.refresh_from_db()
    assert me.staff_role == "operator"
    assert http.get("/console/staff/").status_code == 403  # no longer theirs


def test_the_staff_form_says_what_is_wrong(administrator) -> None:
    unknown = administrator.get("/console/staff/role/?email=nobody@example.com&role=viewer")
    bad_role = administrator.get("/console/staff/role/?email=a@example.com&role=root")

    assert unknown.status_code == 400
    assert "No account has this email address" in unknown.content.decode()
    assert bad_role.status_code == 400
    assert "Select a valid choice" in bad_role.content.decode()


def test_a_staff_change_without_the_csrf_token_is_refused(administrator, person) -> None:
    path = f"/console/staff/role/?email={person.email}&role=administrator"

    assert administrator.post(path).status_code == 403
    person.refresh_from_db()
    assert not person.is_staff


def test_an_operator_cannot_give_roles(operator_staff, person) -> None:
    path = f"/console/staff/role/?email={person.email}&role=administrator"
    page = operator_staff.get(path)

    assert page.status_code == 403
    assert "This needs the administrator role" in page.content.decode()
    # A token from a confirmation page the operator may open: the refusal is the role's.
    mine = operator_staff.get("/console/lockouts/unlock/?kind=login&identifier=x@example.com")
    token = csrf_token(mine.content)
    assert operator_staff.post(path, {"csrfmiddlewaretoken": token}).status_code == 403
    person.refresh_from_db()
    assert not person.is_staff


# The staff API.


def test_the_api_gives_and_takes_roles(db, person) -> None:
    http = signed_in_as("administrator", enforce_csrf_checks=False)
    path = f"/api/v1/users/{person.pk}/staff-role"

    given = http.put(path, {"role": "viewer"}, content_type="application/json")
    again = http.put(path, {"role": "viewer"}, content_type="application/json")
    listed = http.get("/api/v1/staff")
    taken = http.put(path, {"role": None}, content_type="application/json")

    assert given.status_code == 200
    assert given.json()["changed"] is True
    assert given.json()["user"]["staff_role"] == "viewer"
    assert again.json()["changed"] is False
    assert person.email in [user["email"] for user in listed.json()["results"]]
    assert taken.json()["user"] == {**taken.json()["user"], "is_staff": False, "staff_role": ""}
    events = _changed(person)
    assert len(events) == 2  # the unchanged PUT recorded nothing
    assert {e.actor_id for e in events} == {str(http.user.pk)}  # type: ignore[attr-defined]


def test_the_api_refuses_to_remove_the_last_administrator(db) -> None:
    http = signed_in_as("administrator", enforce_csrf_checks=False)
    me: User = http.user  # type: ignore[attr-defined]

    refused = http.put(
        f"/api/v1/users/{me.pk}/staff-role", {"role": None}, content_type="application/json"
    )

    assert refused.status_code == 409
    assert "is the last administrator" in refused.json()["detail"]
    me.refresh_from_db()
    assert me.staff_role == "administrator"


@pytest.mark.parametrize(
    ("body", "field"), [({"role": "root"}, "role"), ({}, "role"), ("[]", "non_field_errors")]
)
def test_the_api_says_what_is_wrong_with_a_role(db, person, body, field) -> None:
    http = signed_in_as("administrator", enforce_csrf_checks=False)

    response = http.put(
        f"/api/v1/users/{person.pk}/staff-role", body, content_type="application/json"
    )

    assert response.status_code == 400
    assert field in response.json()


def test_the_service_refuses_an_unknown_role(db, person) -> None:
    with pytest.raises(Exception, match="must be one of"):
        staff_role_set(user=person, role="root", actor_id=None)


# The Django admin: administrators only, signed in on the hosted page.


def test_the_admin_is_for_administrators(db) -> None:
    administrator = signed_in_as("administrator")
    index = administrator.get("/admin/")
    assert index.status_code == 200
    assert "Organizations" in index.content.decode()  # model permissions come with the role
    assert administrator.get("/admin/accounts/organization/").status_code == 200

    for role in ("nobody", "viewer", "operator"):
        refused = signed_in_as(role).get("/admin/", headers={"Accept": "text/html"})
        assert refused.status_code == 403, role
        assert "The Django admin is for administrators" in refused.content.decode()


def test_the_admin_signs_in_on_the_hosted_page(client: HttpClient) -> None:
    first = client.get("/admin/")
    assert first.status_code == 302
    login = client.get(first["Location"])

    assert login.status_code == 302
    assert login["Location"].startswith("/login?next=")
