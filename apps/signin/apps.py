from django.apps import AppConfig


class SigninConfig(AppConfig):
    name = "apps.signin"
    verbose_name = "Sign-in"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        # django.contrib.auth records last_login with an UPDATE of its own when user_logged_in
        # fires; the sign-in pipeline's session step records it in the UPDATE that also locks
        # the account's row for the session limit (apps.sessions.services.session_start).
        user_logged_in.disconnect(dispatch_uid="update_last_login")
