from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "apps.tokens"

    def ready(self) -> None:
        from apps.tokens import receivers  # noqa: F401 - connects the logout propagation
