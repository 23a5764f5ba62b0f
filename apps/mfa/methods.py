"""Which authentication methods (RFC 8176 `amr` values) a second factor proves: the contract
apps/sessions/levels.py reads as a level (docs/architecture.md, "Authentication levels and
step-up").

- a TOTP code (RFC 6238) or a recovery code (NIST SP 800-63B §5.1.2 look-up secret): `otp`;
- a WebAuthn assertion: `hwk` for a device-bound credential (not backup-eligible, WebAuthn
  L3 §6.1 BE flag clear), `swk` for one that may be synced (a passkey); then `mfa` when the
  authenticator verified the person (UV flag, WebAuthn L2 §6.1) without saying how, or `user`
  for presence alone (RFC 8176 §2 "user": user presence test).
"""

from __future__ import annotations

from apps.mfa.models import WebAuthnCredential

OTP = ["otp"]


def amr_for_webauthn(credential: WebAuthnCredential, *, user_verified: bool) -> list[str]:
    key = "swk" if credential.backup_eligible else "hwk"
    return [key, "mfa" if user_verified else "user"]


def device_bound(credential: WebAuthnCredential) -> bool:
    """A credential that proves `hwk` (level 3): not backup-eligible, never copied off."""
    return not credential.backup_eligible
