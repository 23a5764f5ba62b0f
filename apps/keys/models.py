from __future__ import annotations

from django.db import models


class SigningAlg(models.TextChoices):
    """Every algorithm a token can be signed with; each keeps its own key chain."""

    RS256 = "RS256", "RS256 (RSA PKCS#1 v1.5 with SHA-256, the OIDC default)"
    ES256 = "ES256", "ES256 (ECDSA P-256 with SHA-256)"
    EDDSA = "EdDSA", "EdDSA (Ed25519)"


class SigningKey(models.Model):
    """One signing key of ID tokens and JWT access tokens; apps.keys.keys owns its lifecycle.

    The private key is sealed with AES-256-GCM under settings.KEY_ENCRYPTION_KEY, never stored
    in clear. State is read from the timestamps only: a key signs from `activates_at` until
    `retired_at` (or, unretired, while it is the newest activated key of its algorithm) and is
    published in the JWKS from creation until its last token has expired after `retired_at`.

    The table keeps the name it had in apps.tokens (moved by a state-only migration).
    """

    # RFC 7638 JWK thumbprint (SHA-256, base64url), so a kid names exactly one public key.
    kid = models.CharField(max_length=64, unique=True)
    alg = models.CharField(max_length=8, choices=SigningAlg.choices)
    # 1, 2, 3 ... per algorithm; unique, so two concurrent rotations cannot both add a key.
    generation = models.PositiveIntegerField()
    public_jwk = models.JSONField()
    # 96-bit nonce followed by the AES-256-GCM ciphertext of the PKCS#8 DER private key.
    sealed_private_key = models.BinaryField()
    # First 8 hex digits of SHA-256 of the key-encryption key that sealed it.
    kek_id = models.CharField(max_length=8)
    created_at = models.DateTimeField()
    activates_at = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tokens_signing_key"
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(
                fields=["alg", "generation"], name="tokens_signing_key_alg_generation_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.alg} {self.kid}"
