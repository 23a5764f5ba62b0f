"""Recovery codes: NIST SP 800-63B §5.1.2 look-up secrets, ten per person, each used once.

Each code is 16 characters of the RFC 4648 base32 alphabet from `secrets` (80 bits; §5.1.2.1
asks for a CSPRNG and at least 20 bits), shown once in groups of four. Stored as
HMAC-SHA256 under a key derived from SECRET_KEY, never in clear. §5.1.2.2 wants look-up secrets
under 112 bits salted and hashed with a password-hashing KDF; a keyed hash whose key is not in
the database (the §5.1.1.2 "secret salt") resists the offline attack that rule is about just
as well for 80-bit random codes, and keeps a code findable by its hash: one indexed query per
attempt rather than ten argon2 checks. Online guessing is for the second-factor counters.
Hashes under SECRET_KEY_FALLBACKS are still found, so rotating SECRET_KEY keeps the codes
while the old key is a fallback. Unused codes cannot be hashed again under the new key (only
their hashes are kept), so a set records which key made it (`key_id`) and
`manage.py secret_key_status` counts the sets an old key still holds.

A code is spent by one conditional UPDATE (… WHERE used_at IS NULL): PostgreSQL re-checks
the condition after waiting on a concurrent update of the row, so two uses of one code at
once cannot both succeed.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from apps.accounts.models import User
from apps.core.events import EventType, emit
from apps.core.secret_keys import current_key_id, secret_keys
from apps.mfa.errors import FactorNotFound, MalformedInput, VerificationFailed
from apps.mfa.models import RecoveryCode, RecoveryCodeSet

CODE_COUNT = 10
CODE_LENGTH = 16
GROUP = 4
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 §6 base32: 5 bits a character
_HMAC_SALT = "tessera.mfa.recovery_code"


def recovery_codes_generate(*, user: User, now: datetime | None = None) -> list[str]:
    """A new set of codes, returned once (formatted XXXX-XXXX-XXXX-XXXX); the old set, used
    or not, stops working."""
    now = now or timezone.now()
    codes = [_new_code() for _ in range(CODE_COUNT)]
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # regenerations take turns
        replaced = RecoveryCodeSet.objects.filter(user=user).delete()[0] > 0
        code_set = RecoveryCodeSet.objects.create(
            user=user, created_at=now, key_id=current_key_id()
        )
        RecoveryCode.objects.bulk_create(
            RecoveryCode(code_set=code_set, code_hash=_hash(code, settings.SECRET_KEY))
            for code in codes
        )
        emit(
            EventType.MFA_ENROLLED,
            user_id=user.pk,
            resource_type="recovery_codes",
            resource_id=code_set.pk,
            metadata={"count": CODE_COUNT, "replaced": replaced},
        )
    return [_format(code) for code in codes]


def recovery_code_use(*, user: User, code: str, now: datetime | None = None) -> int:
    """Spend one of the person's codes; returns how many remain. Records
    mfa.recovery_code_used, or mfa.failed and raises an MfaError."""
    now = now or timezone.now()
    try:
        normalized = _normalize(code)
        with transaction.atomic():
            set_id = RecoveryCodeSet.objects.filter(user=user).values_list("id", flat=True).first()
            if set_id is None:
                raise FactorNotFound("no recovery codes")
            # No join in this UPDATE, so its WHERE is re-checked on the locked row version.
            spent = RecoveryCode.objects.filter(
                code_set_id=set_id, code_hash__in=_hashes(normalized), used_at__isnull=True
            ).update(used_at=now)
            if spent != 1:
                raise VerificationFailed("not a recovery code of this account, or used already")
            RecoveryCodeSet.objects.filter(pk=set_id).update(last_used_at=now)
            remaining = RecoveryCode.objects.filter(code_set_id=set_id, used_at__isnull=True)
            left = remaining.count()
            emit(
                EventType.MFA_RECOVERY_CODE_USED,
                user_id=user.pk,
                resource_type="recovery_codes",
                resource_id=set_id,
                metadata={"remaining": left},
            )
    except (MalformedInput, VerificationFailed, FactorNotFound) as error:
        emit(
            EventType.MFA_FAILED,
            user_id=user.pk,
            resource_type="recovery_codes",
            success=False,
            error_code=error.error_code,
        )
        raise
    return left


def _new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def _format(code: str) -> str:
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def _normalize(code: str) -> str:
    """As typed: any case, with or without the dashes and spaces."""
    normalized = "".join(code.split()).replace("-", "").upper()
    if len(normalized) != CODE_LENGTH or not all(c in ALPHABET for c in normalized):
        raise MalformedInput(f"a recovery code is {CODE_LENGTH} letters and digits")
    return normalized


def _hash(code: str, secret: str) -> str:
    return salted_hmac(_HMAC_SALT, code, secret=secret, algorithm="sha256").hexdigest()


def _hashes(code: str) -> list[str]:
    return [_hash(code, key) for key in secret_keys()]
