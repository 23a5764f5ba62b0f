from django.urls import path

from apps.mfa import views

app_name = "mfa"
urlpatterns = [
    path("account/security/", views.factors, name="factors"),
    path("account/security/totp", views.totp, name="totp"),
    path("account/security/totp/new", views.totp_start, name="totp_start"),
    path("account/security/recovery-codes", views.recovery_codes, name="recovery_codes"),
    path("account/security/passkeys/options", views.passkey_options, name="passkey_options"),
    path("account/security/passkeys", views.passkey_add, name="passkey_add"),
    path("account/security/confirm", views.reauthenticate, name="reauthenticate"),
    path(
        "account/security/confirm/options",
        views.reauthenticate_options,
        name="reauthenticate_options",
    ),
    path("account/security/remove/<str:kind>/<str:factor_id>", views.remove, name="remove"),
]
