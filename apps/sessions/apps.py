from django.apps import AppConfig


class SessionsConfig(AppConfig):
    name = "apps.sessions"
    # "sessions" is taken by django.contrib.sessions (the browser session store).
    label = "login_sessions"
    verbose_name = "Login sessions"
