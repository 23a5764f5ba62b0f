"""Opens a login session whenever someone signs in (the hosted page, the admin login).

accounts cannot import sessions (sessions builds on accounts), so the login page calls
Django's login() and this receiver of contrib.auth's user_logged_in signal does the rest. A
deactivated or deleted account's sessions end with everything else it holds
(apps.tokens.receivers, tokens.services.user_access_revoke_all).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest

from apps.accounts.models import User
from apps.core.events import EventType, emit
from apps.sessions.selectors import SESSION_KEY
from apps.sessions.services import session_start

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
