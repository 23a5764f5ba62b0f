"""Secrets sealed at rest under the key-encryption key (settings.KEY_ENCRYPTION_KEY).

AES-256-GCM with a fresh 96-bit nonce per seal (NIST SP 800-38D §8.2) and associated data
that names the row a secret belongs to, so a ciphertext copied to another row does not open.
A sealed value is the nonce followed by the ciphertext and tag; beside it the row keeps the
kek_id of the key that sealed it, so a value sealed under a key in
settings.KEY_ENCRYPTION_KEYS_OLD still opens while it waits to be re-sealed (key rotation).

Used by apps.keys (signing keys), apps.mfa (TOTP secrets), apps.federation (providers' client
secrets) and apps.tokens (pushed requests carried through the browser); each chooses its own
AAD. Stored rows move to the current key with `manage.py reseal` (apps.core.reseal).
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

NONCE_BYTES = 12  # 96-bit GCM nonce (NIST SP 800-38D §8.2)


class UnsealError(Exception):
    """A sealed value does not open; the subclass says why."""


class UnknownKek(UnsealError):
    """Sealed under a key-encryption key that is neither the current one nor an old one."""


class SealAltered(UnsealError):
    """The key is known but the value does not decrypt: the row or its AAD was altered."""


def kek_id(kek: bytes) -> str:
    """Names a key-encryption key without revealing it: 8 hex digits of its SHA-256."""
    return hashlib.sha256(kek).hexdigest()[:8]


def current_kek_id() -> str:
    return kek_id(settings.KEY_ENCRYPTION_KEY)


def seal(plaintext: bytes, *, aad: bytes) -> tuple[bytes, str]:
    """(nonce + ciphertext, kek_id) under the current key-encryption key."""
    kek = settings.KEY_ENCRYPTION_KEY
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, plaintext, aad), kek_id(kek)


def unseal(sealed: bytes, *, sealed_by: str, aad: bytes) -> bytes:
    """Open a value sealed under the current key-encryption key or one of the old ones."""
    keks = {
        kek_id(kek): kek for kek in (*settings.KEY_ENCRYPTION_KEYS_OLD, settings.KEY_ENCRYPTION_KEY)
    }
    kek = keks.get(sealed_by)
    if kek is None:
        raise UnknownKek(sealed_by)
    try:
        return AESGCM(kek).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise SealAltered(sealed_by) from None
