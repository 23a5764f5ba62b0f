"""The console's directory pages (issue 13): organizations, workspaces, groups, roles,
permissions and memberships. Staff read; operators manage memberships; administrators the
structure. Every change is a permission.changed event with the operator as actor_id; bad
input re-renders the form with the service's message (400), never a 500."""

from __future__ import annotations

import json
from html import unescape
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as HttpClient

from apps.accounts import directory
from apps.accounts.models import (
    Group,
    GroupMembership,
    Organization,
    OrganizationMembership,
    Permission,
    Role,
    User,
    Workspace,
    WorkspaceMembership,
)
from apps.accounts.selectors import claims_preview, organization_page
from apps.accounts.services import user_create
from apps.core.models import SecurityEvent
from tests.console.conftest import confirm, csrf_token, signed_in_as

pytestmark = pytest.mark.django_db


def changes(http: HttpClient, **fields: Any) -> list[SecurityEvent]:
    """permission.changed events the signed-in operator recorded."""
    actor = http.user  # type: ignore[attr-defined]
    return list(
        SecurityEvent.objects.filter(
            event_type="permission.changed", actor_id=str(actor.pk), **fields
        )
    )


def submit(http: HttpClient, path: str, data: dict[str, Any], *, page: str = "") -> Any:
    """Opens `page` (by default the form's own), then posts its form as the browser does."""
    opened = http.get(page or path)
    assert opened.status_code == 200
    return http.post(path, {**data, "csrfmiddlewaretoken": csrf_token(opened.content)})


def text(response: Any) -> str:
    return unescape(response.content.decode())


@pytest.fixture
def acme(db) -> Organization:
    return directory.organization_create(name="Acme", slug="acme", actor_id=None)


@pytest.fixture
def member_role(db) -> Role:
    read = directory.permission_create(
        resource="invoices", action="read", scope="organization", actor_id=None
    )
    return directory.role_create(name="member", permissions=[read], actor_id=None)


@pytest.fixture
def ada(db) -> User:
    return user_create(email="ada@example.com")


@pytest.fixture
def tree(acme, member_role, ada) -> dict[str, Any]:
    """Acme with a workspace and a group, Ada in all three."""
    workspace = directory.workspace_create(
        organization=acme, name="Billing", slug="billing", actor_id=None
    )
    group = directory.group_create(workspace=workspace, name="Approvers", actor_id=None)
    org_m = directory.organization_membership_add(
        organization=acme, user=ada, role=member_role, actor_id=None
    )
    ws_m = directory.workspace_membership_add(
        workspace=workspace, user=ada, role=member_role, actor_id=None
    )
    group_m = directory.group_membership_add(group=group, user=ada, actor_id=None)
    return {
        "workspace": workspace,
        "group": group,
        "org_m": org_m,
        "ws_m": ws_m,
        "group_m": group_m,
    }


# --- pages by role --------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator", "administrator"])
def test_every_directory_page_renders_for_each_staff_role(role, acme, tree) -> None:
    http = signed_in_as(role)
    workspace, group = tree["workspace"], tree["group"]
    pages = [
        "/console/organizations/",
        f"/console/organizations/{acme.pk}/",
        f"/console/workspaces/{workspace.pk}/",
        f"/console/groups/{group.pk}/",
        "/console/roles/",
        "/console/permissions/",
        f"/console/users/{tree['org_m'].user_id}/",
    ]
    for path in pages:
        response = http.get(path)
        assert response.status_code == 200, path
    org_page = text(http.get(f"/console/organizations/{acme.pk}/"))
    assert "ada@example.com" in org_page
    assert "Billing" in org_page
    assert "invoices:read:organization" in org_page  # the roles with their permissions

    may_manage_members = role != "viewer"
    may_manage_structure = role == "administrator"
    assert (f"/console/organization-memberships/{tree['org_m'].pk}/remove/" in org_page) is (
        may_manage_members
    )
    assert (f"/console/organizations/{acme.pk}/members/bulk/" in org_page) is may_manage_members
    assert (f"/console/organizations/{acme.pk}/delete/" in org_page) is may_manage_structure
    assert (f"/console/organizations/{acme.pk}/workspaces/new/" in org_page) is (
        may_manage_structure
    )
    roles_page = text(http.get("/console/roles/"))
    assert ("/console/roles/new/" in roles_page) is may_manage_structure


def test_the_nav_links_the_organizations(viewer) -> None:
    assert 'href="/console/organizations/">Organizations</a>' in text(viewer.get("/console/"))


def test_an_operator_is_refused_the_structure(operator_staff, acme) -> None:
    for path in (
        "/console/organizations/new/",
        f"/console/organizations/{acme.pk}/delete/",
        "/console/roles/new/",
        "/console/permissions/new/",
    ):
        refused = operator_staff.get(path)
        assert refused.status_code == 403, path
        assert "This needs the administrator role" in text(refused)
    assert Organization.objects.count() == 1


def test_a_viewer_is_refused_adding_a_member(viewer, acme, member_role, ada) -> None:
    refused = viewer.get(f"/console/organizations/{acme.pk}/members/add/")

    assert refused.status_code == 403
    assert "This needs the operator role" in text(refused)
    assert not OrganizationMembership.objects.exists()


# --- organizations --------------------------------------------------------------------------


def test_an_administrator_creates_renames_and_lists_an_organization(administrator) -> None:
    created = submit(
        administrator, "/console/organizations/new/", {"name": "Globex", "slug": "globex"}
    )

    org = Organization.objects.get(slug="globex")
    assert created.status_code == 302
    assert created["Location"] == f"/console/organizations/{org.pk}/"
    [event] = changes(administrator, action="created")
    assert event.resource_id == str(org.pk)
    assert event.metadata["after"] == {"name": "Globex", "slug": "globex"}

    renamed = submit(
        administrator,
        f"/console/organizations/{org.pk}/rename/",
        {"name": "Globex Corp", "slug": "globex-corp"},
    )
    assert renamed.status_code == 302
    org.refresh_from_db()
    assert (org.name, org.slug) == ("Globex Corp", "globex-corp")
    assert changes(administrator, action="renamed")[0].metadata["before"]["slug"] == "globex"

    listed = text(administrator.get("/console/organizations/?q=corp"))
    assert "Globex Corp" in listed
    assert "No organizations match" in text(administrator.get("/console/organizations/?q=zzz"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "Bad", "slug": "Not A Slug"}, "lower-case letters, digits and hyphens"),
        ({"name": "", "slug": "fine"}, "A name is required."),
        ({"name": "Reserved", "slug": "new"}, "is reserved"),
        ({"name": "Again", "slug": "acme"}, "already exists"),
    ],
)
def test_a_bad_organization_reshows_the_form_with_the_services_message(
    administrator, acme, data, message
) -> None:
    response = submit(administrator, "/console/organizations/new/", data)

    assert response.status_code == 400
    assert message in text(response)
    assert 'name="slug"' in text(response)  # the form again
    assert Organization.objects.count() == 1


def test_deleting_an_organization_says_what_goes_with_it(administrator, acme, tree) -> None:
    path = f"/console/organizations/{acme.pk}/delete/"
    asked = text(administrator.get(path))
    assert "Delete the organization Acme?" in asked
    assert "1 workspace, 1 group, 3 memberships" in asked
    assert Organization.objects.filter(pk=acme.pk).exists()  # the GET changed nothing

    done = confirm(administrator, path)

    assert "deleted with 1 workspace, 1 group, 3 memberships" in text(done)
    assert not Organization.objects.filter(pk=acme.pk).exists()
    assert not GroupMembership.objects.exists()
    [event] = changes(administrator, action="deleted")
    assert event.metadata["impact"]["memberships"] == 3


def test_organizations_come_in_keyset_pages(administrator) -> None:
    for n in range(5):
        directory.organization_create(name=f"Org {n}", slug=f"org-{n}", actor_id=None)

    first = organization_page(size=2)
    second = organization_page(size=2, after=first.next_cursor)
    third = organization_page(size=2, after=second.next_cursor)

    seen = [o.slug for page in (first, second, third) for o in page.rows]
    assert seen == ["org-0", "org-1", "org-2", "org-3", "org-4"]
    assert third.next_cursor is None
    page = text(administrator.get(f"/console/organizations/?after={first.next_cursor}"))
    assert "First page" in page


def test_a_malformed_page_link_is_a_400(viewer) -> None:
    response = viewer.get("/console/organizations/?after=Not%20A%20Slug!")

    assert response.status_code == 400
    assert "This page link is malformed" in text(response)


# --- memberships ----------------------------------------------------------------------------


def test_an_operator_adds_a_person_changes_their_role_and_removes_them(
    operator_staff, acme, member_role, ada
) -> None:
    admin_role = directory.role_create(name="admin", organization=acme, actor_id=None)
    org_page = f"/console/organizations/{acme.pk}/"

    added = submit(
        operator_staff,
        f"/console/organizations/{acme.pk}/members/add/",
        {"user": "ADA@example.com", "role": str(member_role.pk)},
        page=org_page,  # the form on the organization's page
    )

    assert added.status_code == 302
    membership = OrganizationMembership.objects.get(user=ada, organization=acme)
    assert membership.role == member_role
    [event] = changes(operator_staff, action="member_added")
    assert event.user_id == str(ada.pk)

    path = f"/console/organization-memberships/{membership.pk}/role/"
    changed = submit(operator_staff, path, {"role": str(admin_role.pk)})
    assert changed.status_code == 302
    membership.refresh_from_db()
    assert membership.role == admin_role
    assert changes(operator_staff, action="role_changed")[0].metadata["after"]["role"] == "admin"

    removed = confirm(operator_staff, f"/console/organization-memberships/{membership.pk}/remove/")
    assert "ada@example.com removed" in text(removed)
    assert not OrganizationMembership.objects.exists()
    assert changes(operator_staff, action="member_removed")


def test_adding_a_member_twice_or_an_unknown_person_says_why(
    operator_staff, acme, member_role, ada
) -> None:
    path = f"/console/organizations/{acme.pk}/members/add/"
    submit(operator_staff, path, {"user": ada.email, "role": str(member_role.pk)})

    again = submit(operator_staff, path, {"user": ada.email, "role": str(member_role.pk)})
    unknown = submit(operator_staff, path, {"user": "who@example.com", "role": str(member_role.pk)})
    bad_role = submit(operator_staff, path, {"user": ada.email, "role": str(ada.pk)})
    not_an_id = submit(operator_staff, path, {"user": ada.email, "role": "not-a-uuid"})

    assert again.status_code == 400
    assert "ada@example.com is already a member of “Acme”" in text(again)
    assert unknown.status_code == 400
    assert "No account has the address who@example.com" in text(unknown)
    assert bad_role.status_code == 400
    assert "Choose one of the roles listed." in text(bad_role)
    assert not_an_id.status_code == 400
    assert "is not a valid UUID" in text(not_an_id)
    assert OrganizationMembership.objects.count() == 1


def test_another_organizations_role_is_not_offered_nor_taken(
    operator_staff, acme, member_role, ada
) -> None:
    other = directory.organization_create(name="Other", slug="other", actor_id=None)
    foreign = directory.role_create(name="foreign", organization=other, actor_id=None)
    path = f"/console/organizations/{acme.pk}/members/add/"

    assert "foreign" not in text(operator_staff.get(path))
    refused = submit(operator_staff, path, {"user": ada.email, "role": str(foreign.pk)})

    assert refused.status_code == 400
    assert not OrganizationMembership.objects.exists()


def test_workspace_membership_needs_the_organization_first(
    operator_staff, acme, member_role, ada
) -> None:
    workspace = directory.workspace_create(organization=acme, name="Ops", slug="ops", actor_id=None)
    path = f"/console/workspaces/{workspace.pk}/members/add/"
    data = {"user": ada.email, "role": str(member_role.pk)}

    refused = submit(operator_staff, path, data, page=f"/console/workspaces/{workspace.pk}/")
    assert refused.status_code == 400
    assert "add them to the organization first" in text(refused)

    directory.organization_membership_add(
        organization=acme, user=ada, role=member_role, actor_id=None
    )
    assert submit(operator_staff, path, data).status_code == 302
    membership = WorkspaceMembership.objects.get(user=ada, workspace=workspace)

    removed = confirm(operator_staff, f"/console/workspace-memberships/{membership.pk}/remove/")
    assert "ada@example.com removed" in text(removed)
    assert not WorkspaceMembership.objects.exists()
    assert OrganizationMembership.objects.filter(user=ada).exists()


def test_an_operator_adds_and_removes_a_group_member(operator_staff, tree, ada) -> None:
    group = tree["group"]
    tree["group_m"].delete()
    path = f"/console/groups/{group.pk}/members/add/"

    added = submit(operator_staff, path, {"user": ada.email}, page=f"/console/groups/{group.pk}/")
    assert added.status_code == 302
    membership = GroupMembership.objects.get(user=ada, group=group)
    assert changes(operator_staff, action="member_added")

    confirm(operator_staff, f"/console/group-memberships/{membership.pk}/remove/")
    assert not GroupMembership.objects.exists()


def test_a_membership_removed_meanwhile_says_so(operator_staff, tree) -> None:
    path = f"/console/group-memberships/{tree['group_m'].pk}/remove/"
    page = operator_staff.get(path)
    GroupMembership.objects.all().delete()

    done = operator_staff.post(path, {"csrfmiddlewaretoken": csrf_token(page.content)})

    assert done.status_code == 404  # gone: nothing to act on, no 500


# --- bulk add -------------------------------------------------------------------------------


def test_bulk_add_previews_each_line_then_adds_the_people(operator_staff, acme, member_role):
    workspace = directory.workspace_create(organization=acme, name="Ops", slug="ops", actor_id=None)
    for name in ("bo", "cy"):
        user_create(email=f"{name}@example.com")
    path = f"/console/organizations/{acme.pk}/members/bulk/"
    bad = (
        "email,role,workspace\nbo@example.com,member\nnobody@example.com,member\n"
        "cy@example.com,root\n"
    )

    preview = submit(operator_staff, path, {"step": "preview", "csv": bad})

    page = text(preview)
    assert preview.status_code == 200
    assert "No account has the address nobody@example.com" in page
    assert "This organization has no role “root”" in page
    assert "2 lines have errors" in page
    assert "Add 1 person" not in page  # a list with errors cannot be applied
    assert not OrganizationMembership.objects.exists()

    good = "bo@example.com,member\ncy@example.com,member\ncy@example.com,member,ops\n"
    preview = submit(operator_staff, path, {"step": "preview", "csv": good})
    assert "Add 3 people" in text(preview)
    assert not OrganizationMembership.objects.exists()  # the preview wrote nothing

    applied = operator_staff.post(
        path, {"step": "apply", "csv": good, "csrfmiddlewaretoken": csrf_token(preview.content)}
    )

    assert applied.status_code == 302
    assert OrganizationMembership.objects.filter(organization=acme).count() == 2
    assert WorkspaceMembership.objects.filter(workspace=workspace).count() == 1
    assert len(changes(operator_staff, action="member_added")) == 3


def test_bulk_add_takes_an_uploaded_file(operator_staff, acme, member_role, ada) -> None:
    path = f"/console/organizations/{acme.pk}/members/bulk/"
    upload = SimpleUploadedFile("people.csv", b"\xef\xbb\xbfada@example.com,member\n", "text/csv")

    preview = submit(operator_staff, path, {"step": "preview", "file": upload})

    assert preview.status_code == 200
    assert "Add 1 person" in text(preview)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"csv": ""}, "Type the list or choose a file."),
        ({"csv": "x\n" * 1001}, "over 1000"),
        ({"csv": "someone@example.com,member\n" * 10_000}, "The list is over 256 KB"),
    ],
)
def test_a_bad_bulk_list_says_why(operator_staff, acme, data, message) -> None:
    path = f"/console/organizations/{acme.pk}/members/bulk/"

    response = submit(operator_staff, path, {"step": "preview", **data})

    assert response.status_code == 400
    assert message in text(response)


def test_applying_a_list_that_went_wrong_meanwhile_adds_nobody(
    operator_staff, acme, member_role, ada
) -> None:
    path = f"/console/organizations/{acme.pk}/members/bulk/"
    page = operator_staff.get(path)

    response = operator_staff.post(
        path,
        {
            "step": "apply",
            "csv": "ada@example.com,member\nghost@example.com,member\n",
            "csrfmiddlewaretoken": csrf_token(page.content),
        },
    )

    assert response.status_code == 400
    assert "nothing was added" in text(response)
    assert not OrganizationMembership.objects.exists()


# --- workspaces and groups ------------------------------------------------------------------


def test_an_administrator_creates_renames_and_deletes_workspaces_and_groups(
    administrator, acme
) -> None:
    created = submit(
        administrator,
        f"/console/organizations/{acme.pk}/workspaces/new/",
        {"name": "Research", "slug": "research"},
    )
    workspace = Workspace.objects.get(organization=acme, slug="research")
    assert created["Location"] == f"/console/workspaces/{workspace.pk}/"

    duplicate = submit(
        administrator,
        f"/console/organizations/{acme.pk}/workspaces/new/",
        {"name": "Again", "slug": "research"},
    )
    assert duplicate.status_code == 400
    assert "already has a workspace “research”" in text(duplicate)

    submit(administrator, f"/console/workspaces/{workspace.pk}/groups/new/", {"name": "Leads"})
    group = Group.objects.get(workspace=workspace)
    submit(administrator, f"/console/groups/{group.pk}/rename/", {"name": "Team leads"})
    group.refresh_from_db()
    assert group.name == "Team leads"

    submit(
        administrator,
        f"/console/workspaces/{workspace.pk}/rename/",
        {"name": "R&D", "slug": "rnd"},
    )
    workspace.refresh_from_db()
    assert (workspace.name, workspace.slug) == ("R&D", "rnd")

    asked = text(administrator.get(f"/console/workspaces/{workspace.pk}/delete/"))
    assert "With it go 1 group" in asked
    confirm(administrator, f"/console/groups/{group.pk}/delete/")
    confirm(administrator, f"/console/workspaces/{workspace.pk}/delete/")
    assert not Workspace.objects.exists()
    assert len(changes(administrator, action="deleted")) == 2


# --- roles and permissions ------------------------------------------------------------------


def test_an_administrator_makes_a_role_with_permissions(administrator, acme) -> None:
    created = submit(
        administrator,
        "/console/permissions/new/",
        {"resource": "reports", "action": "export", "scope": "workspace"},
        page="/console/permissions/",
    )
    assert created.status_code == 302
    permission = Permission.objects.get(resource="reports")
    page = text(administrator.get("/console/roles/new/"))
    assert "reports:export:workspace" in page  # the checklist

    made = submit(
        administrator,
        "/console/roles/new/",
        {
            "name": "analyst",
            "description": "Reads reports",
            "organization": str(acme.pk),
            "permissions": [str(permission.pk)],
        },
    )

    assert made.status_code == 302
    role = Role.objects.get(name="analyst")
    assert role.organization == acme
    assert list(role.permissions.all()) == [permission]
    roles_page = text(administrator.get("/console/roles/"))
    assert "analyst" in roles_page
    assert "reports:export:workspace" in roles_page
    [event] = changes(administrator, action="created", resource_type="accounts.role")
    assert event.metadata["after"]["permissions"] == ["reports:export:workspace"]

    edited = submit(
        administrator,
        f"/console/roles/{role.pk}/edit/",
        {"name": "analyst", "description": "Nothing now", "permissions": []},
    )
    assert edited.status_code == 302
    assert not role.permissions.exists()
    assert changes(administrator, action="changed", resource_type="accounts.role")


def test_a_bad_role_name_or_permission_says_why(administrator, member_role) -> None:
    bad_name = submit(administrator, "/console/roles/new/", {"name": "no:colons"})
    taken = submit(administrator, "/console/roles/new/", {"name": "member"})
    bad_permission = submit(
        administrator,
        "/console/permissions/new/",
        {"resource": "Invoices!", "action": "read", "scope": "own"},
    )
    duplicate = submit(
        administrator,
        "/console/permissions/new/",
        {"resource": "invoices", "action": "read", "scope": "organization"},
    )
    bad_scope = submit(
        administrator,
        "/console/permissions/new/",
        {"resource": "invoices", "action": "read", "scope": "universe"},
    )

    assert bad_name.status_code == 400
    assert "the role's name appears in tokens" in text(bad_name)
    assert "already has the name “member”" in text(taken)
    assert "lower-case letters" in text(bad_permission)
    assert "The permission invoices:read:organization already exists." in text(duplicate)
    assert bad_scope.status_code == 400
    assert "Choose one of the scopes listed." in text(bad_scope)
    assert Role.objects.count() == 1
    assert Permission.objects.count() == 1


def test_a_permission_is_renamed_and_its_roles_keep_it(administrator, member_role) -> None:
    permission = member_role.permissions.get()
    path = f"/console/permissions/{permission.pk}/edit/"
    assert 'value="invoices"' in text(administrator.get(path))  # the form starts from it

    done = submit(administrator, path, {"resource": "bills", "action": "read", "scope": "own"})
    clash = submit(administrator, path, {"resource": "bills", "action": "read", "scope": "own"})
    bad = submit(administrator, path, {"resource": "Bills!", "action": "read", "scope": "own"})

    assert done.status_code == 302
    assert str(member_role.permissions.get()) == "bills:read:own"
    [event] = changes(administrator, action="changed")
    assert event.metadata["after"] == {"permission": "bills:read:own"}
    assert clash.status_code == 302  # the same name again: nothing to change
    assert bad.status_code == 400
    assert "lower-case letters" in text(bad)


def test_a_role_in_use_is_not_deleted(administrator, tree, member_role) -> None:
    path = f"/console/roles/{member_role.pk}/delete/"
    assert "It is used by 2 membership(s)" in text(administrator.get(path))

    done = confirm(administrator, path)

    assert "is used by 2 memberships; give those members another role first." in text(done)
    assert Role.objects.filter(pk=member_role.pk).exists()
    assert not changes(administrator, action="deleted")


def test_an_unused_role_and_a_permission_are_deleted(administrator, member_role) -> None:
    permission = member_role.permissions.get()
    confirm(administrator, f"/console/roles/{member_role.pk}/delete/")
    asked = text(administrator.get(f"/console/permissions/{permission.pk}/delete/"))
    assert "taken out of the 0 role(s)" in asked

    confirm(administrator, f"/console/permissions/{permission.pk}/delete/")

    assert not Role.objects.exists()
    assert not Permission.objects.exists()
    assert len(changes(administrator, action="deleted")) == 2


# --- a person's page ------------------------------------------------------------------------


def test_a_persons_page_shows_memberships_and_exactly_the_claims_preview(
    viewer, acme, tree, ada
) -> None:
    page = viewer.get(f"/console/users/{ada.pk}/")
    html = text(page)

    assert "Memberships" in html
    assert f'href="/console/organizations/{acme.pk}/"' in html
    assert f'href="/console/workspaces/{tree["workspace"].pk}/"' in html
    assert f'href="/console/groups/{tree["group"].pk}/"' in html
    shown = html.split('aria-label="Claims preview">', 1)[1].split("</pre>", 1)[0]
    assert json.loads(shown) == json.loads(json.dumps(claims_preview(user=ada)))
    assert json.loads(shown)["orgs"][0]["id"] == str(acme.pk)
    assert json.loads(shown)["perms"] == [
        {"resource": "invoices", "action": "read", "scope": "organization"}
    ]


def test_a_person_without_memberships_has_empty_claims(viewer, ada) -> None:
    html = text(viewer.get(f"/console/users/{ada.pk}/"))

    assert "No memberships" in html
    shown = html.split('aria-label="Claims preview">', 1)[1].split("</pre>", 1)[0]
    assert json.loads(shown) == {"orgs": [], "workspaces": [], "groups": [], "perms": []}


def _queries(http: HttpClient, path: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    http.get(path)  # warm
    with CaptureQueriesContext(connection) as captured:
        assert http.get(path).status_code == 200
    return len(captured)


def test_directory_pages_cost_the_same_whatever_their_size(viewer, acme, tree, member_role):
    """No query per row: members, workspaces, roles and permissions come in a fixed count."""
    workspace = tree["workspace"]
    own = directory.role_create(name="own", organization=acme, actor_id=None)
    own.permissions.set(member_role.permissions.all())  # a prefetch's query needs one row
    paths = [
        f"/console/organizations/{acme.pk}/",
        f"/console/workspaces/{workspace.pk}/",
        f"/console/groups/{tree['group'].pk}/",
        "/console/roles/",
        "/console/permissions/",
        "/console/organizations/",
    ]
    before = [_queries(viewer, path) for path in paths]
    for n in range(10):
        person = user_create(email=f"p{n}@example.com")
        perm = directory.permission_create(
            resource=f"r{n}", action="read", scope="own", actor_id=None
        )
        role = directory.role_create(
            name=f"role {n}", organization=acme, permissions=[perm], actor_id=None
        )
        directory.organization_membership_add(
            organization=acme, user=person, role=role, actor_id=None
        )
        directory.workspace_membership_add(
            workspace=workspace, user=person, role=role, actor_id=None
        )
        directory.group_membership_add(group=tree["group"], user=person, actor_id=None)
        directory.workspace_create(organization=acme, name=f"W{n}", slug=f"w-{n}", actor_id=None)
        directory.organization_create(name=f"O{n}", slug=f"o-{n}", actor_id=None)

    assert [_queries(viewer, path) for path in paths] == before
