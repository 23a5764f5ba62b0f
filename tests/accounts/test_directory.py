"""The directory services (apps.accounts.directory): what operators and scripts change, the
mistakes they refuse with a message, and the events they record (issue 13)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.accounts import directory
from apps.accounts.models import (
    Group,
    GroupMembership,
    Organization,
    OrganizationMembership,
    Permission,
    Role,
    WorkspaceMembership,
)
from apps.accounts.selectors import (
    claims_preview,
    organization_delete_impact,
    user_token_claims,
)
from tests.accounts.factories import (
    GroupFactory,
    OrganizationFactory,
    PermissionFactory,
    RoleFactory,
    UserFactory,
    WorkspaceFactory,
)
from tests.events import recorded

pytestmark = pytest.mark.django_db


def messages(error: pytest.ExceptionInfo[ValidationError]) -> dict[str, list[str]]:
    return error.value.message_dict


# --- organizations, workspaces, groups ------------------------------------------------------


def test_creating_an_organization_records_permission_changed_with_the_operator() -> None:
    operator = UserFactory()
    with recorded() as events:
        org = directory.organization_create(name=" Acme ", slug="acme", actor_id=operator.pk)

    assert (org.name, org.slug) == ("Acme", "acme")
    [event] = events
    assert event.event_type == "permission.changed"
    assert event.actor_id == str(operator.pk)
    assert (event.resource_type, event.resource_id) == ("accounts.organization", str(org.pk))
    assert event.metadata == {"before": None, "after": {"name": "Acme", "slug": "acme"}}
    assert event.compliance_tags == ["SOC2", "GDPR"]


@pytest.mark.parametrize(
    ("slug", "says"),
    [
        ("", "A slug is required."),
        ("A", "lower-case letters"),
        ("acme_corp", "lower-case letters"),
        ("-acme", "lower-case letters"),
        ("x" * 64, "lower-case letters"),
        ("new", "reserved"),
    ],
)
def test_a_bad_slug_is_refused_with_a_message_on_the_slug(slug: str, says: str) -> None:
    with pytest.raises(ValidationError) as error:
        directory.organization_create(name="Acme", slug=slug, actor_id=None)
    assert says in messages(error)["slug"][0]
    assert not Organization.objects.exists()


@pytest.mark.parametrize(("name", "says"), [("  ", "required"), ("x" * 201, "at most 200")])
def test_a_bad_name_is_refused_with_a_message_on_the_name(name: str, says: str) -> None:
    with pytest.raises(ValidationError) as error:
        directory.organization_create(name=name, slug="acme", actor_id=None)
    assert says in messages(error)["name"][0]


def test_a_taken_slug_is_refused_and_the_transaction_goes_on() -> None:
    directory.organization_create(name="Acme", slug="acme", actor_id=None)
    with pytest.raises(ValidationError) as error:
        directory.organization_create(name="Acme 2", slug="acme", actor_id=None)
    assert "already exists" in messages(error)["slug"][0]
    assert Organization.objects.count() == 1  # the savepoint kept the connection usable


def test_workspace_slugs_are_unique_per_organization_only() -> None:
    acme, globex = OrganizationFactory(), OrganizationFactory()
    directory.workspace_create(organization=acme, name="Eng", slug="eng", actor_id=None)
    directory.workspace_create(organization=globex, name="Eng", slug="eng", actor_id=None)
    with pytest.raises(ValidationError) as error:
        directory.workspace_create(organization=acme, name="Eng", slug="eng", actor_id=None)
    assert "already has a workspace" in messages(error)["slug"][0]


def test_renaming_records_before_and_after() -> None:
    workspace = WorkspaceFactory(name="Eng", slug="eng")
    with recorded() as events:
        directory.workspace_rename(workspace=workspace, name="Engineering", actor_id=None)
    workspace.refresh_from_db()
    assert workspace.name == "Engineering"
    [event] = events
    assert event.metadata["before"]["name"] == "Eng"
    assert event.metadata["after"]["name"] == "Engineering"


def test_group_names_are_unique_per_workspace() -> None:
    workspace = WorkspaceFactory()
    group = directory.group_create(workspace=workspace, name="on-call", actor_id=None)
    with pytest.raises(ValidationError) as error:
        directory.group_create(workspace=workspace, name="on-call", actor_id=None)
    assert "already has a group" in messages(error)["name"][0]
    directory.group_rename(group=group, name="pager", actor_id=None)
    assert Group.objects.get().name == "pager"


def test_deleting_an_organization_says_what_went_with_it() -> None:
    org = OrganizationFactory()
    own_role = RoleFactory(organization=org)
    people = UserFactory.create_batch(2)
    workspace = WorkspaceFactory(organization=org)
    group = GroupFactory(workspace=workspace)
    for person in people:
        directory.organization_membership_add(
            organization=org, user=person, role=own_role, actor_id=None
        )
    directory.workspace_membership_add(
        workspace=workspace, user=people[0], role=own_role, actor_id=None
    )
    directory.group_membership_add(group=group, user=people[0], actor_id=None)

    impact = organization_delete_impact(organization=org)
    with recorded() as events:
        deleted = directory.organization_delete(organization=org, actor_id=None)

    assert deleted == impact
    assert impact.as_dict() == {
        "workspaces": 1,
        "groups": 1,
        "roles": 1,
        "memberships": 4,
        "people": 2,
    }
    assert not Organization.objects.exists()
    assert not Role.objects.exists()
    assert not OrganizationMembership.objects.exists()
    [event] = events
    assert event.metadata["impact"] == impact.as_dict()


def test_deleting_a_workspace_takes_its_groups_and_memberships() -> None:
    org = OrganizationFactory()
    role = RoleFactory()
    person = UserFactory()
    workspace = WorkspaceFactory(organization=org)
    group = GroupFactory(workspace=workspace)
    directory.organization_membership_add(organization=org, user=person, role=role, actor_id=None)
    directory.workspace_membership_add(workspace=workspace, user=person, role=role, actor_id=None)
    directory.group_membership_add(group=group, user=person, actor_id=None)

    impact = directory.workspace_delete(workspace=workspace, actor_id=None)

    assert (impact.groups, impact.memberships, impact.people) == (1, 2, 1)
    assert not GroupMembership.objects.exists()
    assert OrganizationMembership.objects.filter(user=person).exists()


# --- permissions and roles ------------------------------------------------------------------


def test_a_role_with_permissions_shows_in_its_members_claims() -> None:
    read = directory.permission_create(
        resource="documents", action="read", scope="workspace", actor_id=None
    )
    org = OrganizationFactory()
    role = directory.role_create(name="Editor", organization=org, permissions=[read], actor_id=None)
    person = UserFactory()
    directory.organization_membership_add(organization=org, user=person, role=role, actor_id=None)

    write = directory.permission_create(
        resource="documents", action="write", scope="workspace", actor_id=None
    )
    with recorded() as events:
        directory.role_update(role=role, permissions=[read, write], actor_id=None)

    perms = claims_preview(user=person)["perms"]
    assert [f"{p['resource']}:{p['action']}" for p in perms] == [
        "documents:read",
        "documents:write",
    ]
    [event] = events
    assert event.metadata["before"]["permissions"] == ["documents:read:workspace"]
    assert event.metadata["after"]["permissions"] == [
        "documents:read:workspace",
        "documents:write:workspace",
    ]


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"resource": "Documents"}, "resource", "lower-case"),
        ({"action": "read:all"}, "action", "resource:action:scope"),
        ({"scope": "planet"}, "scope", "must be one of own, workspace, organization, global"),
    ],
)
def test_a_bad_permission_is_refused_on_its_field(fields: dict, field: str, says: str) -> None:
    values = {"resource": "documents", "action": "read", "scope": "own", **fields}
    with pytest.raises(ValidationError) as error:
        directory.permission_create(**values, actor_id=None)
    assert says in messages(error)[field][0]


def test_a_duplicate_permission_is_refused() -> None:
    directory.permission_create(resource="documents", action="read", scope="own", actor_id=None)
    with pytest.raises(ValidationError, match="documents:read:own already exists"):
        directory.permission_create(resource="documents", action="read", scope="own", actor_id=None)


def test_role_names_are_unique_per_organization_and_among_built_ins() -> None:
    org = OrganizationFactory()
    directory.role_create(name="admin", actor_id=None)
    directory.role_create(name="admin", organization=org, actor_id=None)  # its own may shadow
    with pytest.raises(ValidationError) as built_in:
        directory.role_create(name="admin", actor_id=None)
    with pytest.raises(ValidationError) as own:
        directory.role_create(name="admin", organization=org, actor_id=None)
    assert "built-in" in messages(built_in)["name"][0]
    assert "This organization already has" in messages(own)["name"][0]


def test_a_role_in_use_cannot_be_deleted_and_says_how_many_use_it() -> None:
    org = OrganizationFactory()
    role = RoleFactory()
    for person in UserFactory.create_batch(3):
        directory.organization_membership_add(
            organization=org, user=person, role=role, actor_id=None
        )
    with pytest.raises(ValidationError, match="used by 3 memberships"):
        directory.role_delete(role=role, actor_id=None)
    assert Role.objects.filter(pk=role.pk).exists()

    unused = RoleFactory()
    directory.role_delete(role=unused, actor_id=None)
    assert not Role.objects.filter(pk=unused.pk).exists()


def test_deleting_a_permission_takes_it_out_of_its_roles() -> None:
    permission = PermissionFactory()
    RoleFactory(permissions=[permission])
    assert directory.permission_delete(permission=permission, actor_id=None) == 1
    assert not Permission.objects.exists()


# --- memberships ----------------------------------------------------------------------------


def test_adding_a_person_records_the_person_and_the_operator() -> None:
    operator, person = UserFactory(), UserFactory()
    org, role = OrganizationFactory(), RoleFactory(name="member")
    with recorded() as events:
        membership = directory.organization_membership_add(
            organization=org, user=person, role=role, actor_id=operator.pk
        )
    [event] = events
    assert (event.user_id, event.actor_id) == (str(person.pk), str(operator.pk))
    assert event.action == "member_added"
    assert event.metadata["after"] == {"role": "member", "role_id": str(role.pk)}

    other = RoleFactory(name="owner")
    with recorded() as events:
        directory.organization_membership_set_role(
            membership=membership, role=other, actor_id=operator.pk
        )
    [event] = events
    assert event.metadata["before"]["role"] == "member"
    assert event.metadata["after"]["role"] == "owner"
    assert claims_preview(user=person)["orgs"][0]["role"] == "owner"


def test_a_second_add_of_the_same_person_is_refused_with_a_message() -> None:
    org, role, person = OrganizationFactory(), RoleFactory(), UserFactory()
    directory.organization_membership_add(organization=org, user=person, role=role, actor_id=None)
    with pytest.raises(ValidationError) as error:
        directory.organization_membership_add(
            organization=org, user=person, role=role, actor_id=None
        )
    assert "already a member" in messages(error)["user"][0]


def test_a_role_of_another_organization_is_refused() -> None:
    acme, globex = OrganizationFactory(name="Acme"), OrganizationFactory()
    foreign = RoleFactory(organization=globex, name="globex-admin")
    person = UserFactory()
    with pytest.raises(ValidationError) as error:
        directory.organization_membership_add(
            organization=acme, user=person, role=foreign, actor_id=None
        )
    assert "belongs to another organization" in messages(error)["role"][0]

    directory.organization_membership_add(
        organization=acme, user=person, role=RoleFactory(), actor_id=None
    )
    workspace = WorkspaceFactory(organization=acme)
    with pytest.raises(ValidationError) as error:
        directory.workspace_membership_add(
            workspace=workspace, user=person, role=foreign, actor_id=None
        )
    assert "belongs to another organization" in messages(error)["role"][0]
    assert not WorkspaceMembership.objects.exists()


def test_a_workspace_membership_needs_the_organization_first() -> None:
    workspace, person = WorkspaceFactory(), UserFactory()
    with pytest.raises(ValidationError) as error:
        directory.workspace_membership_add(
            workspace=workspace, user=person, role=RoleFactory(), actor_id=None
        )
    assert "add them to the organization first" in messages(error)["user"][0]


def test_a_group_of_another_workspace_or_outside_the_persons_workspaces_is_refused() -> None:
    org, role, person = OrganizationFactory(), RoleFactory(), UserFactory()
    mine, other = WorkspaceFactory(organization=org), WorkspaceFactory(organization=org)
    directory.organization_membership_add(organization=org, user=person, role=role, actor_id=None)
    directory.workspace_membership_add(workspace=mine, user=person, role=role, actor_id=None)
    foreign_group = GroupFactory(workspace=other, name="ops")

    with pytest.raises(ValidationError) as error:
        directory.group_membership_add(
            group=foreign_group, user=person, workspace=mine, actor_id=None
        )
    assert "belongs to another workspace" in messages(error)["group"][0]
    with pytest.raises(ValidationError) as error:
        directory.group_membership_add(group=foreign_group, user=person, actor_id=None)
    assert "add them to the workspace first" in messages(error)["user"][0]

    group = GroupFactory(workspace=mine)
    directory.group_membership_add(group=group, user=person, workspace=mine, actor_id=None)
    assert claims_preview(user=person)["groups"] == [str(group.pk)]


def test_removing_someone_from_an_organization_takes_its_workspaces_and_groups(
    settings,
) -> None:
    settings.ACCOUNTS_REVOKE_ON_REMOVAL = False
    org, role, person = OrganizationFactory(), RoleFactory(), UserFactory()
    elsewhere = OrganizationFactory()
    workspace = WorkspaceFactory(organization=org)
    membership = directory.organization_membership_add(
        organization=org, user=person, role=role, actor_id=None
    )
    directory.organization_membership_add(
        organization=elsewhere, user=person, role=role, actor_id=None
    )
    directory.workspace_membership_add(workspace=workspace, user=person, role=role, actor_id=None)
    directory.group_membership_add(
        group=GroupFactory(workspace=workspace), user=person, actor_id=None
    )

    with recorded() as events:
        removed = directory.organization_membership_remove(membership=membership, actor_id=None)

    assert removed == {"workspaces": 1, "groups": 1, "tokens_revoked": 0}
    claims = claims_preview(user=person)
    assert [o["id"] for o in claims["orgs"]] == [str(elsewhere.pk)]
    assert claims["workspaces"] == []
    assert claims["groups"] == []
    [event] = events
    assert event.action == "member_removed"
    assert event.metadata["workspaces"] == 1
    with pytest.raises(ValidationError, match="already removed"):
        directory.organization_membership_remove(membership=membership, actor_id=None)


def test_removing_someone_from_a_workspace_takes_its_groups() -> None:
    org, role, person = OrganizationFactory(), RoleFactory(), UserFactory()
    workspace = WorkspaceFactory(organization=org)
    directory.organization_membership_add(organization=org, user=person, role=role, actor_id=None)
    membership = directory.workspace_membership_add(
        workspace=workspace, user=person, role=role, actor_id=None
    )
    group_membership = directory.group_membership_add(
        group=GroupFactory(workspace=workspace), user=person, actor_id=None
    )
    directory.group_membership_remove(membership=group_membership, actor_id=None)
    directory.group_membership_add(group=group_membership.group, user=person, actor_id=None)

    assert directory.workspace_membership_remove(membership=membership, actor_id=None) == 1
    assert not GroupMembership.objects.exists()


def test_claims_preview_is_the_function_tokens_use() -> None:
    org, person = OrganizationFactory(), UserFactory()
    role = RoleFactory(permissions=[PermissionFactory(resource="documents")])
    directory.organization_membership_add(organization=org, user=person, role=role, actor_id=None)
    assert claims_preview(user=person) == user_token_claims(user=person)
    assert claims_preview(user=person)["orgs"][0]["id"] == str(org.pk)


def test_a_membership_change_shows_in_the_next_token(settings) -> None:
    from apps.tokens.claims import access_token_claims

    org, person = OrganizationFactory(), UserFactory()
    directory.organization_membership_add(
        organization=org, user=person, role=RoleFactory(name="viewer"), actor_id=None
    )
    claims = access_token_claims(
        client_id="rp", user=person, scopes=["openid"], session=None,
        audience=[settings.ACCESS_TOKEN_AUDIENCE], refreshed=True,
    )  # fmt: skip
    assert claims["orgs"] == claims_preview(user=person)["orgs"]
    assert claims["orgs"][0]["role"] == "viewer"


# --- bulk add -------------------------------------------------------------------------------


def test_bulk_preview_reports_each_line_without_writing() -> None:
    org = OrganizationFactory()
    RoleFactory(name="member")
    WorkspaceFactory(organization=org, slug="eng")
    UserFactory(email="ada@example.com")
    UserFactory(email="bob@example.com")
    cy = UserFactory(email="cy@example.com")
    directory.organization_membership_add(
        organization=org, user=cy, role=Role.objects.get(name="member"), actor_id=None
    )
    csv_text = (
        "email,role,workspace\n"
        "ADA@example.com,member\n"
        "ada@example.com,member,eng\n"
        "bob@example.com,member,eng\n"
        "nobody@example.com,member\n"
        "cy@example.com,member\n"
        "bob@example.com,boss\n"
        "ada@example.com,member\n"
        "bob@example.com,member,nowhere\n"
        "just-an-email\n"
    )
    lines = directory.bulk_members_preview(organization=org, csv_text=csv_text)

    assert [(line.line, line.status) for line in lines] == [
        (2, "ok"),
        (3, "ok"),
        (4, "error"),
        (5, "error"),
        (6, "unchanged"),
        (7, "error"),
        (8, "error"),
        (9, "error"),
        (10, "error"),
    ]
    says = {line.line: line.message for line in lines}
    assert "add them first" in says[4]
    assert "No account" in says[5]
    assert "no role “boss”" in says[7]
    assert "Line 2 already adds" in says[8]
    assert "no workspace “nowhere”" in says[9]
    assert "email,role" in says[10]
    assert OrganizationMembership.objects.filter(organization=org).count() == 1


def test_bulk_apply_adds_every_line_in_one_go_or_nothing() -> None:
    org = OrganizationFactory()
    RoleFactory(name="member")
    WorkspaceFactory(organization=org, slug="eng")
    UserFactory(email="ada@example.com")
    UserFactory(email="bob@example.com")
    good = "ada@example.com,member\nada@example.com,member,eng\nbob@example.com,member\n"

    with pytest.raises(ValidationError) as error:
        directory.bulk_members_apply(
            organization=org, csv_text=good + "eve@example.com,member\n", actor_id=None
        )
    assert "1 line(s) have errors, nothing was added" in messages(error)["csv"][0]
    assert not OrganizationMembership.objects.exists()

    with recorded() as events:
        lines = directory.bulk_members_apply(organization=org, csv_text=good, actor_id=None)
    assert [line.status for line in lines] == ["ok", "ok", "ok"]
    assert OrganizationMembership.objects.count() == 2
    assert WorkspaceMembership.objects.count() == 1
    assert [e.event_type for e in events] == ["permission.changed"] * 3

    again = directory.bulk_members_apply(organization=org, csv_text=good, actor_id=None)
    assert [line.status for line in again] == ["unchanged"] * 3


def test_bulk_input_is_bounded() -> None:
    org = OrganizationFactory()
    too_long = "a@example.com,member\n" * (directory.BULK_MAX_LINES + 1)
    with pytest.raises(ValidationError, match="over 1000"):
        directory.bulk_members_preview(organization=org, csv_text=too_long)
    too_big = "x" * (directory.BULK_MAX_BYTES + 1)
    with pytest.raises(ValidationError, match="over 256 KB"):
        directory.bulk_members_preview(organization=org, csv_text=too_big)
    with pytest.raises(ValidationError, match="empty"):
        directory.bulk_members_preview(organization=org, csv_text="\n\n")


def test_changing_the_role_of_a_removed_membership_says_so(settings) -> None:
    settings.ACCOUNTS_REVOKE_ON_REMOVAL = False
    org, role, person = OrganizationFactory(), RoleFactory(), UserFactory()
    membership = directory.organization_membership_add(
        organization=org, user=person, role=role, actor_id=None
    )
    directory.organization_membership_remove(membership=membership, actor_id=None)
    with pytest.raises(ValidationError, match="removed meanwhile"):
        directory.organization_membership_set_role(
            membership=membership, role=RoleFactory(), actor_id=None
        )
