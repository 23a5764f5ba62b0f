"""Security notices: an e-mail to the person whenever something about their account's
security happens — a sign-in from a new device, a password or e-mail change, a second factor
added or removed — saying what happened, when, from where, and where to act (their account
page). OWASP ASVS 5.0 6.3.7 (4.0.3 2.2.3: "users are notified after updates to
authentication details") and NIST SP 800-63B §6.1.2.3 (notify the subscriber of authenticator
changes).

The implementation of core's port (apps/core/notices.py, settings.SECURITY_NOTICE): apps.mfa
sends its notices (apps/mfa/notices.py) through it, as it may not import signin."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.core.mail import mail_send, recipient
from apps.core.request_context import client_ip
from apps.sessions.binding import device
from apps.sessions.geo import location, place

# What each notice says happened, by kind (the subject and the first line of the message).
NOTICES = {
    "new_device": "New sign-in to your account",
    "password_changed": "Your password was changed",
    "email_changed": "Your e-mail address was changed",
    "mfa_added": "A sign-in method was added to your account",
    "mfa_removed": "A sign-in method was removed from your account",
    "recovery_codes_made": "New recovery codes were made for your account",
    # An operator removed every second factor (apps.mfa.services.mfa_reset).
    "mfa_reset": "An administrator reset the second sign-in step of your account",
    # apps/signin/second_factor.py: the second-factor counter locked (Keycloak issue 46164).
    "mfa_locked": "Your second sign-in step was locked after wrong answers",
}
# What each notice adds below the headline, where it has more to say.
DETAILS = {
    "recovery_codes_made": "Any earlier recovery codes, used or not, no longer work.",
    "mfa_locked": (
        "Someone who knew your password typed wrong codes for your second factor several "
        "times, so it is locked for a while. If it was not you, your password is known to "
        "someone else: change it now."
    ),
}


def account_url() -> str:
    return settings.ISSUER + reverse("signin:account")


def security_notice(
    *,
    user: User,
    kind: str,
    request: HttpRequest | None,
    to: str | None = None,
    detail: str = "",
    by_operator: bool = False,
) -> None:
    """Mail `user` (or `to`, e.g. the old address after an e-mail change) the notice `kind`
    (NOTICES) with where the request came from, after the current transaction commits.
    `by_operator`: an operator made the change (their address is not the person's business
    and is not given); the message says so and what to do if they did not ask for it."""
    where = ""
    browser = ""
    if request is not None:
        ip = client_ip(request)
        city = place(location(ip))
        where = f"{ip or 'an unknown address'}" + (f" ({city})" if city else "")
        browser = device(request).browser
    mail_send(
        "security_notice",
        to=recipient(to or user.email, user.name),
        context={
            "user": user,
            "headline": NOTICES[kind],
            "kind": kind,
            "detail": detail or DETAILS.get(kind, ""),
            "when": timezone.now(),
            "where": where,
            "browser": browser,
            "account_url": account_url(),
            "by_operator": by_operator,
        },
    )
