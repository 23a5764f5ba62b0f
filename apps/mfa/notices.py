"""What the person is told when their second factors change: an authenticator app, security
key or passkey added or removed on their security page, new recovery codes, and an operator's
reset of them all. OWASP ASVS 5.0 6.3.7: "users are notified after updates to authentication
details"; NIST SP 800-63B §6.1.2.3: the subscriber is notified when an authenticator is
bound or removed. Without it, whoever holds a stolen session could add their own factor, or
talk a help desk into a reset, and the person would not know.

The mail is the security notice every change of this kind sends (what, when, from which
address and browser, what to do if it was not them), reached through core's port
(apps/core/notices.py; apps/signin/notices.py renders it): mfa may not import signin. The
person's notices are sent by the security page's views once the change has committed; the
reset's by apps.mfa.services.mfa_reset, for the console and the admin API alike. A notice
that cannot be queued (the broker down) is logged: the change has happened either way.
The sign-in's own enrolment (apps/signin/second_factor_views.py) sends its notice there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.http import HttpRequest

from apps.accounts.models import User
from apps.core.notices import security_notice
from apps.mfa.models import FactorKind

log = logging.getLogger("tessera.mfa")

# How a notice names each kind of factor.
FACTOR_NAMES = {
    FactorKind.TOTP: "authenticator app",
    FactorKind.WEBAUTHN: "security key or passkey",
    FactorKind.RECOVERY_CODES: "set of recovery codes",
}
# The same, counted, for the reset's list of what went.
_COUNTED = {
    FactorKind.TOTP: ("authenticator app", "authenticator apps"),
    FactorKind.WEBAUTHN: ("security key or passkey", "security keys or passkeys"),
    FactorKind.RECOVERY_CODES: ("set of recovery codes", "sets of recovery codes"),
}


def factor_added_notice(*, request: HttpRequest, user: User, kind: str, name: str) -> None:
    _send(user=user, kind="mfa_added", request=request, detail=f"Added: {_named(kind, name)}.")


def factor_removed_notice(*, request: HttpRequest, user: User, kind: str, name: str) -> None:
    detail = f"Removed: {_named(kind, name)}. It no longer signs in to your account."
    _send(user=user, kind="mfa_removed", request=request, detail=detail)


def recovery_codes_notice(*, request: HttpRequest, user: User) -> None:
    _send(user=user, kind="recovery_codes_made", request=request)


def factors_reset_notice(*, user: User, removed: Mapping[str, int]) -> None:
    """After an operator's reset (`removed`: how many of each kind went). Their address and
    browser are not the person's business: the notice says an administrator did it."""
    went = [
        f"{count} {_COUNTED[FactorKind(kind)][count != 1]}"
        for kind, count in removed.items()
        if count
    ]
    detail = (
        f"An administrator removed every second factor of your account ({', '.join(went)}). "
        "You sign in with your password alone until you add one again on your account's "
        "security page, or are asked to add one at your next sign-in."
        if went
        else "An administrator reset your second factors; none was set up, so nothing changed."
    )
    _send(user=user, kind="mfa_reset", request=None, detail=detail, by_operator=True)


def _named(kind: str, name: str) -> str:
    what = FACTOR_NAMES[FactorKind(kind)]
    return f"the {what} “{name}”" if name and kind != FactorKind.RECOVERY_CODES else f"your {what}"


def _send(
    *,
    user: User,
    kind: str,
    request: HttpRequest | None,
    detail: str = "",
    by_operator: bool = False,
) -> None:
    try:
        security_notice(
            user=user, kind=kind, request=request, detail=detail, by_operator=by_operator
        )
    except Exception:  # the broker or the template: a missing notice is not a refusal
        log.exception("security notice %s not queued for %s", kind, user.pk)
