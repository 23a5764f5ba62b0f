"""The admin API's authorization model (issue 13): organizations, workspaces, groups,
permissions, roles and memberships through apps.accounts.directory, each route with the
staff roles that may and may not use it, the events recorded against the caller, and bad
input answered with a 400 naming the field (never a 500)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import (
    GroupMembership,
    Organization,
    OrganizationMembership,
    Permission,
    Role,
    Workspace,
    WorkspaceMembership,
)
from apps.accounts.selectors import claims_preview
from tests.accounts.factories import (
    GroupFactory,
    GroupMembershipFactory,
    OrganizationFactory,
    OrganizationMembershipFactory,
    PermissionFactory,
    RoleFactory,
    UserFactory,
    WorkspaceFactory,
    WorkspaceMembershipFactory,
)
from tests.console.conftest import SOME_ID, signed_in_as
from tests.events import recorded

pytestmark = pytest.mark.django_db


def api(role: str) -> HttpClient:
    return signed_in_as(role, enforce_csrf_checks=False)


def send(http: HttpClient, method: str, path: str, body: Any = None) -> Any:
    data = body if isinstance(body, str) else json.dumps(body if body is not None else {})
    return http.generic(method, f"/api/v1/{path}", data, content_type="application/json")


def actor(http: HttpClient) -> str:
    return str(http.user.pk)  # type: ignore[attr-defined]


def changed(events: list[Any]) -> list[Any]:
    return [e for e in events if e.event_type == "permission.changed"]


@pytest.fixture
def org() -> Organization:
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def member_role() -> Role:
    return RoleFactory(name="member", permissions=[PermissionFactory(resource="docs")])


# --- organizations, workspaces, groups ------------------------------------------------------


def test_an_administrator_creates_renames_and_deletes_an_organization() -> None:
    http = api("administrator")

    with recorded() as events:
        created = send(http, "POST", "organizations", {"name": "Acme", "slug": "acme"})
        org_id = created.json()["id"]
        renamed = send(http, "PATCH", f"organizations/{org_id}", {"name": "Acme Corp"})
        WorkspaceFactory(organization=Organization.objects.get(pk=org_id))
        deleted = send(http, "DELETE", f"organizations/{org_id}")

    assert created.status_code == 201
    assert created.json()["slug"] == "acme"
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["slug"]) == ("Acme Corp", "acme")
    assert deleted.status_code == 200
    assert deleted.json() == {
        "workspaces": 1, "groups": 0, "roles": 0, "memberships": 0, "people": 0,
    }  # fmt: skip
    assert not Organization.objects.exists()
    assert [e.action for e in changed(events)] == ["created", "renamed", "deleted"]
    assert {e.actor_id for e in changed(events)} == {actor(http)}
    assert changed(events)[1].metadata["after"] == {"name": "Acme Corp", "slug": "acme"}


def test_organizations_are_listed_by_slug_in_keyset_pages_and_searched() -> None:
    Organization.objects.bulk_create(
        Organization(name=f"Tenant {n:02}", slug=f"t-{n:02}") for n in range(55)
    )
    OrganizationFactory(name="Globex", slug="globex")
    http = api("viewer")

    first = http.get("/api/v1/organizations").json()
    second = http.get("/api/v1/organizations", {"after": first["next"]}).json()
    found = http.get("/api/v1/organizations", {"q": "GLOB"}).json()

    assert len(first["results"]) == 50
    assert first["results"][0]["slug"] == "globex"
    assert len(second["results"]) == 6
    assert second["next"] is None
    slugs = [o["slug"] for o in first["results"] + second["results"]]
    assert slugs == sorted(slugs)
    assert len(set(slugs)) == 56
    assert [o["slug"] for o in found["results"]] == ["globex"]


def test_an_organization_shows_its_workspaces_and_own_roles(org, member_role) -> None:
    WorkspaceFactory(organization=org, slug="web")
    RoleFactory(organization=org, name="owner")
    RoleFactory(organization=OrganizationFactory(), name="elsewhere")

    body = api("viewer").get(f"/api/v1/organizations/{org.pk}").json()

    assert [w["slug"] for w in body["workspaces"]] == ["web"]
    assert [r["name"] for r in body["roles"]] == ["owner"]


def test_workspaces_and_groups_are_created_renamed_and_deleted(org) -> None:
    http = api("administrator")

    workspace = send(
        http, "POST", f"organizations/{org.pk}/workspaces", {"name": "Web", "slug": "web"}
    )
    ws_id = workspace.json()["id"]
    group = send(http, "POST", f"workspaces/{ws_id}/groups", {"name": "Editors"})
    group_id = group.json()["id"]
    ws_renamed = send(http, "PATCH", f"workspaces/{ws_id}", {"slug": "www"})
    group_renamed = send(http, "PATCH", f"groups/{group_id}", {"name": "Writers"})
    shown = http.get(f"/api/v1/workspaces/{ws_id}").json()
    group_deleted = send(http, "DELETE", f"groups/{group_id}")
    ws_deleted = send(http, "DELETE", f"workspaces/{ws_id}")

    assert (workspace.status_code, group.status_code) == (201, 201)
    assert workspace.json()["organization"] == str(org.pk)
    assert ws_renamed.json()["slug"] == "www"
    assert group_renamed.json()["name"] == "Writers"
    assert [g["name"] for g in shown["groups"]] == ["Writers"]
    assert group_deleted.json()["memberships"] == 0
    assert ws_deleted.status_code == 200
    assert not Workspace.objects.exists()


def test_a_taken_slug_is_a_400_on_the_slug(org) -> None:
    response = send(api("administrator"), "POST", "organizations", {"name": "A", "slug": "acme"})

    assert response.status_code == 400
    assert "already exists" in response.json()["slug"][0]


# --- permissions and roles ------------------------------------------------------------------


def test_permissions_and_roles_are_created_changed_and_listed(org) -> None:
    http = api("administrator")

    read = send(http, "POST", "permissions", {"resource": "docs", "action": "read", "scope": "own"})
    write = send(
        http, "POST", "permissions", {"resource": "docs", "action": "write", "scope": "workspace"}
    )
    again = send(
        http, "POST", "permissions", {"resource": "docs", "action": "read", "scope": "own"}
    )
    built_in = send(http, "POST", "roles", {"name": "reader", "permissions": [read.json()["id"]]})
    own = send(
        http, "POST", "roles", {"name": "editor", "organization": str(org.pk), "description": "E"}
    )
    patched = send(
        http,
        "PATCH",
        f"roles/{own.json()['id']}",
        {"permissions": [read.json()["id"], write.json()["id"]]},
    )
    listed = http.get("/api/v1/permissions").json()["results"]
    global_roles = http.get("/api/v1/roles").json()["results"]
    org_roles = http.get("/api/v1/roles", {"organization": str(org.pk)}).json()["results"]

    assert read.status_code == 201
    assert read.json()["claim"] == "docs:read:own"
    assert again.status_code == 400
    assert "already exists" in again.json()["non_field_errors"][0]
    assert built_in.status_code == 201
    assert built_in.json()["organization"] is None
    assert [p["claim"] for p in built_in.json()["permissions"]] == ["docs:read:own"]
    assert own.json()["organization"] == str(org.pk)
    assert patched.status_code == 200
    assert [p["claim"] for p in patched.json()["permissions"]] == [
        "docs:read:own", "docs:write:workspace",
    ]  # fmt: skip
    assert [p["claim"] for p in listed] == ["docs:read:own", "docs:write:workspace"]
    assert [r["name"] for r in global_roles] == ["reader"]
    assert [r["name"] for r in org_roles] == ["reader", "editor"]


def test_deleting_a_permission_takes_it_out_of_its_roles(member_role) -> None:
    [permission] = member_role.permissions.all()
    http = api("administrator")

    with recorded() as events:
        response = send(http, "DELETE", f"permissions/{permission.pk}")

    assert response.json() == {"roles": 1}
    assert not member_role.permissions.exists()
    [event] = changed(events)
    assert event.actor_id == actor(http)


def test_renaming_a_permission_keeps_it_in_its_roles_and_refuses_a_taken_name(
    member_role,
) -> None:
    [permission] = member_role.permissions.all()
    http = api("administrator")
    send(http, "POST", "permissions", {"resource": "docs", "action": "taken", "scope": "own"})

    with recorded() as events:
        renamed = send(http, "PATCH", f"permissions/{permission.pk}", {"action": "publish"})

    assert renamed.status_code == 200
    assert renamed.json()["action"] == "publish"
    assert member_role.permissions.get().action == "publish"
    [event] = changed(events)
    assert event.actor_id == actor(http)
    assert event.metadata["after"]["permission"] == renamed.json()["claim"]
    clash = send(
        http, "PATCH", f"permissions/{permission.pk}",
        {"resource": "docs", "action": "taken", "scope": "own"},
    )  # fmt: skip
    assert clash.status_code == 400
    assert "already exists" in json.dumps(clash.json())
    bad = send(http, "PATCH", f"permissions/{permission.pk}", {"scope": "everything"})
    assert bad.status_code == 400
    assert "scope" in bad.json()
    viewer = send(api("operator"), "PATCH", f"permissions/{permission.pk}", {"action": "x"})
    assert viewer.status_code == 403


def test_a_role_in_use_is_a_409_with_the_services_message(org, member_role) -> None:
    OrganizationMembershipFactory(organization=org, role=member_role)
    unused = RoleFactory()
    http = api("administrator")

    refused = send(http, "DELETE", f"roles/{member_role.pk}")
    deleted = send(http, "DELETE", f"roles/{unused.pk}")

    assert refused.status_code == 409
    assert "is used by 1 membership" in refused.json()["detail"]
    assert Role.objects.filter(pk=member_role.pk).exists()
    assert http.get(f"/api/v1/roles/{member_role.pk}").json()["members"] == 1
    assert deleted.status_code == 204
    assert not Role.objects.filter(pk=unused.pk).exists()


# --- memberships ----------------------------------------------------------------------------


def test_an_operator_adds_changes_and_removes_a_member(org, member_role) -> None:
    person = UserFactory(email="ada@example.com")
    admin_role = RoleFactory(name="admin", organization=org)
    workspace = WorkspaceFactory(organization=org)
    group = GroupFactory(workspace=workspace)
    http = api("operator")

    with recorded() as events:
        added = send(
            http,
            "POST",
            f"organizations/{org.pk}/members",
            {"email": "ADA@example.com", "role": str(member_role.pk)},
        )
        in_ws = send(
            http,
            "POST",
            f"workspaces/{workspace.pk}/members",
            {"user_id": str(person.pk), "role": str(member_role.pk)},
        )
        in_group = send(http, "POST", f"groups/{group.pk}/members", {"user_id": str(person.pk)})
        listed = http.get(f"/api/v1/organizations/{org.pk}/members").json()
        role_changed = send(
            http,
            "PATCH",
            f"organizations/{org.pk}/members/{person.pk}",
            {"role": str(admin_role.pk)},
        )
        removed = send(http, "DELETE", f"organizations/{org.pk}/members/{person.pk}")

    assert added.status_code == 201
    assert added.json()["role"] == {"id": str(member_role.pk), "name": "member"}
    assert (in_ws.status_code, in_group.status_code) == (201, 201)
    assert [m["email"] for m in listed["results"]] == ["ada@example.com"]
    assert role_changed.json()["role"]["name"] == "admin"
    assert removed.status_code == 200
    assert removed.json() == {"workspaces": 1, "groups": 1, "tokens_revoked": 0}
    assert not OrganizationMembership.objects.exists()
    assert not GroupMembership.objects.exists()
    recorded_changes = changed(events)
    assert [e.action for e in recorded_changes] == [
        "member_added", "member_added", "member_added", "role_changed", "member_removed",
    ]  # fmt: skip
    assert {(e.actor_id, e.user_id) for e in recorded_changes} == {(actor(http), str(person.pk))}


def test_workspace_and_group_members_are_changed_and_removed(member_role) -> None:
    person = UserFactory()
    workspace = WorkspaceFactory()
    OrganizationMembershipFactory(
        user=person, organization=workspace.organization, role=member_role
    )
    WorkspaceMembershipFactory(user=person, workspace=workspace, role=member_role)
    group = GroupFactory(workspace=workspace)
    GroupMembershipFactory(user=person, group=group)
    other_role = RoleFactory(name="lead")
    http = api("operator")

    listed = http.get(f"/api/v1/groups/{group.pk}/members").json()
    out_of_group = send(http, "DELETE", f"groups/{group.pk}/members/{person.pk}")
    relabelled = send(
        http,
        "PATCH",
        f"workspaces/{workspace.pk}/members/{person.pk}",
        {"role": str(other_role.pk)},
    )
    out = send(http, "DELETE", f"workspaces/{workspace.pk}/members/{person.pk}")
    again = send(http, "DELETE", f"workspaces/{workspace.pk}/members/{person.pk}")

    assert [m["user_id"] for m in listed["results"]] == [str(person.pk)]
    assert out_of_group.status_code == 204
    assert relabelled.json()["role"]["name"] == "lead"
    assert out.json() == {"groups": 0}
    assert again.status_code == 404
    assert not WorkspaceMembership.objects.exists()


def test_a_role_of_another_organization_is_a_400_that_says_why(org) -> None:
    person = UserFactory()
    foreign = RoleFactory(organization=OrganizationFactory(), name="theirs")

    response = send(
        api("operator"),
        "POST",
        f"organizations/{org.pk}/members",
        {"user_id": str(person.pk), "role": str(foreign.pk)},
    )

    assert response.status_code == 400
    assert "belongs to another organization" in response.json()["role"][0]
    assert not OrganizationMembership.objects.exists()


def test_a_second_add_and_a_workspace_add_outside_the_organization_are_400s(
    org, member_role
) -> None:
    person = UserFactory()
    OrganizationMembershipFactory(user=person, organization=org, role=member_role)
    elsewhere = WorkspaceFactory()
    http = api("operator")
    body = {"user_id": str(person.pk), "role": str(member_role.pk)}

    twice = send(http, "POST", f"organizations/{org.pk}/members", body)
    outside = send(http, "POST", f"workspaces/{elsewhere.pk}/members", body)

    assert twice.status_code == 400
    assert "already a member" in twice.json()["user"][0]
    assert outside.status_code == 400
    assert "add them to the organization first" in outside.json()["user"][0]
    assert OrganizationMembership.objects.count() == 1


def test_a_bulk_list_is_previewed_then_applied(org, member_role) -> None:
    UserFactory(email="ada@example.com")
    UserFactory(email="bob@example.com")
    WorkspaceFactory(organization=org, slug="web")
    http = api("operator")
    good = (
        "email,role,workspace\n"
        "ada@example.com,member\n"
        "bob@example.com,member\n"
        "ada@example.com,member,web\n"
    )
    bad = good + "nobody@example.com,member\n"
    path = f"organizations/{org.pk}/members/bulk"

    preview = send(http, "POST", path, {"csv": bad})
    refused = send(http, "POST", path, {"csv": bad, "apply": True})
    nothing_yet = OrganizationMembership.objects.count()
    with recorded() as events:
        applied = send(http, "POST", path, {"csv": good, "apply": True})

    assert preview.status_code == 200
    assert preview.json()["applied"] is False
    statuses = [(line["line"], line["status"]) for line in preview.json()["results"]]
    assert statuses == [(2, "ok"), (3, "ok"), (4, "ok"), (5, "error")]
    assert "No account has the address" in preview.json()["results"][3]["message"]
    assert refused.status_code == 400
    assert "nothing was added" in refused.json()["csv"][0]
    assert refused.json()["results"][3]["status"] == "error"
    assert nothing_yet == 0
    assert applied.status_code == 200
    assert applied.json()["applied"] is True
    assert OrganizationMembership.objects.count() == 2
    assert WorkspaceMembership.objects.count() == 1
    assert [e.actor_id for e in changed(events)] == [actor(http)] * 3


# --- a person -------------------------------------------------------------------------------


def test_a_persons_claims_preview_is_what_their_token_says(org, member_role) -> None:
    person = UserFactory()
    OrganizationMembershipFactory(user=person, organization=org, role=member_role)
    http = api("viewer")

    with recorded() as events:
        preview = http.get(f"/api/v1/users/{person.pk}/claims-preview")
        memberships = http.get(f"/api/v1/users/{person.pk}/memberships")

    assert preview.json() == json.loads(json.dumps(claims_preview(user=person)))
    assert preview.json()["orgs"][0]["id"] == str(org.pk)
    body = memberships.json()
    assert body["organizations"][0]["organization"]["slug"] == "acme"
    assert body["organizations"][0]["role"]["name"] == "member"
    assert (body["workspaces"], body["groups"]) == ([], [])
    viewed = [e for e in events if e.event_type == "operator.viewed_user"]
    assert [e.user_id for e in viewed] == [str(person.pk)] * 2


# --- who may ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_below_administrator_nothing_in_the_model_changes(role: str, org, member_role) -> None:
    http = api(role)

    answers = [
        send(http, "POST", "organizations", {"name": "X", "slug": "xx"}),
        send(http, "PATCH", f"organizations/{org.pk}", {"name": "X"}),
        send(http, "DELETE", f"organizations/{org.pk}"),
        send(http, "POST", f"organizations/{org.pk}/workspaces", {"name": "W", "slug": "ww"}),
        send(http, "POST", "permissions", {"resource": "a", "action": "b", "scope": "own"}),
        send(http, "POST", "roles", {"name": "r"}),
        send(http, "DELETE", f"roles/{member_role.pk}"),
    ]

    assert [a.status_code for a in answers] == [403] * len(answers)
    assert Organization.objects.get().name == "Acme"
    assert Role.objects.count() == 1
    assert not Workspace.objects.exists()


def test_a_viewer_cannot_change_memberships(org, member_role) -> None:
    person = UserFactory()
    http = api("viewer")
    body = {"user_id": str(person.pk), "role": str(member_role.pk)}

    added = send(http, "POST", f"organizations/{org.pk}/members", body)
    bulk = send(http, "POST", f"organizations/{org.pk}/members/bulk", {"csv": "a@b.c,member"})
    listed = http.get(f"/api/v1/organizations/{org.pk}/members")

    assert (added.status_code, bulk.status_code, listed.status_code) == (403, 403, 200)
    assert "This needs the operator role" in added.json()["detail"]
    assert not OrganizationMembership.objects.exists()


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "organizations", {"name": 123, "slug": "acme2"}, "name"),
        ("POST", "organizations", {"name": "A", "slug": ["x"]}, "slug"),
        ("POST", "organizations", {"name": "x" * 201, "slug": "abc"}, "name"),
        ("POST", "organizations", {"name": "A\x00", "slug": "abc"}, "name"),
        ("POST", "organizations", {"name": "A", "slug": "Not A Slug"}, "slug"),
        ("POST", "organizations", {"name": "A"}, "slug"),
        ("POST", "organizations", "[]", "non_field_errors"),
        ("POST", "organizations", "{not json", "detail"),
        ("PATCH", "organizations/{org}", {"slug": "x" * 64}, "slug"),
        ("PATCH", "organizations/{org}", {"name": None}, "name"),
        ("POST", "permissions", {"resource": "a:b", "action": "read", "scope": "own"}, "resource"),
        ("POST", "permissions", {"resource": "a", "action": "read", "scope": "all"}, "scope"),
        ("POST", "roles", {"name": "r", "permissions": "abc"}, "permissions"),
        ("POST", "roles", {"name": "r", "permissions": [SOME_ID]}, "permissions"),
        ("POST", "roles", {"name": "r", "organization": SOME_ID}, "organization"),
        ("POST", "roles", {"name": "no:colons"}, "name"),
        ("POST", "roles", {"name": True}, "name"),
        ("POST", "organizations/{org}/members", {"role": "{role}"}, "non_field_errors"),
        ("POST", "organizations/{org}/members", {"user_id": "x", "role": "{role}"}, "user_id"),
        ("POST", "organizations/{org}/members", {"email": "nope", "role": "{role}"}, "email"),
        (
            "POST",
            "organizations/{org}/members",
            {"email": "z@example.com", "role": "{role}"},
            "email",
        ),
        ("POST", "organizations/{org}/members", {"user_id": SOME_ID, "role": "{role}"}, "user_id"),
        (
            "POST",
            "organizations/{org}/members",
            {"email": "p@example.com", "role": SOME_ID},
            "role",
        ),
        ("POST", "organizations/{org}/members", {"email": "p@example.com", "role": 5}, "role"),
        ("POST", "organizations/{org}/members/bulk", {"csv": ""}, "csv"),
        ("POST", "organizations/{org}/members/bulk", {"csv": 5}, "csv"),
        ("POST", "organizations/{org}/members/bulk", {"csv": "a,b\n" * 1001}, "csv"),
        ("POST", "organizations/{org}/members/bulk", {"csv": "x" * 300_000}, "csv"),
        ("POST", "organizations/{org}/members/bulk", {"csv": "a,b", "apply": "maybe"}, "apply"),
        ("GET", "organizations?q=" + "q" * 201, None, "q"),
        ("GET", "roles?organization=nope", None, "organization"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(org, member_role, method, path, body, field) -> None:
    UserFactory(email="p@example.com")
    path = path.format(org=org.pk)
    if isinstance(body, dict):
        body = {k: (str(member_role.pk) if v == "{role}" else v) for k, v in body.items()}
    http = api("administrator")

    response = http.get(f"/api/v1/{path}") if method == "GET" else send(http, method, path, body)

    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert Organization.objects.count() == 1
    assert not OrganizationMembership.objects.exists()
    assert Permission.objects.count() == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"organizations/{SOME_ID}"),
        ("PATCH", f"organizations/{SOME_ID}"),
        ("POST", f"organizations/{SOME_ID}/workspaces"),
        ("GET", f"workspaces/{SOME_ID}"),
        ("DELETE", f"groups/{SOME_ID}"),
        ("DELETE", f"permissions/{SOME_ID}"),
        ("GET", f"roles/{SOME_ID}"),
        ("GET", f"users/{SOME_ID}/claims-preview"),
        ("PATCH", "organizations/{org}/members/{user}"),
        ("DELETE", "groups/{group}/members/{user}"),
        ("GET", "organizations/not-a-uuid"),
    ],
)
def test_an_id_in_the_path_that_names_nothing_is_a_404(org, method: str, path: str) -> None:
    group = GroupFactory()
    user = UserFactory()
    path = path.format(org=org.pk, group=group.pk, user=user.pk)

    response = send(api("administrator"), method, path, {"role": SOME_ID, "name": "N"})

    assert response.status_code == 404
    assert response.json()  # says what was not found


def test_the_schema_generates_without_warnings(tmp_path: Path) -> None:
    """drf-spectacular's --fail-on-warn: every route documented, every field typed."""
    out = tmp_path / "schema.yaml"

    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(out))

    assert "/api/v1/organizations/{organization_id}/members/bulk" in out.read_text()


# --- concurrent adds --------------------------------------------------------------------------

THREADS = 6


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_adds_through_the_api_leave_one_row() -> None:
    """The unique constraint on (user, organization) holds whatever the timing; each loser
    gets the same 400 as a sequential second add, none a 500."""
    org, role, person = OrganizationFactory(), RoleFactory(), UserFactory()
    clients = [api("operator") for _ in range(THREADS)]
    start = threading.Barrier(THREADS, timeout=30)
    body = {"user_id": str(person.pk), "role": str(role.pk)}

    def add(http: HttpClient) -> tuple[int, str]:
        try:
            start.wait()
            response = send(http, "POST", f"organizations/{org.pk}/members", body)
            return response.status_code, str(response.json().get("user", [""])[0])
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(add, clients))

    assert sorted(status for status, _ in outcomes) == [201] + [400] * (THREADS - 1)
    assert all("already a member" in says for status, says in outcomes if status == 400)
    assert OrganizationMembership.objects.filter(user=person, organization=org).count() == 1


def test_lists_cost_the_same_statements_for_one_row_or_many(org, member_role) -> None:
    """No statement per row: members, roles with their permissions, an organization's
    workspaces and roles (SQL statements counted, as the project's tests may)."""
    http = api("viewer")
    paths = [
        f"/api/v1/organizations/{org.pk}/members",
        f"/api/v1/roles?organization={org.pk}",
        f"/api/v1/organizations/{org.pk}",
    ]

    def statements() -> list[int]:
        counts = []
        for path in paths:
            with CaptureQueriesContext(connection) as seen:
                assert http.get(path).status_code == 200
            counts.append(len(seen))
        return counts

    OrganizationMembershipFactory(organization=org, role=member_role)
    statements()  # the session's first request does its own bookkeeping
    few = statements()
    for n in range(20):
        OrganizationMembershipFactory(organization=org, role=member_role)
        WorkspaceFactory(organization=org)
        RoleFactory(organization=org, name=f"own-{n}", permissions=[PermissionFactory()])
    many = statements()

    assert many == few
