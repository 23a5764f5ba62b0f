"""The browser session's record of a re-authentication (OWASP ASVS 4.0.3 V3.7.1; NIST SP
800-63B §6.1.2.1): which login session it was given in, when, and with what. The security
page (apps/mfa/views.py) reads it; the confirmation page that proves it, with the sign-in's
failed-attempt counters, is apps.signin.reauthentication (mfa may not import ratelimit or
signin: docs/architecture.md), which writes it through reauthentication_record.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from django.http import HttpRequest
from django.utils import timezone

from apps.mfa.services import CLOCK_SKEW, REAUTHENTICATION_MAX_AGE

REAUTH_KEY = "tessera_mfa_reauth"


def login_session_id(request: HttpRequest) -> str:
    # request.login_session: set by apps.sessions' middleware (mfa may not import sessions).
    return str(getattr(getattr(request, "login_session", None), "pk", "") or "")


def reauthentication_record(request: HttpRequest, *, by: str) -> None:
    """Marks a confirmation just proven: this login session, now, and by what ("password",
    "totp:<id>", "webauthn:<id>" or "recovery_codes")."""
    request.session[REAUTH_KEY] = {
        "sid": login_session_id(request),
        "at": timezone.now().isoformat(),
        "by": by,
    }


def authenticated_at(request: HttpRequest, *, not_by: str = "") -> datetime | None:
    """The person's last proof of who they are in this browser: the sign-in (or step-up) of
    its login session, or a confirmation on the re-authentication page, the later of the two.
    `not_by` ("<kind>:<id>" or a kind): a confirmation made with that factor does not count
    (removing a factor needs the password or *another* factor, issue 15)."""
    times: list[datetime] = []
    signed_in = getattr(getattr(request, "login_session", None), "authenticated_at", None)
    if isinstance(signed_in, datetime):
        times.append(signed_in)
    confirmed = request.session.get(REAUTH_KEY)
    if (
        isinstance(confirmed, dict)
        and confirmed.get("sid") == login_session_id(request)
        and not (not_by and str(confirmed.get("by", "")) in _factor_keys(not_by))
    ):
        with contextlib.suppress(ValueError):
            times.append(datetime.fromisoformat(str(confirmed.get("at"))))
    return max(times, default=None)


def _factor_keys(key: str) -> set[str]:
    """A factor's mark and its kind's (recovery codes are marked by kind: a set, not a code)."""
    return {key, key.partition(":")[0]} if key.startswith("recovery_codes") else {key}


def recently_authenticated(request: HttpRequest, *, not_by: str = "") -> bool:
    at, now = authenticated_at(request, not_by=not_by), timezone.now()
    return at is not None and at <= now + CLOCK_SKEW and now - at <= REAUTHENTICATION_MAX_AGE
