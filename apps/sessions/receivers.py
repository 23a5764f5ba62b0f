"""Opens a login session whenever someone signs in (the hosted page, the admin login), and
ends a person's sessions when their account is deactivated or deleted.

accounts cannot import sessions (sessions builds on accounts), so the login page calls
Django's login() and this receiver of contrib.auth's user_logged_in signal does the rest; the
account changes arrive as model signals, from the admin or any other code.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver
from django.http import HttpRequest

from apps.accounts.models import User
from apps.core.events import EventType, emit
from apps.sessions.selectors import SESSION_KEY
from apps.sessions.services import session_end_all, session_start

# RFC 8176 authentication method references, by the Django backend that authenticated.
_AMR = {"django.contrib.auth.backends.ModelBackend": ["pwd"]}


@receiver(user_logged_in, dispatch_uid="tessera.sessions.login")
def open_login_session(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    if request is None:
        return
    backend = getattr(user, "backend", "")
    session = session_start(user=user, amr=_AMR.get(backend, ["pwd"]), request=request)
    request.session[SESSION_KEY] = str(session.pk)
    emit(
        EventType.LOGIN_SUCCEEDED,
        user_id=user.pk,
        session_id=session.pk,
        resource_type="session",
        resource_id=session.pk,
        metadata={"provider": session.provider, "amr": session.amr},
    )


@receiver(post_save, sender=User, dispatch_uid="tessera.sessions.deactivated")
def end_sessions_of_deactivated(sender: Any, instance: User, **kwargs: Any) -> None:
    """A deactivated account keeps no session: its tokens stop working everywhere now, not
    when they expire (OWASP ASVS 3.3.3)."""
    if not instance.is_active:
        session_end_all(user=instance, reason="account_disabled")


@receiver(pre_delete, sender=User, dispatch_uid="tessera.sessions.deleted")
def end_sessions_of_deleted(sender: Any, instance: User, **kwargs: Any) -> None:
    """Before the cascade removes the rows: the sids go on the revocation list. Relying
    parties get no back-channel notice: the deliveries would go with the sessions' rows."""
    session_end_all(user=instance, reason="account_deleted")
