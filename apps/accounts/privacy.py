"""What accounts holds about a person, for their GDPR export and erasure (core.privacy): the
account itself and the organizations, workspaces and groups they belong to.

Erasure scrubs the account rather than deleting it. Deleting the row would cascade to the
person's login sessions, and with them to the back-channel logout deliveries that tell
relying parties the sessions ended; to OAuth clients they registered, which serve other
people; and to the admin change log they wrote as an operator. A scrubbed account holds no
personal data: the email becomes <pseudonym>@erased.invalid, the name goes, the password is
unusable, it can no longer sign in, and its memberships are deleted. The row keeps the id,
the `sub` relying parties know, so that none is ever given to someone else (OIDC Core §2: sub
is never reassigned).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType

from apps.accounts.models import (
    GroupMembership,
    OrganizationMembership,
    User,
    WorkspaceMembership,
)
from apps.core.privacy import Section, erased_email


class AccountData:
    def export(self, user: User) -> dict[str, Section]:
        return {
            "account": {
                "id": user.pk,
                "email": user.email,
                "name": user.name,
                "is_active": user.is_active,
                "is_staff": user.is_staff,
                "date_joined": user.date_joined,
                "last_login": user.last_login,
            },
            "organizations": _organizations(user),
            "workspaces": _workspaces(user),
            "groups": _groups(user),
        }

    def erase(self, user: User, *, pseudonym: str, actor_id: object) -> None:
        for membership in (OrganizationMembership, WorkspaceMembership, GroupMembership):
            membership.objects.filter(user=user).delete()
        # The admin's history of changes to the account names it by its email (User.__str__).
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(User), object_id=str(user.pk)
        ).update(object_repr=pseudonym)
        user.groups.clear()
        user.user_permissions.clear()
        user.email = erased_email(pseudonym)
        user.name = ""
        user.set_unusable_password()
        user.is_active = user.is_staff = user.is_superuser = False
        user.staff_role = ""
        user.last_login = None
        user.save()


def _organizations(user: User) -> Iterator[dict[str, Any]]:
    memberships = OrganizationMembership.objects.filter(user=user)
    for m in memberships.select_related("organization", "role"):
        yield {
            "organization": m.organization.name,
            "slug": m.organization.slug,
            "role": m.role.name,
            "since": m.created_at,
        }


def _workspaces(user: User) -> Iterator[dict[str, Any]]:
    memberships = WorkspaceMembership.objects.filter(user=user)
    for m in memberships.select_related("workspace__organization", "role"):
        yield {
            "organization": m.workspace.organization.name,
            "workspace": m.workspace.name,
            "role": m.role.name,
            "since": m.created_at,
        }


def _groups(user: User) -> Iterator[dict[str, Any]]:
    memberships = GroupMembership.objects.filter(user=user)
    for m in memberships.select_related("group__workspace__organization"):
        yield {
            "organization": m.group.workspace.organization.name,
            "workspace": m.group.workspace.name,
            "group": m.group.name,
            "since": m.created_at,
        }
