from django.urls import path

from apps.console import applications, staff, views

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
    path("lockouts/", views.lockout_list, name="lockouts"),
    path("lockouts/unlock/", views.lockout_unlock, name="lockout_unlock"),
    path(
        "users/<uuid:user_id>/ratelimit/clear/", views.user_blocks_clear, name="user_blocks_clear"
    ),
    path("ratelimit/clear/", views.block_clear_confirm, name="block_clear"),
    path("users/<uuid:user_id>/export/", views.user_data_export, name="user_export"),
    path("users/<uuid:user_id>/erase/", views.user_erase, name="user_erase"),
    path("sessions/", views.session_list, name="sessions"),
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
    path("keys/rotate/", applications.keys_rotate, name="keys_rotate"),
]
