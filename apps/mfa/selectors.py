"""What the console and the person's security page show of their factors: names, kinds and
times, never a secret, key or code hash."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, OuterRef, Q

from apps.accounts.models import User
from apps.mfa.models import FactorKind, RecoveryCodeSet, TotpDevice, WebAuthnCredential


@dataclass(frozen=True)
class Factor:
    kind: FactorKind
    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None
    # WebAuthn: may be synced between devices (BE flag), a passkey; flagged as cloned.
    passkey: bool = False
    cloned: bool = False
    remaining: int | None = None  # recovery codes left unused


def factors_of(user: User) -> list[Factor]:
    """The person's confirmed factors, oldest first within each kind (three queries)."""
    factors = [
        Factor(FactorKind.TOTP, d.id, d.name, d.created_at, d.last_used_at)
        for d in TotpDevice.objects.filter(user=user, confirmed_at__isnull=False)
        .only("id", "name", "created_at", "last_used_at")
        .order_by("created_at", "id")
    ]
    factors += [
        Factor(
            FactorKind.WEBAUTHN,
            c.id,
            c.name,
            c.created_at,
            c.last_used_at,
            passkey=c.backup_eligible,
            cloned=c.clone_detected_at is not None,
        )
        for c in WebAuthnCredential.objects.filter(user=user)
        .only("id", "name", "created_at", "last_used_at", "backup_eligible", "clone_detected_at")
        .order_by("created_at", "id")
    ]
    code_set = (
        RecoveryCodeSet.objects.filter(user=user)
        .annotate(unused=Count("codes", filter=Q(codes__used_at__isnull=True)))
        .first()
    )
    if code_set is not None:
        factors.append(
            Factor(
                FactorKind.RECOVERY_CODES,
                code_set.id,
                str(FactorKind.RECOVERY_CODES.label),
                code_set.created_at,
                code_set.last_used_at,
                remaining=code_set.unused,
            )
        )
    return factors


def has_second_factor(user: User) -> bool:
    """A confirmed TOTP device or a usable WebAuthn credential (recovery codes alone are a
    fallback, not a factor of their own)."""
    return (
        TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()
        or WebAuthnCredential.objects.filter(user=user, clone_detected_at__isnull=True).exists()
    )


def second_factor_exists(user_ref: str = "pk") -> ExpressionWrapper[Q]:
    """has_second_factor as an expression on the user row named `user_ref`, for a query that
    reads the account anyway (the sign-in's `identify`: no statement of its own)."""
    totp = TotpDevice.objects.filter(user_id=OuterRef(user_ref), confirmed_at__isnull=False)
    keys = WebAuthnCredential.objects.filter(
        user_id=OuterRef(user_ref), clone_detected_at__isnull=True
    )
    return ExpressionWrapper(Q(Exists(totp)) | Q(Exists(keys)), output_field=BooleanField())


def recovery_code_sets_by_key() -> dict[str | None, int]:
    """How many people's recovery codes, with at least one code unused, each IDP_SECRET_KEY
    keyed, by key id (apps.core.secret_keys.key_id; None: made before sets recorded it).
    Unused codes stay under the key that made them until the person generates a new set."""
    rows = (
        RecoveryCodeSet.objects.filter(codes__used_at__isnull=True)
        .values("key_id")
        .annotate(sets=Count("id", distinct=True))
        .order_by()
    )
    return {row["key_id"] or None: row["sets"] for row in rows}
