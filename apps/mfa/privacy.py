"""What mfa holds about a person, for their GDPR export and erasure (core.privacy): their
second factors. The export names them (kind, name, when added and last used, the WebAuthn
flags), never a secret, public key or code hash: those identify the person's devices and
are no use to them outside Tessera. Erasure deletes every factor: an erased account cannot
sign in, and a TOTP secret or credential id left behind would still tie it to a device."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from apps.accounts.models import User
from apps.core.privacy import Section
from apps.mfa.models import RecoveryCodeSet, TotpDevice, WebAuthnCredential
from apps.mfa.selectors import factors_of


class MfaData:
    def export(self, user: User) -> dict[str, Section]:
        return {"second_factors": _factors(user)}

    def erase(self, user: User, *, pseudonym: str, actor_id: object) -> None:
        TotpDevice.objects.filter(user=user).delete()
        WebAuthnCredential.objects.filter(user=user).delete()
        RecoveryCodeSet.objects.filter(user=user).delete()


def _factors(user: User) -> Iterator[dict[str, Any]]:
    for factor in factors_of(user):
        yield {
            "kind": factor.kind.value,
            "id": factor.id,
            "name": factor.name,
            "created_at": factor.created_at,
            "last_used_at": factor.last_used_at,
            "passkey": factor.passkey,
            "cloned": factor.cloned,
            "recovery_codes_remaining": factor.remaining,
        }
