from django.urls import path

from apps.mfa import views

app_name = "mfa"
urlpatterns = [
    path("account/security/", views.factors, name="factors"),
    path("account/security/totp", views.totp, name="totp"),
    path("account/security/totp/new", views.totp_start, name="totp_start"),
    path("account/security/recovery-codes", views.recovery_codes, name="recovery_codes"),
]
