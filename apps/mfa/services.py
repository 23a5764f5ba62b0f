"""Removing second factors: by the person (after a fresh authentication) and by an operator.
The person's removals are announced by the security page (apps/mfa/views.py), the operator's
reset here (apps/mfa/notices.py).

Enrolment and verification live with each factor: apps.mfa.totp, apps.mfa.passkeys,
apps.mfa.recovery.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.core.events import EventType, emit
from apps.mfa.errors import FactorNotFound, ReauthenticationRequired
from apps.mfa.models import (
    FactorKind,
    RecoveryCodeSet,
    TotpDevice,
    WebAuthnCredential,
)
from apps.mfa.notices import factors_reset_notice

# How recent the authentication that allows removing a factor must be (OWASP ASVS 4.0.3
# V3.7.1: re-authentication before a sensitive account change).
REAUTHENTICATION_MAX_AGE = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=30)  # a timestamp this far in the future is still believed


def factor_remove(
    *,
    user: User,
    kind: str,
    factor_id: uuid.UUID | str,
    reauthenticated_at: datetime | None,
    now: datetime | None = None,
) -> None:
    """Remove one of the person's factors. `reauthenticated_at`: when the caller last saw
    them prove the password or another factor; older than REAUTHENTICATION_MAX_AGE (or None)
    raises ReauthenticationRequired and removes nothing."""
    now = now or timezone.now()
    if (
        reauthenticated_at is None
        or reauthenticated_at > now + CLOCK_SKEW
        or now - reauthenticated_at > REAUTHENTICATION_MAX_AGE
    ):
        raise ReauthenticationRequired("confirm it is you (password or another factor) first")
    try:
        factor_uuid = uuid.UUID(str(factor_id))
    except ValueError:
        raise FactorNotFound("no such factor") from None
    with transaction.atomic():
        name = ""
        found: TotpDevice | WebAuthnCredential | RecoveryCodeSet | None
        if kind == FactorKind.TOTP:
            found = TotpDevice.objects.filter(user=user, pk=factor_uuid).first()
            name = found.name if found else ""
        elif kind == FactorKind.WEBAUTHN:
            passkey = WebAuthnCredential.objects.filter(user=user, pk=factor_uuid).first()
            found = passkey
            name = passkey.name if passkey else ""
        elif kind == FactorKind.RECOVERY_CODES:
            found = RecoveryCodeSet.objects.filter(user=user, pk=factor_uuid).first()
        else:
            raise FactorNotFound(f"no factor kind {kind!r}")
        if found is None:
            raise FactorNotFound("no such factor")
        found.delete()
        emit(
            EventType.MFA_REMOVED,
            user_id=user.pk,
            actor_id=user.pk,
            resource_type=str(kind),
            resource_id=factor_uuid,
            metadata={"name": name} if name else {},
        )


def mfa_reset(*, user: User, actor_id: object) -> dict[str, int]:
    """An operator removes every factor of the person (lost phone and codes); returns how
    many of each kind went. Records mfa.reset, even when there was nothing to remove, and
    mails the person that an administrator did it (OWASP ASVS 5.0 6.3.7: a help desk talked
    into a reset is how a second factor is taken over), once the reset has committed."""
    with transaction.atomic():
        removed = {
            FactorKind.TOTP.value: TotpDevice.objects.filter(user=user).delete()[0],
            FactorKind.WEBAUTHN.value: WebAuthnCredential.objects.filter(user=user).delete()[0],
            # The set and its codes: count the sets, not their rows.
            FactorKind.RECOVERY_CODES.value: RecoveryCodeSet.objects.filter(user=user)
            .delete()[1]
            .get("mfa.RecoveryCodeSet", 0),
        }
        emit(
            EventType.MFA_RESET,
            user_id=user.pk,
            actor_id=actor_id,
            resource_type="user",
            resource_id=user.pk,
            metadata={"removed": removed},
        )
    factors_reset_notice(user=user, removed=removed)
    return removed
