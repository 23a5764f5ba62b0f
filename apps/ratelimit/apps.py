from django.apps import AppConfig


class RatelimitConfig(AppConfig):
    name = "apps.ratelimit"
