"""Setting a person's own password: the one road for a reset link and the account page."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.http import HttpRequest

from apps.accounts.models import User
from apps.core.events import EventType, emit
from apps.signin.notices import security_notice


def password_set(*, user: User, password: str, method: str, request: HttpRequest | None) -> None:
    """Give `user` the new `password` after the password policy accepts it
    (AUTH_PASSWORD_VALIDATORS; raises ValidationError with the policy's messages), record
    `password.changed` (metadata.method: "reset" or "account") and mail the person a notice.

    The save sends accounts' password_changed, on which every login session and offline
    grant of the person ends (OWASP ASVS 3.3.3; apps/tokens/receivers.py): whoever knew the
    old password keeps nothing it opened — the browser that made the change included, which
    signs in again with the new password."""
    validate_password(password, user=user)
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        emit(
            EventType.PASSWORD_CHANGED,
            user_id=user.pk,
            actor_id=user.pk,
            resource_type="user",
            resource_id=user.pk,
            metadata={"method": method},
        )
        security_notice(user=user, kind="password_changed", request=request)
