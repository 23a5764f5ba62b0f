from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

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


@admin.register(User)
class UserAdmin(DjangoUserAdmin[User]):
    ordering = ("email",)
    list_display = ("email", "name", "is_staff", "is_active", "date_joined")
    search_fields = ("email", "name", "id")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name",)}),
        (
            "Access",
            {
                "fields": ("is_active", "is_staff", "staff_role", "is_superuser", "groups"),
                "description": "Console roles change on the console's Staff page, which keeps "
                "at least one administrator.",
            },
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name")}),)
    # Staff fields are read here: the Staff page (accounts.services.staff_role_set) is the one
    # road that changes them, with the last-administrator guard this form would skip.
    readonly_fields = ("last_login", "date_joined", "is_staff", "staff_role", "is_superuser")


class OrganizationMembershipInline(admin.TabularInline[OrganizationMembership, Organization]):
    model = OrganizationMembership
    autocomplete_fields = ("user", "role")
    extra = 0


class WorkspaceInline(admin.TabularInline[Workspace, Organization]):
    model = Workspace
    fields = ("name", "slug")
    show_change_link = True
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin[Organization]):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug", "id")
    prepopulated_fields = {"slug": ("name",)}  # noqa: RUF012 - Django reads it, never mutates
    readonly_fields = ("id", "created_at")
    inlines = (OrganizationMembershipInline, WorkspaceInline)


class WorkspaceMembershipInline(admin.TabularInline[WorkspaceMembership, Workspace]):
    model = WorkspaceMembership
    autocomplete_fields = ("user", "role")
    extra = 0


class GroupInline(admin.TabularInline[Group, Workspace]):
    model = Group
    fields = ("name",)
    show_change_link = True
    extra = 0


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin[Workspace]):
    list_display = ("name", "slug", "organization", "created_at")
    list_select_related = ("organization",)
    search_fields = ("name", "slug", "id", "organization__name", "organization__slug")
    autocomplete_fields = ("organization",)
    prepopulated_fields = {"slug": ("name",)}  # noqa: RUF012 - Django reads it, never mutates
    readonly_fields = ("id", "created_at")
    inlines = (WorkspaceMembershipInline, GroupInline)


class GroupMembershipInline(admin.TabularInline[GroupMembership, Group]):
    model = GroupMembership
    autocomplete_fields = ("user",)
    extra = 0


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin[Group]):
    list_display = ("name", "workspace", "organization", "created_at")
    list_select_related = ("workspace__organization",)
    search_fields = ("name", "id", "workspace__name", "workspace__slug")
    autocomplete_fields = ("workspace",)
    readonly_fields = ("id", "created_at")
    inlines = (GroupMembershipInline,)

    @admin.display(ordering="workspace__organization__name")
    def organization(self, group: Group) -> Organization:
        return group.workspace.organization


@admin.register(Permission)
class PermissionAdmin(admin.ModelAdmin[Permission]):
    list_display = ("resource", "action", "scope", "created_at")
    list_filter = ("scope",)
    search_fields = ("resource", "action")
    readonly_fields = ("id", "created_at")


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin[Role]):
    list_display = ("name", "organization", "created_at")
    list_select_related = ("organization",)
    list_filter = (("organization", admin.EmptyFieldListFilter),)
    search_fields = ("name", "description", "organization__name", "organization__slug")
    autocomplete_fields = ("organization",)
    filter_horizontal = ("permissions",)
    readonly_fields = ("id", "created_at")
    empty_value_display = "(built-in)"


@admin.register(OrganizationMembership)
class OrganizationMembershipAdmin(admin.ModelAdmin[OrganizationMembership]):
    list_display = ("user", "organization", "role", "created_at")
    list_select_related = ("user", "organization", "role")
    search_fields = ("user__email", "user__name", "organization__name", "organization__slug")
    list_filter = ("role",)
    autocomplete_fields = ("user", "organization", "role")
    readonly_fields = ("id", "created_at")


@admin.register(WorkspaceMembership)
class WorkspaceMembershipAdmin(admin.ModelAdmin[WorkspaceMembership]):
    list_display = ("user", "workspace", "role", "created_at")
    list_select_related = ("user", "workspace", "role")
    search_fields = ("user__email", "user__name", "workspace__name", "workspace__slug")
    list_filter = ("role",)
    autocomplete_fields = ("user", "workspace", "role")
    readonly_fields = ("id", "created_at")


@admin.register(GroupMembership)
class GroupMembershipAdmin(admin.ModelAdmin[GroupMembership]):
    list_display = ("user", "group", "created_at")
    list_select_related = ("user", "group")
    search_fields = ("user__email", "user__name", "group__name")
    autocomplete_fields = ("user", "group")
    readonly_fields = ("id", "created_at")
