from django.urls import path

from apps.signin import account, reauthentication, recovery_views, registration, views
from apps.signin import second_factor_views as second_factor

app_name = "signin"
urlpatterns = [
    path("login", views.login_view, name="login"),
    path("login/second-factor", second_factor.challenge_page, name="second_factor"),
    path(
        "login/second-factor/webauthn/options",
        second_factor.webauthn_options,
        name="second_factor_webauthn_options",
    ),
    path(
        "login/second-factor/webauthn", second_factor.webauthn_answer, name="second_factor_webauthn"
    ),
    path("login/second-factor/continue", second_factor.go_on, name="second_factor_continue"),
    path("login/second-factor/cancel", second_factor.cancel, name="second_factor_cancel"),
    path("login/second-factor/enrol", second_factor.enrol, name="second_factor_enrol"),
    path(
        "login/second-factor/enrol/totp", second_factor.enrol_totp, name="second_factor_enrol_totp"
    ),
    path(
        "login/second-factor/enrol/webauthn/options",
        second_factor.enrol_webauthn_options,
        name="second_factor_enrol_webauthn_options",
    ),
    path(
        "login/second-factor/enrol/webauthn",
        second_factor.enrol_webauthn,
        name="second_factor_enrol_webauthn",
    ),
    path("account/", account.account, name="account"),
    # The security page's confirmation (apps/mfa/views.py reads its record): here, since its
    # answers count on the sign-in's failed-attempt counters.
    path("account/security/confirm", reauthentication.reauthenticate, name="reauthenticate"),
    path(
        "account/security/confirm/options",
        reauthentication.reauthenticate_options,
        name="reauthenticate_options",
    ),
    path("account/verify", recovery_views.verify_resend, name="verify_resend"),
    path("account/verify/<str:token>", recovery_views.verify, name="verify"),
    path("password/forgot", recovery_views.password_forgot, name="password_forgot"),
    path("password/reset/<str:token>", recovery_views.password_reset, name="password_reset"),
    path("register", registration.register, name="register"),
    path("register/confirm/<str:token>", registration.register_confirm, name="register_confirm"),
    path("invite/<str:token>", registration.invite, name="invite"),
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

# Passwordless sign-in with a passkey (apps/signin/passwordless.py).
from apps.signin import passwordless  # noqa: E402

urlpatterns += [
    path("login/passkey/options", passwordless.options, name="passkey_options"),
    path("login/passkey", passwordless.finish, name="passkey"),
]
