"""Signed, expiring, single-use links for e-mail (verification, password reset, e-mail change).

A link's token is Django's signing (HMAC-SHA256 under SECRET_KEY, with a salt per purpose,
so a token made for one purpose never passes for another) over a small payload: the account
id, what the link is for (e.g. the address to verify) and a fingerprint of the account's state
that the link's use changes. Using the link changes that state, so the same link fails the
second time: single use without a table of spent tokens (Django's PasswordResetTokenGenerator
works the same way; OWASP Forgot Password Cheat Sheet: single use, short-lived, bound to the
account). A token carries no secret of the account: the fingerprint is an HMAC, not a hash
of the password. While SECRET_KEY rotates, a link made under a fallback still works
(signature and fingerprint) until it expires.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.utils.crypto import constant_time_compare, salted_hmac

from apps.accounts.models import User
from apps.core.secret_keys import secret_keys

# A token longer than this is not one of ours (ours are about 150 characters).
TOKEN_MAX = 1024
# What a page says when the broker refused the mail's task (apps.core.commit.unqueued_tasks):
# nothing queues it later (docs/operations.md "The broker down"), so the page promises nothing.
# The same words whether the address has an account or not (one answer for every address).
NOT_SENT = "We could not send the link just now. Nothing is on its way: ask again in a few minutes."


class LinkInvalid(Exception):
    """The link is malformed, tampered with, for another purpose, used already or expired;
    `expired` tells the last case apart (the page says to ask for a new link)."""

    def __init__(self, *, expired: bool = False) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


@dataclass(frozen=True)
class Link:
    user: User
    data: dict[str, Any]


def _fingerprint(purpose: str, user: User, data: dict[str, Any], key: str) -> str:
    """What the account looks like now, as far as this link cares: its address and whether
    it is verified, its password hash (a reset or change voids every earlier link) and the
    link's own data."""
    state = "\x1f".join(
        [user.email, str(user.email_verified), user.password, repr(sorted(data.items()))]
    )
    mac = salted_hmac(f"tessera.links.{purpose}", state, secret=key, algorithm="sha256")
    return mac.hexdigest()[:32]


def link_make(purpose: str, user: User, data: dict[str, Any] | None = None) -> str:
    """A token for `purpose` about `user` with `data` (JSON values)."""
    data = data or {}
    fingerprint = _fingerprint(purpose, user, data, settings.SECRET_KEY)
    payload = {"u": str(user.pk), "d": data, "f": fingerprint}
    return signing.dumps(payload, salt=f"tessera.links.{purpose}", compress=True)


def link_read(purpose: str, token: str, *, max_age: int) -> Link:
    """The account and data of a token made by link_make for `purpose` at most `max_age`
    seconds ago and whose account has not changed since. Raises LinkInvalid."""
    if not token or len(token) > TOKEN_MAX:
        raise LinkInvalid
    try:
        payload = signing.loads(token, salt=f"tessera.links.{purpose}", max_age=max_age)
    except signing.SignatureExpired:
        raise LinkInvalid(expired=True) from None
    except (signing.BadSignature, ValueError, UnicodeDecodeError):
        raise LinkInvalid from None
    if not isinstance(payload, dict) or not isinstance(payload.get("d"), dict):
        raise LinkInvalid
    try:
        user = User.objects.get(pk=str(payload.get("u")), is_active=True)
    except (User.DoesNotExist, ValidationError, ValueError):  # a malformed id: ValidationError
        raise LinkInvalid from None
    # Made under the key that signed the link: a fallback of IDP_SECRET_KEY while it rotates.
    given = str(payload.get("f", ""))
    if not any(
        constant_time_compare(_fingerprint(purpose, user, payload["d"], key), given)
        for key in secret_keys()
    ):
        raise LinkInvalid  # used already, or the account changed since
    return Link(user=user, data=payload["d"])


def token_digest(token: str) -> str:
    """A short digest to name a token in logs and events without the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]
