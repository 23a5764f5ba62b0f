"""E-mail verification and password reset: the links mailed (apps.signin.links) and what
using them does.

Verification: `verification_send` mails a link valid EMAIL_VERIFY_HOURS; `email_verify`
marks the address verified (which ends the link: its fingerprint holds email_verified).

Password reset (OWASP Forgot Password Cheat Sheet):
- `password_reset_request` answers every address the same way, with the same statements:
  it looks the address up, records password.reset_requested and queues one task whether or
  not an account has it ("Return a consistent message for both existent and non-existent
  accounts", "Ensure that the time taken for the user response message is uniform"). The
  worker (apps.signin.tasks) makes and mails the link for an account, and sends nothing for
  an unknown address: a mail to an address that has no account would let anyone make us
  write to any address (the cheat sheet allows either; silence is the quieter default).
- the link ("a URL token … single use and expire after an appropriate period") is valid
  PASSWORD_RESET_MINUTES and bound to the account's current password hash, so it dies once
  used and at any other password change.
- `password_reset_complete` sets the password through credentials.password_set (the policy;
  every session and offline grant ends; the notice mail: "Send the user an email informing
  them that their password has been reset"), and lifts the address's sign-in lockout.
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from redis.exceptions import RedisError

from apps.accounts.models import User
from apps.core.commit import queue_after_commit
from apps.core.events import EventType, emit
from apps.core.mail import mail_send, recipient
from apps.core.request_context import client_ip
from apps.ratelimit.services import lockout_clear, lockouts_for
from apps.signin.credentials import password_set
from apps.signin.links import Link, LinkInvalid, link_make, link_read, token_digest

log = logging.getLogger("tessera.signin")

VERIFY = "verify_email"
RESET_MAIL_TASK = "apps.signin.tasks.password_reset_mail_task"
RESET = "password_reset"
# The id a lookup of an unknown address stands in for (the nil UUID, RFC 9562 §5.9).
NO_ACCOUNT = uuid.UUID(int=0)

__all__ = [
    "LinkInvalid",
    "email_verify",
    "password_reset_complete",
    "password_reset_mail",
    "password_reset_read",
    "password_reset_request",
    "password_reset_send",
    "verification_read",
    "verification_send",
]


def verify_max_age() -> int:
    return settings.EMAIL_VERIFY_HOURS * 3600


def reset_max_age() -> int:
    return settings.PASSWORD_RESET_MINUTES * 60


# --- e-mail verification --------------------------------------------------------------------


def verification_send(
    user: User, *, actor_id: object = None, request: HttpRequest | None = None
) -> bool:
    """Mail `user` a link that verifies their current address (after the current transaction
    commits) and record email.verification_sent (`actor_id`: who asked, the person or an
    operator). False, and nothing sent, when the address is verified already or the account
    is deactivated (its link would not work)."""
    if user.email_verified or not user.is_active:
        return False
    token = link_make(VERIFY, user, {"email": user.email})
    mail_send(
        "verify_email",
        to=recipient(user.email, user.name),
        context={
            "user": user,
            "url": settings.ISSUER + reverse("signin:verify", args=[token]),
            "hours": settings.EMAIL_VERIFY_HOURS,
        },
    )
    emit(
        EventType.EMAIL_VERIFICATION_SENT,
        user_id=user.pk,
        actor_id=actor_id if actor_id is not None else user.pk,
        resource_type="user",
        resource_id=user.pk,
        metadata={"email": user.email, "link": token_digest(token)},
    )
    return True


def verification_read(token: str) -> Link:
    """The account and address a verification link names, if it is still good (LinkInvalid,
    `expired` set when only its age is wrong)."""
    return link_read(VERIFY, token, max_age=verify_max_age())


def email_verify(token: str) -> User:
    """Marks the address the link was made for verified and records email.verified. Single
    use: the update is conditional on the address being still the link's and unverified, so
    of two uses at once only one counts (the other is LinkInvalid)."""
    link = verification_read(token)
    user = link.user
    with transaction.atomic():
        updated = User.objects.filter(
            pk=user.pk, email=link.data.get("email"), email_verified=False
        ).update(email_verified=True)
        if not updated:
            raise LinkInvalid
        emit(
            EventType.EMAIL_VERIFIED,
            user_id=user.pk,
            actor_id=user.pk,
            resource_type="user",
            resource_id=user.pk,
            metadata={"email": user.email, "link": token_digest(token)},
        )
    user.email_verified = True
    return user


# --- password reset -------------------------------------------------------------------------


def password_reset_request(request: HttpRequest, *, email: str) -> None:
    """Someone asked for a reset link for `email` (as typed, already bounded by the form).
    The same work whatever the address: one lookup, one event, one task queued on commit."""
    try:
        user_id: object = User._default_manager.get_by_natural_key(email).pk
    except User.DoesNotExist:
        user_id = None
    emit(
        EventType.PASSWORD_RESET_REQUESTED,
        user_id=user_id,
        resource_type="user",
        resource_id=user_id,
        metadata={"email": email},
    )
    # By name: apps/signin/tasks.py imports this module (the worker's half).
    args = [str(user_id or NO_ACCOUNT), client_ip(request) or ""]
    queue_after_commit(RESET_MAIL_TASK, *args)


def password_reset_mail(user: User, *, ip: str = "", by_operator: bool = False) -> str:
    """Mail `user` a reset link bound to their password as it is now; returns its token's
    digest (for events). A deactivated account gets nothing (its link would not work)."""
    token = link_make(RESET, user)
    mail_send(
        "password_reset",
        to=recipient(user.email, user.name),
        context={
            "user": user,
            "url": settings.ISSUER + reverse("signin:password_reset", args=[token]),
            "minutes": settings.PASSWORD_RESET_MINUTES,
            "ip": ip,
            "by_operator": by_operator,
            "forgot_url": settings.ISSUER + reverse("signin:password_forgot"),
        },
    )
    return token_digest(token)


def password_reset_send(user: User, *, actor_id: object, request: HttpRequest | None) -> bool:
    """An operator sends `user` a reset link (they never see it, nor any password); recorded
    as password.reset_requested with the operator as actor. False for a deactivated account."""
    if not user.is_active:
        return False
    with transaction.atomic():
        digest = password_reset_mail(user, by_operator=True)
        emit(
            EventType.PASSWORD_RESET_REQUESTED,
            user_id=user.pk,
            actor_id=actor_id,
            resource_type="user",
            resource_id=user.pk,
            metadata={"email": user.email, "link": digest, "by_operator": True},
        )
    return True


def password_reset_read(token: str) -> Link:
    return link_read(RESET, token, max_age=reset_max_age())


def password_reset_complete(token: str, *, password: str, request: HttpRequest) -> User:
    """Sets the password the link's holder chose (raises ValidationError from the policy,
    LinkInvalid for a bad, used or expired link). The account's row is locked and the link
    read again under the lock, so two uses of one link at once set one password."""
    with transaction.atomic():
        first = password_reset_read(token)
        User.objects.select_for_update().filter(pk=first.user.pk).first()
        user = password_reset_read(token).user  # the row as committed by anyone before us
        password_set(user=user, password=password, method="reset", request=request)
    _lockout_lift(user)
    return user


def _lockout_lift(user: User) -> None:
    """The person proved they hold the mailbox and chose a new password: the failed-attempt
    counters of their address counted guesses of a password that is gone, so a lockout no
    longer protects anything and would only keep its owner out (NIST SP 800-63B §5.2.2:
    throttling must not become a denial of service; Keycloak GHSA-cq42-vhv7-xr7p). Lifted,
    and recorded (account.unlocked, reason password_reset), only when there is one."""
    try:
        if lockouts_for(kind="login", identifier=user.email):
            lockout_clear(
                kind="login", identifier=user.email, actor_id=user.pk, reason="password_reset"
            )
    except RedisError as error:  # the password is set; the lockout then ends on its own
        log.warning("lockout not lifted after a password reset", extra={"error": str(error)})
