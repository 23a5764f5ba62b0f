"""The console's pages for who may do what: organizations, their workspaces and groups,
roles and permissions, and memberships (issue 13).

Every staff member reads. Operators manage memberships: add (one or a CSV list), change the
role, remove, groups included. Administrators manage the structure itself: organizations,
workspaces, groups, roles and permissions ("administrator: clients, keys, roles, staff";
OWASP ASVS 4.1.3, least privilege: the tree's shape decides what every token may say).
Changes are POSTs with Django's CSRF token, behind a confirmation page where they remove
something, made by apps.accounts.directory, the services the admin API and the `directory`
command call too, with the operator as the event's actor (ASVS 7.2.2)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

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
from apps.accounts.selectors import (
    DeleteImpact,
    claims_preview,
    group_delete_impact,
    group_members,
    membership_list_for_user,
    organization_delete_impact,
    organization_members,
    organization_page,
    role_list_every,
    roles_available_in,
    workspace_delete_impact,
    workspace_members,
)
from apps.console.directory_forms import (
    BulkMembersForm,
    GroupForm,
    GroupMemberAddForm,
    MemberAddForm,
    OrganizationForm,
    OrganizationSearchForm,
    PermissionForm,
    RoleChangeForm,
    RoleForm,
    WorkspaceForm,
)
from apps.console.forms import form_errors
from apps.console.permissions import administrator_required, operator_required, staff_required

T = TypeVar("T", bound=Model)


# --- shared ---------------------------------------------------------------------------------


def _get(model: type[T], pk: uuid.UUID, *related: str) -> T:
    found: T = get_object_or_404(model._default_manager.select_related(*related), pk=pk)
    return found


def _form_page(
    request: HttpRequest,
    form: forms.Form,
    *,
    title: str,
    button: str,
    back: str,
    intro: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {"form": form, "title": title, "button": button, "back": back, "intro": intro}
    return render(request, "console/directory/form.html", context, status=status)


def _submit(
    request: HttpRequest,
    form: forms.Form,
    act: Callable[[dict[str, Any]], str],
    *,
    title: str,
    button: str,
    back: str,
    intro: str = "",
) -> HttpResponse:
    """A form's page: GET shows it, POST validates it and calls `act` (the service call,
    returning where to go next); a refusal re-renders it with the service's message (400)."""
    if request.method == "POST":
        if form.is_valid():
            try:
                return redirect(act(form.cleaned_data))
            except ValidationError as invalid:
                form_errors(form, invalid)
        status = 400
    else:
        status = 200
    return _form_page(
        request, form, title=title, button=button, back=back, intro=intro, status=status
    )


def _confirm(
    request: HttpRequest, *, question: str, detail: str, button: str, back: str
) -> HttpResponse:
    """The GET half of an action: it says what the POST will do and changes nothing."""
    context = {"question": question, "detail": detail, "button": button, "back": back}
    return render(request, "console/confirm.html", context)


def _went(impact: DeleteImpact) -> str:
    parts = [
        (impact.workspaces, "workspace", "workspaces"),
        (impact.groups, "group", "groups"),
        (impact.roles, "role of its own", "roles of its own"),
        (impact.memberships, "membership", "memberships"),
    ]
    shown = [f"{count} {one if count == 1 else many}" for count, one, many in parts if count]
    return ", ".join(shown) if shown else "nothing else"


def _org_url(organization_id: uuid.UUID) -> str:
    return reverse("console:organization", kwargs={"organization_id": organization_id})


def _workspace_url(workspace_id: uuid.UUID) -> str:
    return reverse("console:workspace", kwargs={"workspace_id": workspace_id})


def _group_url(group_id: uuid.UUID) -> str:
    return reverse("console:group", kwargs={"group_id": group_id})


# --- organizations --------------------------------------------------------------------------


@staff_required
@require_safe
def organization_list(request: HttpRequest) -> HttpResponse:
    form = OrganizationSearchForm(request.GET)
    if not form.is_valid():
        return render(request, "console/directory/organizations.html", {"form": form}, status=400)
    page = organization_page(query=form.cleaned_data["q"], after=form.cleaned_data["after"])
    query = request.GET.copy()
    query.pop("after", None)
    links: dict[str, str | None] = {
        "first": query.urlencode() if request.GET.get("after") else None,
        "next": None,
    }
    if page.next_cursor is not None:
        query["after"] = str(page.next_cursor)
        links["next"] = query.urlencode()
    return render(
        request,
        "console/directory/organizations.html",
        {"form": form, "page": page, "links": links},
    )


@staff_required
@require_safe
def organization_detail(request: HttpRequest, organization_id: uuid.UUID) -> HttpResponse:
    organization = _get(Organization, organization_id)
    roles = roles_available_in(organization=organization)
    context = {
        "organization": organization,
        "workspaces": list(organization.workspaces.order_by("name")),
        "roles": list(roles.prefetch_related("permissions")),
        "members": organization_members(organization=organization),
        "add_form": MemberAddForm(roles=roles),
    }
    return render(request, "console/directory/organization.html", context)


@administrator_required
@require_http_methods(["GET", "POST"])
def organization_create(request: HttpRequest) -> HttpResponse:
    def act(data: dict[str, Any]) -> str:
        created = directory.organization_create(actor_id=request.user.pk, **data)
        messages.success(request, f"Organization “{created.name}” created.")
        return _org_url(created.pk)

    form = OrganizationForm(request.POST or None)
    back = reverse("console:organizations")
    return _submit(request, form, act, title="New organization", button="Create", back=back)


@administrator_required
@require_http_methods(["GET", "POST"])
def organization_rename(request: HttpRequest, organization_id: uuid.UUID) -> HttpResponse:
    organization = _get(Organization, organization_id)

    def act(data: dict[str, Any]) -> str:
        directory.organization_rename(organization=organization, actor_id=request.user.pk, **data)
        messages.success(request, "Saved.")
        return _org_url(organization.pk)

    initial = {"name": organization.name, "slug": organization.slug}
    form = OrganizationForm(request.POST or None, initial=initial)
    return _submit(
        request,
        form,
        act,
        title=f"Rename {organization.name}",
        button="Save",
        back=_org_url(organization.pk),
        intro="A new slug changes the organization's links; tokens carry its id, which stays.",
    )


@administrator_required
@require_http_methods(["GET", "POST"])
def organization_delete(request: HttpRequest, organization_id: uuid.UUID) -> HttpResponse:
    organization = _get(Organization, organization_id)
    if request.method != "POST":
        impact = organization_delete_impact(organization=organization)
        return _confirm(
            request,
            question=f"Delete the organization {organization.name}?",
            detail=f"With it go {_went(impact)}: {impact.people} "
            f"{'person loses' if impact.people == 1 else 'people lose'} membership, and their "
            "next tokens no longer name it, its workspaces or its groups. This cannot be "
            "undone.",
            button="Delete organization",
            back=_org_url(organization.pk),
        )
    impact = directory.organization_delete(organization=organization, actor_id=request.user.pk)
    messages.success(request, f"Organization “{organization.name}” deleted with {_went(impact)}.")
    return redirect("console:organizations")


@operator_required
@require_http_methods(["GET", "POST"])
def organization_member_add(request: HttpRequest, organization_id: uuid.UUID) -> HttpResponse:
    organization = _get(Organization, organization_id)

    def act(data: dict[str, Any]) -> str:
        directory.organization_membership_add(
            organization=organization, actor_id=request.user.pk, **data
        )
        messages.success(request, f"{data['user'].email} added as “{data['role'].name}”.")
        return _org_url(organization.pk)

    form = MemberAddForm(request.POST or None, roles=roles_available_in(organization=organization))
    return _submit(
        request,
        form,
        act,
        title=f"Add a person to {organization.name}",
        button="Add",
        back=_org_url(organization.pk),
    )


@operator_required
@require_http_methods(["GET", "POST"])
def organization_members_bulk(request: HttpRequest, organization_id: uuid.UUID) -> HttpResponse:
    """GET: the form. POST step=preview: each line's outcome, nothing written. POST
    step=apply: the same list added in one transaction, or nothing if any line fails."""
    organization = _get(Organization, organization_id)
    context: dict[str, Any] = {"organization": organization}
    if request.method != "POST":
        context["form"] = BulkMembersForm()
        return render(request, "console/directory/bulk.html", context)
    form = BulkMembersForm(request.POST, request.FILES)
    context["form"] = form
    if not form.is_valid():
        return render(request, "console/directory/bulk.html", context, status=400)
    csv_text = form.cleaned_data["csv"]
    try:
        if request.POST.get("step") == "apply":
            lines = directory.bulk_members_apply(
                organization=organization, csv_text=csv_text, actor_id=request.user.pk
            )
            added = sum(line.status == "ok" for line in lines)
            messages.success(request, f"{added} added ({len(lines) - added} already there).")
            return redirect(_org_url(organization.pk))
        lines = directory.bulk_members_preview(organization=organization, csv_text=csv_text)
    except ValidationError as invalid:
        form_errors(form, invalid)
        return render(request, "console/directory/bulk.html", context, status=400)
    context.update(
        lines=lines,
        csv_text=csv_text,
        adding=sum(line.status == "ok" for line in lines),
        errors=sum(line.status == "error" for line in lines),
    )
    return render(request, "console/directory/bulk_preview.html", context)


@operator_required
@require_http_methods(["GET", "POST"])
def organization_membership_role(request: HttpRequest, membership_id: uuid.UUID) -> HttpResponse:
    membership = _get(OrganizationMembership, membership_id, "user", "organization", "role")
    organization = membership.organization

    def act(data: dict[str, Any]) -> str:
        directory.organization_membership_set_role(
            membership=membership, role=data["role"], actor_id=request.user.pk
        )
        messages.success(request, f"{membership.user.email} is now “{data['role'].name}”.")
        return _org_url(organization.pk)

    form = RoleChangeForm(
        request.POST or None,
        roles=roles_available_in(organization=organization),
        initial={"role": membership.role_id},
    )
    return _submit(
        request,
        form,
        act,
        title=f"Role of {membership.user.email} in {organization.name}",
        button="Save",
        back=_org_url(organization.pk),
    )


@operator_required
@require_http_methods(["GET", "POST"])
def organization_membership_remove(request: HttpRequest, membership_id: uuid.UUID) -> HttpResponse:
    membership = _get(OrganizationMembership, membership_id, "user", "organization")
    back = _org_url(membership.organization_id)
    if request.method != "POST":
        return _confirm(
            request,
            question=f"Remove {membership.user.email} from {membership.organization.name}?",
            detail="They leave the organization and every workspace and group in it; the "
            "tokens they get next no longer name it. "
            + (
                "Their current access tokens are revoked at once "
                "(IDP_REVOKE_ON_MEMBERSHIP_REMOVAL)."
                if settings.ACCOUNTS_REVOKE_ON_REMOVAL
                else "Their current access tokens keep working until they expire "
                "(IDP_REVOKE_ON_MEMBERSHIP_REMOVAL is off)."
            ),
            button="Remove",
            back=back,
        )
    try:
        went = directory.organization_membership_remove(
            membership=membership, actor_id=request.user.pk
        )
    except ValidationError as invalid:
        messages.error(request, " ".join(invalid.messages))
    else:
        messages.success(
            request,
            f"{membership.user.email} removed, with {went['workspaces']} workspace and "
            f"{went['groups']} group membership(s); {went['tokens_revoked']} access token(s) "
            "revoked.",
        )
    return redirect(back)


# --- workspaces -----------------------------------------------------------------------------


@administrator_required
@require_http_methods(["GET", "POST"])
def workspace_create(request: HttpRequest, organization_id: uuid.UUID) -> HttpResponse:
    organization = _get(Organization, organization_id)

    def act(data: dict[str, Any]) -> str:
        created = directory.workspace_create(
            organization=organization, actor_id=request.user.pk, **data
        )
        messages.success(request, f"Workspace “{created.name}” created.")
        return _workspace_url(created.pk)

    return _submit(
        request,
        WorkspaceForm(request.POST or None),
        act,
        title=f"New workspace in {organization.name}",
        button="Create",
        back=_org_url(organization.pk),
    )


@staff_required
@require_safe
def workspace_detail(request: HttpRequest, workspace_id: uuid.UUID) -> HttpResponse:
    workspace = _get(Workspace, workspace_id, "organization")
    roles = roles_available_in(organization=workspace.organization)
    context = {
        "workspace": workspace,
        "organization": workspace.organization,
        "groups": list(workspace.groups.order_by("name")),
        "members": workspace_members(workspace=workspace),
        "add_form": MemberAddForm(roles=roles),
    }
    return render(request, "console/directory/workspace.html", context)


@administrator_required
@require_http_methods(["GET", "POST"])
def workspace_rename(request: HttpRequest, workspace_id: uuid.UUID) -> HttpResponse:
    workspace = _get(Workspace, workspace_id)

    def act(data: dict[str, Any]) -> str:
        directory.workspace_rename(workspace=workspace, actor_id=request.user.pk, **data)
        messages.success(request, "Saved.")
        return _workspace_url(workspace.pk)

    initial = {"name": workspace.name, "slug": workspace.slug}
    return _submit(
        request,
        WorkspaceForm(request.POST or None, initial=initial),
        act,
        title=f"Rename {workspace.name}",
        button="Save",
        back=_workspace_url(workspace.pk),
    )


@administrator_required
@require_http_methods(["GET", "POST"])
def workspace_delete(request: HttpRequest, workspace_id: uuid.UUID) -> HttpResponse:
    workspace = _get(Workspace, workspace_id, "organization")
    if request.method != "POST":
        impact = workspace_delete_impact(workspace=workspace)
        return _confirm(
            request,
            question=f"Delete the workspace {workspace.name}?",
            detail=f"With it go {_went(impact)}; its {impact.people} member(s) stay in "
            f"{workspace.organization.name}. Their next tokens no longer name this workspace "
            "or its groups. This cannot be undone.",
            button="Delete workspace",
            back=_workspace_url(workspace.pk),
        )
    impact = directory.workspace_delete(workspace=workspace, actor_id=request.user.pk)
    messages.success(request, f"Workspace “{workspace.name}” deleted with {_went(impact)}.")
    return redirect(_org_url(workspace.organization_id))


@operator_required
@require_http_methods(["GET", "POST"])
def workspace_member_add(request: HttpRequest, workspace_id: uuid.UUID) -> HttpResponse:
    workspace = _get(Workspace, workspace_id, "organization")

    def act(data: dict[str, Any]) -> str:
        directory.workspace_membership_add(workspace=workspace, actor_id=request.user.pk, **data)
        messages.success(request, f"{data['user'].email} added as “{data['role'].name}”.")
        return _workspace_url(workspace.pk)

    roles = roles_available_in(organization=workspace.organization)
    return _submit(
        request,
        MemberAddForm(request.POST or None, roles=roles),
        act,
        title=f"Add a person to the workspace {workspace.name}",
        button="Add",
        back=_workspace_url(workspace.pk),
        intro=f"The person must be a member of {workspace.organization.name} first.",
    )


@operator_required
@require_http_methods(["GET", "POST"])
def workspace_membership_role(request: HttpRequest, membership_id: uuid.UUID) -> HttpResponse:
    membership = _get(WorkspaceMembership, membership_id, "user", "workspace__organization")
    workspace = membership.workspace

    def act(data: dict[str, Any]) -> str:
        directory.workspace_membership_set_role(
            membership=membership, role=data["role"], actor_id=request.user.pk
        )
        messages.success(request, f"{membership.user.email} is now “{data['role'].name}”.")
        return _workspace_url(workspace.pk)

    form = RoleChangeForm(
        request.POST or None,
        roles=roles_available_in(organization=workspace.organization),
        initial={"role": membership.role_id},
    )
    return _submit(
        request,
        form,
        act,
        title=f"Role of {membership.user.email} in the workspace {workspace.name}",
        button="Save",
        back=_workspace_url(workspace.pk),
    )


@operator_required
@require_http_methods(["GET", "POST"])
def workspace_membership_remove(request: HttpRequest, membership_id: uuid.UUID) -> HttpResponse:
    membership = _get(WorkspaceMembership, membership_id, "user", "workspace")
    back = _workspace_url(membership.workspace_id)
    if request.method != "POST":
        return _confirm(
            request,
            question=f"Remove {membership.user.email} from the workspace "
            f"{membership.workspace.name}?",
            detail="They leave the workspace and its groups, and stay in the organization. "
            "Their next tokens no longer name this workspace.",
            button="Remove",
            back=back,
        )
    try:
        groups = directory.workspace_membership_remove(
            membership=membership, actor_id=request.user.pk
        )
    except ValidationError as invalid:
        messages.error(request, " ".join(invalid.messages))
    else:
        messages.success(request, f"{membership.user.email} removed, with {groups} group(s).")
    return redirect(back)


# --- groups ---------------------------------------------------------------------------------


@administrator_required
@require_http_methods(["GET", "POST"])
def group_create(request: HttpRequest, workspace_id: uuid.UUID) -> HttpResponse:
    workspace = _get(Workspace, workspace_id)

    def act(data: dict[str, Any]) -> str:
        created = directory.group_create(workspace=workspace, actor_id=request.user.pk, **data)
        messages.success(request, f"Group “{created.name}” created.")
        return _group_url(created.pk)

    return _submit(
        request,
        GroupForm(request.POST or None),
        act,
        title=f"New group in {workspace.name}",
        button="Create",
        back=_workspace_url(workspace.pk),
    )


@staff_required
@require_safe
def group_detail(request: HttpRequest, group_id: uuid.UUID) -> HttpResponse:
    group = _get(Group, group_id, "workspace__organization")
    context = {
        "group": group,
        "workspace": group.workspace,
        "organization": group.workspace.organization,
        "members": group_members(group=group),
        "add_form": GroupMemberAddForm(),
    }
    return render(request, "console/directory/group.html", context)


@administrator_required
@require_http_methods(["GET", "POST"])
def group_rename(request: HttpRequest, group_id: uuid.UUID) -> HttpResponse:
    group = _get(Group, group_id)

    def act(data: dict[str, Any]) -> str:
        directory.group_rename(group=group, actor_id=request.user.pk, **data)
        messages.success(request, "Saved.")
        return _group_url(group.pk)

    return _submit(
        request,
        GroupForm(request.POST or None, initial={"name": group.name}),
        act,
        title=f"Rename {group.name}",
        button="Save",
        back=_group_url(group.pk),
    )


@administrator_required
@require_http_methods(["GET", "POST"])
def group_delete(request: HttpRequest, group_id: uuid.UUID) -> HttpResponse:
    group = _get(Group, group_id)
    if request.method != "POST":
        impact = group_delete_impact(group=group)
        return _confirm(
            request,
            question=f"Delete the group {group.name}?",
            detail=f"Its {impact.memberships} membership(s) go with it; the members stay in "
            "the workspace. Their next tokens no longer name this group.",
            button="Delete group",
            back=_group_url(group.pk),
        )
    directory.group_delete(group=group, actor_id=request.user.pk)
    messages.success(request, f"Group “{group.name}” deleted.")
    return redirect(_workspace_url(group.workspace_id))


@operator_required
@require_http_methods(["GET", "POST"])
def group_member_add(request: HttpRequest, group_id: uuid.UUID) -> HttpResponse:
    group = _get(Group, group_id, "workspace")

    def act(data: dict[str, Any]) -> str:
        directory.group_membership_add(
            group=group, workspace=group.workspace, actor_id=request.user.pk, **data
        )
        messages.success(request, f"{data['user'].email} added.")
        return _group_url(group.pk)

    return _submit(
        request,
        GroupMemberAddForm(request.POST or None),
        act,
        title=f"Add a person to the group {group.name}",
        button="Add",
        back=_group_url(group.pk),
        intro=f"The person must be a member of the workspace {group.workspace.name} first.",
    )


@operator_required
@require_http_methods(["GET", "POST"])
def group_membership_remove(request: HttpRequest, membership_id: uuid.UUID) -> HttpResponse:
    membership = _get(GroupMembership, membership_id, "user", "group")
    back = _group_url(membership.group_id)
    if request.method != "POST":
        return _confirm(
            request,
            question=f"Remove {membership.user.email} from the group {membership.group.name}?",
            detail="They stay in the workspace; their next tokens no longer name this group.",
            button="Remove",
            back=back,
        )
    try:
        directory.group_membership_remove(membership=membership, actor_id=request.user.pk)
    except ValidationError as invalid:
        messages.error(request, " ".join(invalid.messages))
    else:
        messages.success(request, f"{membership.user.email} removed from the group.")
    return redirect(back)


# --- roles and permissions ------------------------------------------------------------------


@staff_required
@require_safe
def role_index(request: HttpRequest) -> HttpResponse:
    roles = role_list_every()
    context = {
        "builtin": [role for role in roles if role.organization_id is None],
        "own": [role for role in roles if role.organization_id is not None],
    }
    return render(request, "console/directory/roles.html", context)


def _role_form_page(request: HttpRequest, form: RoleForm, **kwargs: Any) -> HttpResponse:
    intro = "Members' next tokens carry the role's permissions as resource:action:scope."
    return _submit(
        request, form, button="Save", back=reverse("console:roles"), intro=intro, **kwargs
    )


@administrator_required
@require_http_methods(["GET", "POST"])
def role_create(request: HttpRequest) -> HttpResponse:
    def act(data: dict[str, Any]) -> str:
        created = directory.role_create(actor_id=request.user.pk, **data)
        messages.success(request, f"Role “{created.name}” created.")
        return reverse("console:roles")

    initial = {"organization": request.GET.get("organization") or None}
    form = RoleForm(request.POST or None, initial=initial, with_organization=True)
    return _role_form_page(request, form, act=act, title="New role")


@administrator_required
@require_http_methods(["GET", "POST"])
def role_edit(request: HttpRequest, role_id: uuid.UUID) -> HttpResponse:
    role = _get(Role, role_id, "organization")

    def act(data: dict[str, Any]) -> str:
        directory.role_update(role=role, actor_id=request.user.pk, **data)
        messages.success(request, f"Role “{role.name}” saved.")
        return reverse("console:roles")

    initial = {
        "name": role.name,
        "description": role.description,
        "permissions": list(role.permissions.values_list("pk", flat=True)),
    }
    form = RoleForm(request.POST or None, initial=initial, with_organization=False)
    where = role.organization.name if role.organization else "built-in"
    return _role_form_page(request, form, act=act, title=f"Edit the role {role.name} ({where})")


@administrator_required
@require_http_methods(["GET", "POST"])
def role_delete(request: HttpRequest, role_id: uuid.UUID) -> HttpResponse:
    role = _get(Role, role_id)
    back = reverse("console:roles")
    if request.method != "POST":
        used = directory.role_members_count(role)
        return _confirm(
            request,
            question=f"Delete the role {role.name}?",
            detail=f"It is used by {used} membership(s)"
            + (
                ": give those members another role first, or the deletion is refused."
                if used
                else ". Nobody loses access."
            )
            + " Its permissions stay.",
            button="Delete role",
            back=back,
        )
    try:
        directory.role_delete(role=role, actor_id=request.user.pk)
    except ValidationError as invalid:
        messages.error(request, " ".join(invalid.messages))
    else:
        messages.success(request, f"Role “{role.name}” deleted.")
    return redirect(back)


@staff_required
@require_safe
def permission_index(request: HttpRequest) -> HttpResponse:
    context = {
        "permissions": list(Permission.objects.prefetch_related("roles__organization")),
        "form": PermissionForm(),
    }
    return render(request, "console/directory/permissions.html", context)


@administrator_required
@require_http_methods(["GET", "POST"])
def permission_create(request: HttpRequest) -> HttpResponse:
    def act(data: dict[str, Any]) -> str:
        created = directory.permission_create(actor_id=request.user.pk, **data)
        messages.success(request, f"Permission {created} created.")
        return reverse("console:permissions")

    return _submit(
        request,
        PermissionForm(request.POST or None),
        act,
        title="New permission",
        button="Create",
        back=reverse("console:permissions"),
        intro="Tokens carry it as resource:action:scope in the perms of each membership whose "
        "role has it.",
    )


@administrator_required
@require_http_methods(["GET", "POST"])
def permission_edit(request: HttpRequest, permission_id: uuid.UUID) -> HttpResponse:
    permission = _get(Permission, permission_id)
    before = str(permission)

    def act(data: dict[str, Any]) -> str:
        renamed = directory.permission_update(
            permission=permission, actor_id=request.user.pk, **data
        )
        messages.success(request, f"Permission {before} is now {renamed}.")
        return reverse("console:permissions")

    initial = {"resource": permission.resource, "action": permission.action}
    return _submit(
        request,
        PermissionForm(request.POST or None, initial={**initial, "scope": permission.scope}),
        act,
        title=f"Rename the permission {before}",
        button="Save",
        back=reverse("console:permissions"),
        intro="The roles that have it keep it; their members' next tokens carry the new name.",
    )


@administrator_required
@require_http_methods(["GET", "POST"])
def permission_delete(request: HttpRequest, permission_id: uuid.UUID) -> HttpResponse:
    permission = _get(Permission, permission_id)
    back = reverse("console:permissions")
    if request.method != "POST":
        roles = permission.roles.count()
        return _confirm(
            request,
            question=f"Delete the permission {permission}?",
            detail=f"It is taken out of the {roles} role(s) that have it; their members' next "
            "tokens no longer carry it.",
            button="Delete permission",
            back=back,
        )
    roles = directory.permission_delete(permission=permission, actor_id=request.user.pk)
    messages.success(request, f"Permission {permission} deleted, taken out of {roles} role(s).")
    return redirect(back)


# --- a person's page ------------------------------------------------------------------------


def person_directory(user: User) -> dict[str, Any]:
    """The person page's Memberships section: what they belong to, and the claims preview,
    exactly what their next access token's orgs/workspaces/groups/perms will say (the code
    that issues tokens: apps.accounts.selectors.claims_preview)."""
    organizations, workspaces, groups = membership_list_for_user(user=user)
    return {
        "organization_memberships": organizations,
        "workspace_memberships": workspaces,
        "group_memberships": groups,
        "claims_json": json.dumps(claims_preview(user=user), indent=2),
    }
