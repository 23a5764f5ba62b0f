"""Port: a security notice, the e-mail that tells a person something about their account's
security changed (what, when, from which address and browser, and what to do if it was not
them). OWASP ASVS 5.0 6.3.7: "users are notified after updates to authentication details".

apps.signin implements it (apps/signin/notices.py `security_notice`, named by
settings.SECURITY_NOTICE): the notice describes the request with apps.sessions' browser and
place, which the apps below signin may not import. apps.mfa sends its notices through here
(a factor added or removed on the security page, an operator's reset: apps/mfa/notices.py)
without importing signin; signin's own code calls its module directly.

The message is rendered at once and queued for the Celery worker when the caller's
transaction commits (apps.core.mail.mail_send), so it never announces a change that was
rolled back.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string


class SecurityNotifier(Protocol):
    def __call__(
        self,
        *,
        user: Any,
        kind: str,
        request: HttpRequest | None,
        detail: str = "",
        by_operator: bool = False,
    ) -> None:
        """Mail `user` the notice `kind` (apps/signin/notices.py NOTICES), `detail` below its
        headline, with where `request` came from (None: nothing said of where). `by_operator`:
        an operator made the change, not the person; the message says so."""
        ...


def security_notice(
    *,
    user: Any,
    kind: str,
    request: HttpRequest | None,
    detail: str = "",
    by_operator: bool = False,
) -> None:
    notifier: SecurityNotifier = import_string(settings.SECURITY_NOTICE)
    notifier(user=user, kind=kind, request=request, detail=detail, by_operator=by_operator)
