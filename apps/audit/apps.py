from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"

    def ready(self) -> None:
        from apps.audit import receivers  # noqa: F401  (connects them)
