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
    # /account/security/confirm and its options: apps/signin/reauthentication.py (the
    # sign-in's failed-attempt counters live there), names signin:reauthenticate[_options].
    path("account/security/remove/<str:kind>/<str:factor_id>", views.remove, name="remove"),
]
