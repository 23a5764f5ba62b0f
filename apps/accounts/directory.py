"""Who may do what, as operators and scripts change it: organizations, workspaces, groups,
permissions, roles and memberships. One road: the console, the admin API and the `directory`
command call these functions and nothing else writes them.

Each function takes keyword arguments and `actor_id` (the operator's user id; None for the
system, e.g. a provisioning command), returns the model instance it wrote, and raises
django.core.exceptions.ValidationError with a message that says what to do, keyed by field
where it is about one. Every change records one `permission.changed` event in the same
transaction (SOC2 CC6.2/CC6.3 access changes; GDPR Art. 30 record of processing): the operator
as actor_id, the person as user_id where there is one, `before`/`after` in metadata.

Memberships nest: a workspace membership needs the person in the workspace's organization,
a group membership needs them in the group's workspace (the claims code counts a group only
inside a workspace the person belongs to, apps.accounts.selectors.user_token_claims). Removing
someone therefore also removes what they held below: out of an organization means out of its
workspaces and groups. The unique constraints on (user, organization|workspace|group) make
concurrent adds of one membership end with one row; the loser gets the same ValidationError
as a sequential second add.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

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
from apps.accounts.selectors import (
    DeleteImpact,
    group_delete_impact,
    organization_delete_impact,
    role_for_organization,
    user_ids_for_emails,
    workspace_delete_impact,
)
from apps.core import revocation
from apps.core.events import EventType, emit

T = TypeVar("T", bound=models.Model)
M = TypeVar("M", OrganizationMembership, WorkspaceMembership)

# A slug is a URL path segment and a name scripts type: DNS-label-like (RFC 1035 §2.3.1,
# lower case), 2-63 characters.
SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
SLUG_MAX = 63
# Path segments the console and the API use beside slugs.
RESERVED_SLUGS = frozenset({"new", "edit", "delete", "admin", "api", "settings", "members"})
NAME_MAX = 200
# Resource and action appear in tokens as resource:action:scope: no colon, no spaces.
PERMISSION_PART_RE = re.compile(r"[a-z][a-z0-9_.-]{0,99}\Z")
ROLE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- validation -----------------------------------------------------------------------------


def _name(value: str, *, field: str = "name", maximum: int = NAME_MAX) -> str:
    value = (value or "").strip()
    if not value:
        raise ValidationError({field: "A name is required."}, code="required")
    if len(value) > maximum:
        raise ValidationError(
            {field: f"Use at most {maximum} characters ({len(value)} given)."}, code="max_length"
        )
    if _CONTROL.search(value):
        raise ValidationError({field: "Remove the control characters."}, code="invalid")
    return value


def _slug(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ValidationError({"slug": "A slug is required."}, code="required")
    if len(value) > SLUG_MAX or len(value) < 2 or not SLUG_RE.match(value):
        raise ValidationError(
            {
                "slug": f"Use 2-{SLUG_MAX} lower-case letters, digits and hyphens, starting "
                f"and ending with a letter or digit (“{value[:80]}” is not)."
            },
            code="invalid",
        )
    if value in RESERVED_SLUGS:
        raise ValidationError(
            {"slug": f"“{value}” is reserved; choose another slug."}, code="reserved"
        )
    return value


def _saved(instance: T, taken: ValidationError, *, update_fields: list[str] | None = None) -> T:
    """Saves in a savepoint: a unique constraint lost to a concurrent writer becomes `taken`."""
    try:
        with transaction.atomic():
            if update_fields is None:
                instance.save(force_insert=True)
            else:
                instance.save(update_fields=update_fields)
    except IntegrityError as error:
        raise taken from error
    return instance


def _record(
    *,
    actor_id: object,
    resource: models.Model,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    user_id: object = None,
    **extra: Any,
) -> None:
    emit(
        EventType.PERMISSION_CHANGED,
        user_id=user_id,
        actor_id=actor_id,
        resource_type=type(resource)._meta.label_lower,
        resource_id=resource.pk,
        action=action,
        metadata={"before": before, "after": after, **extra},
    )


# --- organizations, workspaces, groups ------------------------------------------------------

_VIEW_FIELDS: dict[type[models.Model], tuple[str, ...]] = {
    Organization: ("name", "slug"),
    Workspace: ("name", "slug", "organization_id"),
    Group: ("name", "workspace_id"),
}


def _view(row: models.Model) -> dict[str, Any]:
    """What an event's before/after shows of a row."""
    return {f.removesuffix("_id"): str(getattr(row, f)) for f in _VIEW_FIELDS[type(row)]}


def _write(row: T, taken: ValidationError, *, action: str, before: Any, actor_id: object) -> T:
    """Inserts (before None) or updates the row's name/slug, with its event."""
    fields = None if before is None else [f for f in ("name", "slug") if hasattr(row, f)]
    with transaction.atomic():
        _saved(row, taken, update_fields=fields)
        _record(actor_id=actor_id, resource=row, action=action, before=before, after=_view(row))
    return row


def _delete(row: models.Model, impact: DeleteImpact, actor_id: object) -> DeleteImpact:
    _record(
        actor_id=actor_id,
        resource=row,
        action="deleted",
        before=_view(row),
        after=None,
        impact=impact.as_dict(),
    )
    row.delete()
    return impact


def _org_taken(slug: str) -> ValidationError:
    message = f"An organization with the slug “{slug}” already exists; choose another."
    return ValidationError({"slug": message}, code="unique")


def organization_create(*, name: str, slug: str, actor_id: object) -> Organization:
    org = Organization(name=_name(name), slug=_slug(slug))
    return _write(org, _org_taken(org.slug), action="created", before=None, actor_id=actor_id)


def organization_rename(
    *, organization: Organization, name: str, slug: str | None = None, actor_id: object
) -> Organization:
    before = _view(organization)
    organization.name = _name(name)
    organization.slug = _slug(slug) if slug is not None else organization.slug
    taken = _org_taken(organization.slug)
    return _write(organization, taken, action="renamed", before=before, actor_id=actor_id)


def organization_delete(*, organization: Organization, actor_id: object) -> DeleteImpact:
    """Deletes the organization with its workspaces, groups, roles and every membership in
    them; returns what went (organization_delete_impact, counted inside the deletion)."""
    with transaction.atomic():
        locked = Organization.objects.select_for_update().get(pk=organization.pk)
        impact = organization_delete_impact(organization=locked)
        # The organization's own roles are RESTRICTed by memberships: members go first.
        GroupMembership.objects.filter(group__workspace__organization=locked).delete()
        WorkspaceMembership.objects.filter(workspace__organization=locked).delete()
        OrganizationMembership.objects.filter(organization=locked).delete()
        return _delete(locked, impact, actor_id)


def _workspace_taken(slug: str) -> ValidationError:
    message = f"This organization already has a workspace “{slug}”; choose another slug."
    return ValidationError({"slug": message}, code="unique")


def workspace_create(
    *, organization: Organization, name: str, slug: str, actor_id: object
) -> Workspace:
    workspace = Workspace(organization=organization, name=_name(name), slug=_slug(slug))
    taken = _workspace_taken(workspace.slug)
    return _write(workspace, taken, action="created", before=None, actor_id=actor_id)


def workspace_rename(
    *, workspace: Workspace, name: str, slug: str | None = None, actor_id: object
) -> Workspace:
    before = _view(workspace)
    workspace.name = _name(name)
    workspace.slug = _slug(slug) if slug is not None else workspace.slug
    taken = _workspace_taken(workspace.slug)
    return _write(workspace, taken, action="renamed", before=before, actor_id=actor_id)


def workspace_delete(*, workspace: Workspace, actor_id: object) -> DeleteImpact:
    """Deletes the workspace with its groups and their memberships."""
    with transaction.atomic():
        return _delete(workspace, workspace_delete_impact(workspace=workspace), actor_id)


def _group_taken(name: str) -> ValidationError:
    message = f"This workspace already has a group “{name}”; choose another name."
    return ValidationError({"name": message}, code="unique")


def group_create(*, workspace: Workspace, name: str, actor_id: object) -> Group:
    group = Group(workspace=workspace, name=_name(name))
    return _write(group, _group_taken(group.name), action="created", before=None, actor_id=actor_id)


def group_rename(*, group: Group, name: str, actor_id: object) -> Group:
    before = _view(group)
    group.name = _name(name)
    return _write(
        group, _group_taken(group.name), action="renamed", before=before, actor_id=actor_id
    )


def group_delete(*, group: Group, actor_id: object) -> DeleteImpact:
    with transaction.atomic():
        return _delete(group, group_delete_impact(group=group), actor_id)


# --- permissions and roles ------------------------------------------------------------------


def _permission_part(value: str, field: str) -> str:
    value = (value or "").strip()
    if not PERMISSION_PART_RE.match(value):
        raise ValidationError(
            {
                field: f"Use 1-100 lower-case letters, digits, “_”, “.” or “-”, starting with a "
                f"letter (“{value[:80]}” is not): it appears in tokens as resource:action:scope."
            },
            code="invalid",
        )
    return value


def permission_create(*, resource: str, action: str, scope: str, actor_id: object) -> Permission:
    if scope not in PermissionScope.values:
        raise ValidationError(
            {"scope": f"The scope must be one of {', '.join(PermissionScope.values)}."},
            code="invalid_choice",
        )
    permission = Permission(
        resource=_permission_part(resource, "resource"),
        action=_permission_part(action, "action"),
        scope=scope,
    )
    taken = ValidationError(f"The permission {permission} already exists.", code="unique")
    with transaction.atomic():
        _saved(permission, taken)
        _record(
            actor_id=actor_id,
            resource=permission,
            action="created",
            before=None,
            after={"permission": str(permission)},
        )
    return permission


def permission_update(
    *,
    permission: Permission,
    resource: str | None = None,
    action: str | None = None,
    scope: str | None = None,
    actor_id: object,
) -> Permission:
    """Renames a permission (any of its three parts); every role that has it keeps it, and the
    next tokens of their members say the new name."""
    if scope is not None and scope not in PermissionScope.values:
        raise ValidationError(
            {"scope": f"The scope must be one of {', '.join(PermissionScope.values)}."},
            code="invalid_choice",
        )
    before = str(permission)
    if resource is not None:
        permission.resource = _permission_part(resource, "resource")
    if action is not None:
        permission.action = _permission_part(action, "action")
    if scope is not None:
        permission.scope = scope
    if str(permission) == before:
        return permission
    taken = ValidationError(f"The permission {permission} already exists.", code="unique")
    with transaction.atomic():
        _saved(permission, taken, update_fields=["resource", "action", "scope"])
        _record(
            actor_id=actor_id,
            resource=permission,
            action="changed",
            before={"permission": before},
            after={"permission": str(permission)},
            roles=permission.roles.count(),
        )
    return permission


def permission_delete(*, permission: Permission, actor_id: object) -> int:
    """Deletes the permission and takes it out of every role; returns how many roles had it."""
    with transaction.atomic():
        roles = permission.roles.count()
        _record(
            actor_id=actor_id,
            resource=permission,
            action="deleted",
            before={"permission": str(permission)},
            after=None,
            roles=roles,
        )
        permission.delete()
    return roles


def _role_view(role: Role) -> dict[str, Any]:
    return {
        "name": role.name,
        "description": role.description,
        "organization": str(role.organization_id) if role.organization_id else None,
        "permissions": sorted(str(p) for p in role.permissions.all()),
    }


def _role_name(name: str) -> str:
    name = (name or "").strip()
    if not ROLE_NAME_RE.match(name):
        raise ValidationError(
            {
                "name": "Use 1-100 letters, digits, spaces, “_”, “.” or “-”, starting with a "
                "letter or digit: the role's name appears in tokens."
            },
            code="invalid",
        )
    return name


def _role_taken(role: Role) -> ValidationError:
    where = "This organization" if role.organization_id else "A built-in role"
    verb = "already has" if role.organization_id else "already has the name"
    return ValidationError(
        {"name": f"{where} {verb} “{role.name}”; choose another name."}, code="unique"
    )


def _permission_list(permissions: Iterable[Permission]) -> list[Permission]:
    found = list(permissions)
    if any(p.pk is None or p._state.adding for p in found):
        raise ValidationError({"permissions": "Create each permission first."}, code="invalid")
    return found


def role_create(
    *,
    name: str,
    organization: Organization | None = None,
    description: str = "",
    permissions: Iterable[Permission] = (),
    actor_id: object,
) -> Role:
    """A role of `organization`, or built-in (available in every organization) without one."""
    role = Role(organization=organization, name=_role_name(name), description=description.strip())
    granted = _permission_list(permissions)
    with transaction.atomic():
        _saved(role, _role_taken(role))
        role.permissions.set(granted)
        _record(
            actor_id=actor_id, resource=role, action="created", before=None, after=_role_view(role)
        )
    return role


def role_update(
    *,
    role: Role,
    name: str | None = None,
    description: str | None = None,
    permissions: Iterable[Permission] | None = None,
    actor_id: object,
) -> Role:
    """Changes what is given; the members' next tokens carry the new permission set."""
    before = _role_view(role)
    if name is not None:
        role.name = _role_name(name)
    if description is not None:
        role.description = description.strip()
    granted = _permission_list(permissions) if permissions is not None else None
    with transaction.atomic():
        _saved(role, _role_taken(role), update_fields=["name", "description"])
        if granted is not None:
            role.permissions.set(granted)
        after = _role_view(role)
        if after != before:
            _record(actor_id=actor_id, resource=role, action="changed", before=before, after=after)
    return role


def role_members_count(role: Role) -> int:
    return role.organization_memberships.count() + role.workspace_memberships.count()


def role_delete(*, role: Role, actor_id: object) -> None:
    """Refused while any membership uses the role: its members would lose their access
    silently (the RESTRICT on the memberships' foreign key holds this under races too)."""
    with transaction.atomic():
        used = role_members_count(role)
        if used:
            raise ValidationError(
                f"The role “{role.name}” is used by {used} membership"
                f"{'s' if used != 1 else ''}; give those members another role first.",
                code="protected",
            )
        _record(
            actor_id=actor_id, resource=role, action="deleted", before=_role_view(role), after=None
        )
        try:
            with transaction.atomic():
                role.delete()
        except models.RestrictedError as error:  # a member added meanwhile
            raise ValidationError(
                f"The role “{role.name}” was just given to someone; give those members "
                "another role first.",
                code="protected",
            ) from error


# --- memberships ----------------------------------------------------------------------------


def _membership_view(role: Role | None) -> dict[str, Any] | None:
    return None if role is None else {"role": role.name, "role_id": str(role.pk)}


def _check_role(role: Role, organization_id: uuid.UUID, where: str) -> None:
    if not role.is_available_in(organization_id):
        raise ValidationError(
            {
                "role": f"The role “{role.name}” belongs to another organization; choose a "
                f"built-in role or one of {where}'s own."
            },
            code="foreign_role",
        )


def _already(what: str, user: User) -> ValidationError:
    return ValidationError(
        {"user": f"{user.email} is already a member of {what}; change their role instead."},
        code="unique",
    )


def organization_membership_add(
    *, organization: Organization, user: User, role: Role, actor_id: object
) -> OrganizationMembership:
    _check_role(role, organization.pk, f"“{organization.name}”")
    membership = OrganizationMembership(organization=organization, user=user, role=role)
    with transaction.atomic():
        _saved(membership, _already(f"“{organization.name}”", user))
        _record(
            actor_id=actor_id,
            user_id=user.pk,
            resource=membership,
            action="member_added",
            before=None,
            after=_membership_view(role),
            organization=str(organization.pk),
        )
    return membership


def organization_membership_set_role(
    *, membership: OrganizationMembership, role: Role, actor_id: object
) -> OrganizationMembership:
    return _set_role(membership, role, membership.organization_id, actor_id)


def _set_role(membership: M, role: Role, organization_id: uuid.UUID, actor_id: object) -> M:
    _check_role(role, organization_id, "this organization")
    with transaction.atomic():
        if not type(membership).objects.select_for_update().filter(pk=membership.pk).exists():
            raise ValidationError("This membership was removed meanwhile.", code="gone")
        before = _membership_view(membership.role)
        membership.role = role
        membership.save(update_fields=["role"])
        _record(
            actor_id=actor_id,
            user_id=membership.user_id,
            resource=membership,
            action="role_changed",
            before=before,
            after=_membership_view(role),
        )
    return membership


def organization_membership_remove(
    *, membership: OrganizationMembership, actor_id: object
) -> dict[str, int]:
    """Takes the person out of the organization, its workspaces and their groups. With
    ACCOUNTS_REVOKE_ON_REMOVAL (the default) their live access tokens are revoked as well,
    so the removal holds within a second instead of at token expiry; their refresh tokens
    stay and give tokens without this organization. Returns what went (counts)."""
    org_id, user_id = membership.organization_id, membership.user_id
    with transaction.atomic():
        deleted = OrganizationMembership.objects.filter(pk=membership.pk).delete()[0]
        if not deleted:
            raise ValidationError("This membership was already removed.", code="gone")
        groups = GroupMembership.objects.filter(
            user_id=user_id, group__workspace__organization_id=org_id
        ).delete()[0]
        workspaces = WorkspaceMembership.objects.filter(
            user_id=user_id, workspace__organization_id=org_id
        ).delete()[0]
        revoked = 0
        if settings.ACCOUNTS_REVOKE_ON_REMOVAL:
            # Before commit: if the revocation list is unreachable the removal fails visibly.
            revoked = revocation.revoke_user_access_tokens(
                user_id=user_id, reason="membership_removed", actor_id=actor_id
            )
        result = {"workspaces": workspaces, "groups": groups, "tokens_revoked": revoked}
        _record(
            actor_id=actor_id,
            user_id=user_id,
            resource=membership,
            action="member_removed",
            before=_membership_view(membership.role),
            after=None,
            organization=str(org_id),
            **result,
        )
    return result


def _organization_membership_locked(user: User, organization_id: uuid.UUID) -> bool:
    """Whether the person is in the organization, holding their membership row until commit:
    a concurrent removal then waits, and its cleanup sees what this transaction added."""
    return (
        OrganizationMembership.objects.select_for_update()
        .filter(user=user, organization_id=organization_id)
        .exists()
    )


def workspace_membership_add(
    *, workspace: Workspace, user: User, role: Role, actor_id: object
) -> WorkspaceMembership:
    _check_role(role, workspace.organization_id, "the workspace's organization")
    membership = WorkspaceMembership(workspace=workspace, user=user, role=role)
    with transaction.atomic():
        if not _organization_membership_locked(user, workspace.organization_id):
            raise ValidationError(
                {
                    "user": f"{user.email} is not a member of this workspace's organization; "
                    "add them to the organization first."
                },
                code="not_in_organization",
            )
        _saved(membership, _already(f"the workspace “{workspace.name}”", user))
        _record(
            actor_id=actor_id,
            user_id=user.pk,
            resource=membership,
            action="member_added",
            before=None,
            after=_membership_view(role),
            workspace=str(workspace.pk),
        )
    return membership


def workspace_membership_set_role(
    *, membership: WorkspaceMembership, role: Role, actor_id: object
) -> WorkspaceMembership:
    organization_id = Workspace.objects.values_list("organization_id", flat=True).get(
        pk=membership.workspace_id
    )
    return _set_role(membership, role, organization_id, actor_id)


def workspace_membership_remove(*, membership: WorkspaceMembership, actor_id: object) -> int:
    """Takes the person out of the workspace and its groups; returns how many groups."""
    with transaction.atomic():
        if not WorkspaceMembership.objects.filter(pk=membership.pk).delete()[0]:
            raise ValidationError("This membership was already removed.", code="gone")
        groups = GroupMembership.objects.filter(
            user_id=membership.user_id, group__workspace_id=membership.workspace_id
        ).delete()[0]
        _record(
            actor_id=actor_id,
            user_id=membership.user_id,
            resource=membership,
            action="member_removed",
            before=_membership_view(membership.role),
            after=None,
            workspace=str(membership.workspace_id),
            groups=groups,
        )
    return groups


def group_membership_add(
    *, group: Group, user: User, actor_id: object, workspace: Workspace | None = None
) -> GroupMembership:
    """`workspace`, when the caller names one (a URL's), must be the group's own."""
    if workspace is not None and group.workspace_id != workspace.pk:
        raise ValidationError(
            {
                "group": f"The group “{group.name}” belongs to another workspace, not "
                f"“{workspace.name}”."
            },
            code="foreign_group",
        )
    membership = GroupMembership(group=group, user=user)
    with transaction.atomic():
        in_workspace = (
            WorkspaceMembership.objects.select_for_update()
            .filter(user=user, workspace_id=group.workspace_id)
            .exists()
        )
        if not in_workspace:
            raise ValidationError(
                {
                    "user": f"{user.email} is not a member of the group's workspace; add them "
                    "to the workspace first."
                },
                code="not_in_workspace",
            )
        _saved(membership, _already(f"the group “{group.name}”", user))
        _record(
            actor_id=actor_id,
            user_id=user.pk,
            resource=membership,
            action="member_added",
            before=None,
            after={"group": str(group.pk)},
        )
    return membership


def group_membership_remove(*, membership: GroupMembership, actor_id: object) -> None:
    with transaction.atomic():
        if not GroupMembership.objects.filter(pk=membership.pk).delete()[0]:
            raise ValidationError("This membership was already removed.", code="gone")
        _record(
            actor_id=actor_id,
            user_id=membership.user_id,
            resource=membership,
            action="member_removed",
            before={"group": str(membership.group_id)},
            after=None,
        )


# --- bulk add -------------------------------------------------------------------------------

BULK_MAX_LINES = 1000
BULK_MAX_BYTES = 256 * 1024
BULK_COLUMNS = ("email", "role", "workspace")


@dataclass(frozen=True)
class BulkLine:
    """One line's outcome: "ok" (would be / was added), "unchanged" (already so) or "error"."""

    line: int
    email: str
    role: str
    workspace: str
    status: str
    message: str = ""


def bulk_members_preview(*, organization: Organization, csv_text: str) -> list[BulkLine]:
    """What bulk_members_apply would do with CSV lines `email,role[,workspace slug]` (an
    optional header line `email,role,workspace` is skipped), line by line, writing nothing.
    Without a workspace the line adds the person to the organization, with one to that
    workspace (they must be in the organization, or added by an earlier line). A role name
    means the organization's own role first, else the built-in one. Each person must already
    have an account. Raises ValidationError for input over BULK_MAX_LINES or BULK_MAX_BYTES."""
    rows = _bulk_rows(csv_text)
    users = user_ids_for_emails(row[1][0].strip() for row in rows if row[1])
    roles: dict[str, Role | None] = {}
    members = set(
        OrganizationMembership.objects.filter(organization=organization).values_list(
            "user_id", "role__name"
        )
    )
    in_org = {user_id for user_id, _ in members}
    seen: dict[tuple[str, str], int] = {}
    result = []
    for number, cells in rows:
        email, role_name, slug = [*cells, "", "", ""][:3]
        email, role_name, slug = email.strip().lower(), role_name.strip(), slug.strip()

        def line(status: str, message: str = "") -> BulkLine:
            return BulkLine(number, email, role_name, slug, status, message)  # noqa: B023

        if not email or not role_name or len(cells) > 3:
            result.append(line("error", "Write email,role or email,role,workspace-slug."))
            continue
        user_id = users.get(email)
        if user_id is None:
            result.append(line("error", f"No account has the address {email}; create it first."))
            continue
        if (email, slug) in seen:
            result.append(line("error", f"Line {seen[email, slug]} already adds this person here."))
            continue
        if role_name not in roles:
            roles[role_name] = role_for_organization(organization=organization, name=role_name)
        role = roles[role_name]
        if role is None:
            result.append(line("error", f"This organization has no role “{role_name}”."))
            continue
        if not slug:
            current = next((name for uid, name in members if uid == user_id), None)
            status, message = _bulk_status(current, role_name, "the organization")
        else:
            workspace = Workspace.objects.filter(organization=organization, slug=slug).first()
            if workspace is None:
                status, message = "error", f"This organization has no workspace “{slug}”."
            elif user_id not in in_org:
                status = "error"
                message = "Not in the organization: add them first (a line without workspace)."
            else:
                current = (
                    WorkspaceMembership.objects.filter(user_id=user_id, workspace=workspace)
                    .values_list("role__name", flat=True)
                    .first()
                )
                status, message = _bulk_status(current, role_name, f"the workspace “{slug}”")
        if status != "error":
            seen[email, slug] = number
            if not slug:
                in_org.add(user_id)
        result.append(line(status, message))
    return result


def _bulk_status(current: str | None, role_name: str, where: str) -> tuple[str, str]:
    if current is None:
        return "ok", ""
    if current == role_name:
        return "unchanged", f"Already in {where} as “{role_name}”."
    return "error", f"Already in {where} as “{current}”; change their role on their page."


def _bulk_rows(csv_text: str) -> list[tuple[int, list[str]]]:
    if len(csv_text.encode()) > BULK_MAX_BYTES:
        raise ValidationError(
            {"csv": f"The list is over {BULK_MAX_BYTES // 1024} KB; split it into parts."},
            code="too_large",
        )
    try:
        lines = list(csv.reader(io.StringIO(csv_text)))
    except csv.Error as error:
        raise ValidationError({"csv": f"The list is not CSV: {error}."}, code="invalid") from None
    numbered = [(n, cells) for n, cells in enumerate(lines, 1) if any(c.strip() for c in cells)]
    if numbered and [c.strip().lower() for c in numbered[0][1]] in (
        list(BULK_COLUMNS),
        list(BULK_COLUMNS[:2]),
    ):
        numbered = numbered[1:]
    if len(numbered) > BULK_MAX_LINES:
        raise ValidationError(
            {"csv": f"The list has {len(numbered)} lines, over {BULK_MAX_LINES}; split it."},
            code="too_large",
        )
    if not numbered:
        raise ValidationError({"csv": "The list is empty."}, code="required")
    return numbered


def bulk_members_apply(
    *, organization: Organization, csv_text: str, actor_id: object
) -> list[BulkLine]:
    """Adds every "ok" line of the preview in one transaction, or nothing: a list with any
    error is refused whole (ValidationError naming the lines), so fixing and resubmitting it
    cannot add anyone twice. Each addition records its own event."""
    with transaction.atomic():
        preview = bulk_members_preview(organization=organization, csv_text=csv_text)
        errors = [line for line in preview if line.status == "error"]
        if errors:
            shown = "; ".join(f"line {line.line}: {line.message}" for line in errors[:5])
            raise ValidationError(
                {"csv": f"{len(errors)} line(s) have errors, nothing was added ({shown})."},
                code="invalid",
            )
        for line in preview:
            if line.status != "ok":
                continue
            user = User.objects.get(email=line.email)
            role = role_for_organization(organization=organization, name=line.role)
            assert role is not None  # the preview found it in this transaction
            try:
                if line.workspace:
                    workspace = Workspace.objects.get(
                        organization=organization, slug=line.workspace
                    )
                    workspace_membership_add(
                        workspace=workspace, user=user, role=role, actor_id=actor_id
                    )
                else:
                    organization_membership_add(
                        organization=organization, user=user, role=role, actor_id=actor_id
                    )
            except ValidationError as error:  # changed since the preview, concurrently
                raise ValidationError(
                    {"csv": f"line {line.line}: {' '.join(error.messages)} Nothing was added."},
                    code="invalid",
                ) from error
    return preview
