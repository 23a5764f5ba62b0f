from django.urls import path

from apps.console.api import views

app_name = "api"
urlpatterns = [
    path("users", views.users, name="users"),
    path("users/<uuid:user_id>", views.user, name="user"),
    path("users/<uuid:user_id>/sessions", views.user_sessions, name="user_sessions"),
    path("users/<uuid:user_id>/events", views.user_events, name="user_events"),
    path(
        "users/<uuid:user_id>/sessions/revoke",
        views.user_sessions_revoke,
        name="user_sessions_revoke",
    ),
    path("sessions", views.sessions, name="sessions"),
    path("sessions/<uuid:session_id>", views.session, name="session"),
    path("sessions/<uuid:session_id>/revoke", views.session_revoke, name="session_revoke"),
    path(
        "sessions/<uuid:session_id>/compromise",
        views.session_compromise,
        name="session_compromise",
    ),
]
