from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"

    def ready(self) -> None:
        from django.contrib import admin

        from apps.core import receivers  # noqa: F401 - connects the admin-change events

        # A bulk delete's LogEntries send no signal (apps.core.receivers): one at a time.
        admin.site.disable_action("delete_selected")
