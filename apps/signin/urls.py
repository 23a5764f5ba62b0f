from django.urls import path

from apps.signin import account, views

app_name = "signin"
urlpatterns = [
    path("login", views.login_view, name="login"),
    path("account/", account.account, name="account"),
    path("account/name", account.name_update, name="account_name"),
    path("account/email", account.email_update, name="account_email"),
    path("account/email/confirm", account.email_confirm, name="account_email_confirm"),
    path("account/password", account.password_update, name="account_password"),
    path(
        "account/sessions/<str:session_id>/sign-out",
        account.session_sign_out,
        name="account_session_sign_out",
    ),
    path(
        "account/sessions/sign-out-others",
        account.sessions_sign_out_others,
        name="account_sessions_sign_out_others",
    ),
    path(
        "account/applications/consent/<str:client_id>/revoke",
        account.consent_revoke,
        name="account_consent_revoke",
    ),
    path(
        "account/applications/offline/<str:grant_id>/revoke",
        account.offline_grant_revoke,
        name="account_offline_grant_revoke",
    ),
]
