from django.urls import path

from apps.console.api import applications, directory, mfa, staff, views

app_name = "api"
urlpatterns = [
    path("users", views.users, name="users"),
    path("users/<uuid:user_id>", views.user, name="user"),
    path("users/<uuid:user_id>/staff-role", staff.user_staff_role, name="user_staff_role"),
    path("staff", staff.staff, name="staff"),
    path("users/<uuid:user_id>/sessions", views.user_sessions, name="user_sessions"),
    path("users/<uuid:user_id>/events", views.user_events, name="user_events"),
    path("users/<uuid:user_id>/export", views.user_export, name="user_export"),
    path("users/<uuid:user_id>/erase", views.user_erase, name="user_erase"),
    path(
        "users/<uuid:user_id>/sessions/revoke",
        views.user_sessions_revoke,
        name="user_sessions_revoke",
    ),
    path(
        "users/<uuid:user_id>/offline-grants", views.user_offline_grants, name="user_offline_grants"
    ),
    path(
        "users/<uuid:user_id>/offline-grants/revoke",
        views.user_offline_grants_revoke,
        name="user_offline_grants_revoke",
    ),
    path("users/<uuid:user_id>/revoke-all", views.user_revoke_all, name="user_revoke_all"),
    path(
        "users/<uuid:user_id>/verification/send",
        views.user_verification_send,
        name="user_verification_send",
    ),
    path(
        "users/<uuid:user_id>/password-reset/send",
        views.user_password_reset_send,
        name="user_password_reset_send",
    ),
    path("users/<uuid:user_id>/factors", mfa.user_factors, name="user_factors"),
    path("users/<uuid:user_id>/factors/reset", mfa.user_factors_reset, name="user_factors_reset"),
    path("users/<uuid:user_id>/mfa-required", mfa.user_mfa_required, name="user_mfa_required"),
    path("offline-grants/<uuid:grant_id>", views.offline_grant, name="offline_grant"),
    path(
        "offline-grants/<uuid:grant_id>/revoke",
        views.offline_grant_revoke,
        name="offline_grant_revoke",
    ),
    path("sessions", views.sessions, name="sessions"),
    path("lockouts", views.lockouts, name="lockouts"),
    path("lockouts/unlock", views.lockout_unlock, name="lockout_unlock"),
    path("ratelimit/blocks", views.ratelimit_blocks, name="ratelimit_blocks"),
    path("ratelimit/blocks/clear", views.ratelimit_block_clear, name="ratelimit_block_clear"),
    path("audit/events", views.audit_events, name="audit_events"),
    path("audit/events.csv", views.audit_events_csv, name="audit_events_csv"),
    path("audit/events.jsonl", views.audit_events_jsonl, name="audit_events_jsonl"),
    path("sessions/<uuid:session_id>", views.session, name="session"),
    path("sessions/<uuid:session_id>/revoke", views.session_revoke, name="session_revoke"),
    path(
        "sessions/<uuid:session_id>/compromise",
        views.session_compromise,
        name="session_compromise",
    ),
    path("clients", applications.clients, name="clients"),
    path("clients/<str:client_id>", applications.client, name="client"),
    path(
        "clients/<str:client_id>/secret",
        applications.client_secret_rotate,
        name="client_secret_rotate",
    ),
    path("clients/<str:client_id>/disable", applications.client_disable, name="client_disable"),
    path("clients/<str:client_id>/enable", applications.client_enable, name="client_enable"),
    path("keys", applications.keys, name="keys"),
    path("keys/rotate", applications.keys_rotate, name="keys_rotate"),
    path("organizations", directory.organizations, name="organizations"),
    path("organizations/<uuid:organization_id>", directory.organization, name="organization"),
    path(
        "organizations/<uuid:organization_id>/workspaces",
        directory.organization_workspaces,
        name="organization_workspaces",
    ),
    path(
        "organizations/<uuid:organization_id>/invitations",
        directory.organization_invitations,
        name="organization_invitations",
    ),
    path(
        "invitations/<uuid:invitation_id>/revoke",
        directory.invitation_revoke,
        name="invitation_revoke",
    ),
    path(
        "organizations/<uuid:organization_id>/members",
        directory.organization_members,
        name="organization_members",
    ),
    path(
        "organizations/<uuid:organization_id>/members/bulk",
        directory.organization_members_bulk,
        name="organization_members_bulk",
    ),
    path(
        "organizations/<uuid:organization_id>/members/<uuid:user_id>",
        directory.organization_member,
        name="organization_member",
    ),
    path("workspaces/<uuid:workspace_id>", directory.workspace, name="workspace"),
    path(
        "workspaces/<uuid:workspace_id>/groups",
        directory.workspace_groups,
        name="workspace_groups",
    ),
    path(
        "workspaces/<uuid:workspace_id>/members",
        directory.workspace_members,
        name="workspace_members",
    ),
    path(
        "workspaces/<uuid:workspace_id>/members/<uuid:user_id>",
        directory.workspace_member,
        name="workspace_member",
    ),
    path("groups/<uuid:group_id>", directory.group, name="group"),
    path("groups/<uuid:group_id>/members", directory.group_members, name="group_members"),
    path(
        "groups/<uuid:group_id>/members/<uuid:user_id>",
        directory.group_member,
        name="group_member",
    ),
    path("permissions", directory.permissions, name="permissions"),
    path("permissions/<uuid:permission_id>", directory.permission, name="permission"),
    path("roles", directory.roles, name="roles"),
    path("roles/<uuid:role_id>", directory.role, name="role"),
    path(
        "users/<uuid:user_id>/claims-preview",
        directory.user_claims_preview,
        name="user_claims_preview",
    ),
    path("users/<uuid:user_id>/memberships", directory.user_memberships, name="user_memberships"),
]
