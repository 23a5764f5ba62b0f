from django.urls import path

from apps.console import (
    applications,
    directory,
    federation,
    invitations,
    mfa,
    sessions_all,
    staff,
    threats,
    views,
)

app_name = "console"
urlpatterns = [
    path("", views.home, name="home"),
    path("staff/", staff.staff_list, name="staff"),
    path("staff/role/", staff.staff_role_change, name="staff_role"),
    path("users/", views.user_search, name="user_search"),
    path("users/<uuid:user_id>/", views.user_detail, name="user"),
    path(
        "users/<uuid:user_id>/sessions/revoke/",
        views.user_sessions_revoke,
        name="user_sessions_revoke",
    ),
    path(
        "users/<uuid:user_id>/offline-grants/revoke/",
        views.user_offline_grants_revoke,
        name="user_offline_grants_revoke",
    ),
    path("users/<uuid:user_id>/revoke-all/", views.user_revoke_all, name="user_revoke_all"),
    path(
        "offline-grants/<uuid:grant_id>/revoke/",
        views.offline_grant_revoke,
        name="offline_grant_revoke",
    ),
    path(
        "users/<uuid:user_id>/lockouts/clear/",
        views.user_lockouts_clear,
        name="user_lockouts_clear",
    ),
    path(
        "users/<uuid:user_id>/verification/send/",
        views.user_verification_send,
        name="user_verification_send",
    ),
    path(
        "users/<uuid:user_id>/password-reset/send/",
        views.user_password_reset_send,
        name="user_password_reset_send",
    ),
    path("users/<uuid:user_id>/mfa/reset/", mfa.user_mfa_reset, name="user_mfa_reset"),
    path("users/<uuid:user_id>/mfa/required/", mfa.user_mfa_required, name="user_mfa_required"),
    path("users/<uuid:user_id>/block/", threats.user_block_view, name="user_block"),
    path("users/<uuid:user_id>/unblock/", threats.user_unblock_view, name="user_unblock"),
    path("threats/", threats.threat_overview, name="threats"),
    path("threats/rules/new/", threats.threat_rule_create, name="threat_rule_create"),
    path("threats/rules/<uuid:rule_id>/", threats.threat_rule_edit, name="threat_rule_edit"),
    path(
        "threats/rules/<uuid:rule_id>/enabled/",
        threats.threat_rule_enable,
        name="threat_rule_enable",
    ),
    path(
        "threats/rules/<uuid:rule_id>/delete/",
        threats.threat_rule_delete,
        name="threat_rule_delete",
    ),
    path("lockouts/", views.lockout_list, name="lockouts"),
    path("lockouts/unlock/", views.lockout_unlock, name="lockout_unlock"),
    path(
        "users/<uuid:user_id>/ratelimit/clear/", views.user_blocks_clear, name="user_blocks_clear"
    ),
    path("ratelimit/clear/", views.block_clear_confirm, name="block_clear"),
    path("users/<uuid:user_id>/export/", views.user_data_export, name="user_export"),
    path("users/<uuid:user_id>/erase/", views.user_erase, name="user_erase"),
    path("sessions/", views.session_list, name="sessions"),
    path("sessions/end-all/", sessions_all.sessions_end_all, name="sessions_end_all"),
    path("audit/", views.audit_search, name="audit"),
    path("audit/events.csv", views.audit_export, {"fmt": "csv"}, name="audit_csv"),
    path("audit/events.jsonl", views.audit_export, {"fmt": "jsonl"}, name="audit_jsonl"),
    path("sessions/<uuid:session_id>/revoke/", views.session_revoke, name="session_revoke"),
    path(
        "sessions/<uuid:session_id>/compromise/",
        views.session_compromise,
        name="session_compromise",
    ),
    path("clients/", applications.client_list, name="clients"),
    path("clients/register/", applications.client_register, name="client_register"),
    path("clients/<str:client_id>/", applications.client_detail, name="client"),
    path("clients/<str:client_id>/edit/", applications.client_edit, name="client_edit"),
    path(
        "clients/<str:client_id>/secret/",
        applications.client_secret_rotate,
        name="client_secret_rotate",
    ),
    path("clients/<str:client_id>/disable/", applications.client_disable, name="client_disable"),
    path("clients/<str:client_id>/enable/", applications.client_enable, name="client_enable"),
    path("clients/<str:client_id>/delete/", applications.client_delete, name="client_delete"),
    path("keys/", applications.key_list, name="keys"),
    path(
        "users/<uuid:user_id>/identities/<uuid:identity_id>/unlink/",
        federation.user_identity_unlink,
        name="user_identity_unlink",
    ),
    path("keys/rotate/", applications.keys_rotate, name="keys_rotate"),
]

# Organizations, workspaces, groups, roles, permissions and memberships (apps.console.directory).
_ORG = "organizations/<uuid:organization_id>"
urlpatterns += [
    path("organizations/", directory.organization_list, name="organizations"),
    path("organizations/new/", directory.organization_create, name="organization_create"),
    path(f"{_ORG}/", directory.organization_detail, name="organization"),
    path(f"{_ORG}/rename/", directory.organization_rename, name="organization_rename"),
    path(
        f"{_ORG}/invitations/",
        invitations.organization_invitations,
        name="organization_invitations",
    ),
    path(
        f"{_ORG}/invitations/new/",
        invitations.organization_invitation_create,
        name="organization_invitation_create",
    ),
    path(
        "invitations/<uuid:invitation_id>/revoke/",
        invitations.invitation_revoke,
        name="invitation_revoke",
    ),
    path(f"{_ORG}/delete/", directory.organization_delete, name="organization_delete"),
    path(f"{_ORG}/mfa-policy/", mfa.organization_mfa_policy, name="organization_mfa_policy"),
    path(f"{_ORG}/members/add/", directory.organization_member_add, name="organization_member_add"),
    path(
        f"{_ORG}/members/bulk/",
        directory.organization_members_bulk,
        name="organization_members_bulk",
    ),
    path(f"{_ORG}/workspaces/new/", directory.workspace_create, name="workspace_create"),
    path(
        "organization-memberships/<uuid:membership_id>/role/",
        directory.organization_membership_role,
        name="organization_membership_role",
    ),
    path(
        "organization-memberships/<uuid:membership_id>/remove/",
        directory.organization_membership_remove,
        name="organization_membership_remove",
    ),
    path("workspaces/<uuid:workspace_id>/", directory.workspace_detail, name="workspace"),
    path(
        "workspaces/<uuid:workspace_id>/rename/",
        directory.workspace_rename,
        name="workspace_rename",
    ),
    path(
        "workspaces/<uuid:workspace_id>/delete/",
        directory.workspace_delete,
        name="workspace_delete",
    ),
    path(
        "workspaces/<uuid:workspace_id>/members/add/",
        directory.workspace_member_add,
        name="workspace_member_add",
    ),
    path(
        "workspaces/<uuid:workspace_id>/groups/new/",
        directory.group_create,
        name="group_create",
    ),
    path(
        "workspace-memberships/<uuid:membership_id>/role/",
        directory.workspace_membership_role,
        name="workspace_membership_role",
    ),
    path(
        "workspace-memberships/<uuid:membership_id>/remove/",
        directory.workspace_membership_remove,
        name="workspace_membership_remove",
    ),
    path("groups/<uuid:group_id>/", directory.group_detail, name="group"),
    path("groups/<uuid:group_id>/rename/", directory.group_rename, name="group_rename"),
    path("groups/<uuid:group_id>/delete/", directory.group_delete, name="group_delete"),
    path(
        "groups/<uuid:group_id>/members/add/",
        directory.group_member_add,
        name="group_member_add",
    ),
    path(
        "group-memberships/<uuid:membership_id>/remove/",
        directory.group_membership_remove,
        name="group_membership_remove",
    ),
    path("roles/", directory.role_index, name="roles"),
    path("roles/new/", directory.role_create, name="role_create"),
    path("roles/<uuid:role_id>/edit/", directory.role_edit, name="role_edit"),
    path("roles/<uuid:role_id>/delete/", directory.role_delete, name="role_delete"),
    path("permissions/", directory.permission_index, name="permissions"),
    path("permissions/new/", directory.permission_create, name="permission_create"),
    path(
        "permissions/<uuid:permission_id>/edit/",
        directory.permission_edit,
        name="permission_edit",
    ),
    path(
        "permissions/<uuid:permission_id>/delete/",
        directory.permission_delete,
        name="permission_delete",
    ),
]

# Upstream identity providers (apps.console.federation, issue 17).
_PROVIDER = "federation/providers/<uuid:provider_id>"
urlpatterns += [
    path("federation/providers/", federation.provider_list, name="federation_providers"),
    path(
        "federation/providers/new/",
        federation.provider_create,
        name="federation_provider_create",
    ),
    path(f"{_PROVIDER}/", federation.provider_detail, name="federation_provider"),
    path(f"{_PROVIDER}/edit/", federation.provider_edit, name="federation_provider_edit"),
    path(f"{_PROVIDER}/enable/", federation.provider_enable, name="federation_provider_enable"),
    path(f"{_PROVIDER}/disable/", federation.provider_disable, name="federation_provider_disable"),
    path(f"{_PROVIDER}/delete/", federation.provider_delete, name="federation_provider_delete"),
]
