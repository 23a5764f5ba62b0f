from django.apps import AppConfig


class MfaConfig(AppConfig):
    name = "apps.mfa"
    verbose_name = "Second factors"
