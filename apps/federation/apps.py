from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "apps.federation"
    verbose_name = "Federation"
