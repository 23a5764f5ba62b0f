"""`manage.py directory <subcommand>`: organizations, workspaces, groups, permissions, roles
and memberships for provisioning scripts, through the same services as the console.

Each subcommand states what should exist: it creates what is missing, changes what differs
and says "unchanged" when all is already so, so a script can run twice. Exit status 1 with a
message on bad input. `--json` prints one object: {"status", "kind", "id", ...}.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction

from apps.accounts import directory
from apps.accounts.models import (
    Group,
    GroupMembership,
    Organization,
    OrganizationMembership,
    Permission,
    PermissionScope,
    Role,
    User,
    Workspace,
    WorkspaceMembership,
)
from apps.accounts.selectors import role_for_organization

Outcome = tuple[str, models.Model]  # (created | changed | unchanged, the row)


class Command(BaseCommand):
    help = "Create organizations, workspaces, groups, permissions, roles and memberships."

    def add_arguments(self, parser: ArgumentParser) -> None:
        assert isinstance(parser, CommandParser)
        sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=CommandParser)
        org = sub.add_parser("org-create", help="an organization (renamed if the name differs)")
        org.add_argument("--slug", required=True)
        org.add_argument("--name", required=True)
        ws = sub.add_parser("workspace-create", help="a workspace in an organization")
        ws.add_argument("--org", required=True, help="the organization's slug")
        ws.add_argument("--slug", required=True)
        ws.add_argument("--name", required=True)
        group = sub.add_parser("group-create", help="a group in a workspace")
        group.add_argument("--org", required=True)
        group.add_argument("--workspace", required=True, help="the workspace's slug")
        group.add_argument("--name", required=True)
        perm = sub.add_parser("permission-create", help="a permission resource:action:scope")
        perm.add_argument("--resource", required=True)
        perm.add_argument("--action", required=True)
        perm.add_argument("--scope", required=True, choices=PermissionScope.values)
        role = sub.add_parser("role-create", help="a role; its permissions set to those given")
        role.add_argument("--name", required=True)
        role.add_argument("--org", help="the organization's slug (none: a built-in role)")
        role.add_argument("--description", default="")
        role.add_argument(
            "--permission",
            action="append",
            default=[],
            metavar="RESOURCE:ACTION:SCOPE",
            help="repeat for each; created when missing",
        )
        member = sub.add_parser("member-add", help="a person in an organization or workspace")
        member.add_argument("--email", required=True)
        member.add_argument("--org", required=True)
        member.add_argument("--workspace", help="the workspace's slug (none: the organization)")
        member.add_argument("--role", required=True, help="the role's name")
        gmember = sub.add_parser("group-member-add", help="a person in a group")
        gmember.add_argument("--email", required=True)
        gmember.add_argument("--org", required=True)
        gmember.add_argument("--workspace", required=True)
        gmember.add_argument("--group", required=True, help="the group's name")
        for subcommand in sub.choices.values():
            subcommand.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        action: Callable[[dict[str, Any]], Outcome] = _ACTIONS[options["subcommand"]]
        try:
            with transaction.atomic():
                status, row = action(options)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        kind = type(row)._meta.verbose_name
        if options["json"]:
            self.stdout.write(json.dumps({"status": status, "kind": kind, "id": str(row.pk)}))
        else:
            self.stdout.write(f"{status}: {kind} {row} ({row.pk})")


def _get(model: type[Any], what: str, **lookup: Any) -> Any:
    found = model.objects.filter(**lookup).first()
    if found is None:
        raise CommandError(
            f"No {what} {' '.join(str(v) for v in lookup.values())}; create it first."
        )
    return found


def _org(slug: str) -> Organization:
    organization: Organization = _get(Organization, "organization", slug=slug)
    return organization


def _workspace(org_slug: str, slug: str) -> Workspace:
    workspace: Workspace = _get(Workspace, "workspace", organization=_org(org_slug), slug=slug)
    return workspace


def _user(email: str) -> User:
    user: User = _get(User, "account with the address", email=email.strip().lower())
    return user


def _org_create(o: dict[str, Any]) -> Outcome:
    found = Organization.objects.filter(slug=o["slug"]).first()
    if found is None:
        return "created", directory.organization_create(
            name=o["name"], slug=o["slug"], actor_id=None
        )
    if found.name == o["name"]:
        return "unchanged", found
    return "changed", directory.organization_rename(
        organization=found, name=o["name"], actor_id=None
    )


def _workspace_create(o: dict[str, Any]) -> Outcome:
    org = _org(o["org"])
    found = Workspace.objects.filter(organization=org, slug=o["slug"]).first()
    if found is None:
        created = directory.workspace_create(
            organization=org, name=o["name"], slug=o["slug"], actor_id=None
        )
        return "created", created
    if found.name == o["name"]:
        return "unchanged", found
    return "changed", directory.workspace_rename(workspace=found, name=o["name"], actor_id=None)


def _group_create(o: dict[str, Any]) -> Outcome:
    workspace = _workspace(o["org"], o["workspace"])
    found = Group.objects.filter(workspace=workspace, name=o["name"].strip()).first()
    if found is not None:
        return "unchanged", found
    return "created", directory.group_create(workspace=workspace, name=o["name"], actor_id=None)


def _permission(resource: str, action: str, scope: str) -> tuple[str, Permission]:
    found = Permission.objects.filter(resource=resource, action=action, scope=scope).first()
    if found is not None:
        return "unchanged", found
    created = directory.permission_create(
        resource=resource, action=action, scope=scope, actor_id=None
    )
    return "created", created


def _permission_create(o: dict[str, Any]) -> Outcome:
    return _permission(o["resource"], o["action"], o["scope"])


def _role_create(o: dict[str, Any]) -> Outcome:
    org = _org(o["org"]) if o["org"] else None
    permissions = []
    for spelled in o["permission"]:
        parts = spelled.split(":")
        if len(parts) != 3:
            raise CommandError(f"--permission {spelled!r}: write resource:action:scope.")
        permissions.append(_permission(*parts)[1])
    found = Role.objects.filter(organization=org, name=o["name"].strip()).first()
    if found is None:
        created = directory.role_create(
            name=o["name"],
            organization=org,
            description=o["description"],
            permissions=permissions,
            actor_id=None,
        )
        return "created", created
    same = found.description == o["description"].strip() and set(found.permissions.all()) == set(
        permissions
    )
    if same:
        return "unchanged", found
    changed = directory.role_update(
        role=found,
        description=o["description"],
        permissions=permissions,
        actor_id=None,
    )
    return "changed", changed


def _role(org: Organization, name: str) -> Role:
    role = role_for_organization(organization=org, name=name)
    if role is None:
        raise CommandError(f"The organization {org.slug} has no role {name!r}; create it first.")
    return role


def _member_add(o: dict[str, Any]) -> Outcome:
    org, user = _org(o["org"]), _user(o["email"])
    role = _role(org, o["role"])
    found: OrganizationMembership | WorkspaceMembership | None
    if o["workspace"]:
        workspace = _workspace(o["org"], o["workspace"])
        found = WorkspaceMembership.objects.filter(user=user, workspace=workspace).first()
        if found is None:
            added = directory.workspace_membership_add(
                workspace=workspace, user=user, role=role, actor_id=None
            )
            return "created", added
        if found.role_id == role.pk:
            return "unchanged", found
        return "changed", directory.workspace_membership_set_role(
            membership=found, role=role, actor_id=None
        )
    found = OrganizationMembership.objects.filter(user=user, organization=org).first()
    if found is None:
        added_to_org = directory.organization_membership_add(
            organization=org, user=user, role=role, actor_id=None
        )
        return "created", added_to_org
    if found.role_id == role.pk:
        return "unchanged", found
    return "changed", directory.organization_membership_set_role(
        membership=found, role=role, actor_id=None
    )


def _group_member_add(o: dict[str, Any]) -> Outcome:
    workspace = _workspace(o["org"], o["workspace"])
    group: Group = _get(Group, "group", workspace=workspace, name=o["group"])
    user = _user(o["email"])
    found = GroupMembership.objects.filter(user=user, group=group).first()
    if found is not None:
        return "unchanged", found
    return "created", directory.group_membership_add(group=group, user=user, actor_id=None)


_ACTIONS: dict[str, Callable[[dict[str, Any]], Outcome]] = {
    "org-create": _org_create,
    "workspace-create": _workspace_create,
    "group-create": _group_create,
    "permission-create": _permission_create,
    "role-create": _role_create,
    "member-add": _member_add,
    "group-member-add": _group_member_add,
}
