from django.apps import AppConfig


class ThreatConfig(AppConfig):
    name = "apps.threat"
    verbose_name = "Threat detection"
