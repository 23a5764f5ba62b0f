"""A person's second factors: TOTP devices, WebAuthn credentials (passkeys), recovery codes.

apps.mfa.services is the only writer of these rows; apps.mfa.selectors reads them for pages
and the console without ever returning a secret.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class TotpDevice(models.Model):
    """An RFC 6238 authenticator app. The shared secret is sealed with AES-256-GCM under the
    key-encryption key (apps.core.sealing), with associated data naming this row's id."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_devices"
    )
    name = models.CharField(max_length=64)
    # 96-bit nonce followed by the AES-256-GCM ciphertext of the base32 secret.
    sealed_secret = models.BinaryField()
    kek_id = models.CharField(max_length=8)
    created_at = models.DateTimeField()
    # Unconfirmed until the person typed a first code: it is no factor before that.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # RFC 6238 §5.2: the time step (T) of the last accepted code; that step and older ones
    # are refused, so each code is accepted once.
    last_used_step = models.BigIntegerField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.Index(fields=["user", "created_at"], name="mfa_totp_user_idx"),
        ]

    def __str__(self) -> str:
        return f"TOTP {self.name} of {self.user_id}"


class WebAuthnCredential(models.Model):
    """A public-key credential (WebAuthn L2 §4 "public key credential source", as the relying
    party keeps it): a security key or a passkey."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webauthn_credentials"
    )
    name = models.CharField(max_length=64)
    # WebAuthn L2 §5.1 rawId: at most 1023 bytes (§6.5.1), unique across all people.
    credential_id = models.BinaryField(max_length=1023, unique=True)
    public_key = models.BinaryField()  # COSE_Key (RFC 8152 §7) as the authenticator sent it
    sign_count = models.BigIntegerField(default=0)  # WebAuthn L2 §6.1.1 signature counter
    transports = models.JSONField(default=list, blank=True)
    # WebAuthn L3 §6.1 flags BE (may be synced: a passkey) and BS (is backed up now).
    backup_eligible = models.BooleanField(default=False)
    backup_state = models.BooleanField(default=False)
    # The user.id of the registration (WebAuthn L2 §5.4.3): random bytes, never the email.
    user_handle = models.BinaryField(max_length=64)
    discoverable = models.BooleanField(default=False)
    aaguid = models.CharField(max_length=36, blank=True)
    created_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Set when an assertion's counter did not grow (WebAuthn L2 §6.1.1: a cloned
    # authenticator); the credential is refused from then on, until an operator resets it.
    clone_detected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.Index(fields=["user", "created_at"], name="mfa_webauthn_user_idx"),
        ]

    def __str__(self) -> str:
        return f"WebAuthn {self.name} of {self.user_id}"


class RecoveryCodeSet(models.Model):
    """A person's current recovery codes (NIST SP 800-63B §5.1.2 look-up secrets); creating
    a new set deletes the old one, which voids its codes."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes"
    )
    created_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Which IDP_SECRET_KEY keyed the codes' hashes (apps.core.secret_keys.key_id); "" for
    # sets made before it was recorded. `manage.py secret_key_status` counts them.
    key_id = models.CharField(max_length=8, blank=True, default="", db_default="")

    def __str__(self) -> str:
        return f"recovery codes of {self.user_id}"


class RecoveryCode(models.Model):
    code_set = models.ForeignKey(RecoveryCodeSet, on_delete=models.CASCADE, related_name="codes")
    # HMAC-SHA256 of the normalized code (apps.mfa.recovery); never the code itself.
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(fields=["code_set", "code_hash"], name="mfa_recovery_code_uniq")
        ]

    def __str__(self) -> str:
        return f"recovery code {self.pk}"


class FactorKind(models.TextChoices):
    """The kinds of second factor; the value is the resource_type of their events."""

    TOTP = "totp", "Authenticator app"
    WEBAUTHN = "webauthn", "Security key or passkey"
    RECOVERY_CODES = "recovery_codes", "Recovery codes"
