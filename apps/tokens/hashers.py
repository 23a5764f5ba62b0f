from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.hashers import BasePasswordHasher
from django.utils.crypto import constant_time_compare, salted_hmac

from apps.core.secret_keys import current_key_id, key_id, secret_keys

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

_KEY_SALT = "tessera.client-secret"
ALGORITHM = "hmac_sha256"


class Match(enum.Enum):
    NONE = "none"
    CURRENT = "current"  # made under the current key, in the current form
    STALE = "stale"  # made under a fallback, or before hashes named their key: store it again


def client_secret_encode(secret: str) -> str:
    """`hmac_sha256$<key id>$<hex>`: the key id (apps.core.secret_keys.key_id) says which
    IDP_SECRET_KEY made the hash, for `manage.py secret_key_status`."""
    key = settings.SECRET_KEY
    return f"{ALGORITHM}${key_id(key)}${_digest(secret, key)}"


def client_secret_verify(secret: str, encoded: str) -> Match:
    """Whether `secret` is the one `encoded` was made from, and under which key (the current
    one, or a fallback while IDP_SECRET_KEY rotates). Hashes made before they named their key
    (`hmac_sha256$<hex>`) are tried under every key."""
    kid, expected = _parts(encoded)
    if kid is None:
        matched = [constant_time_compare(_digest(secret, key), expected) for key in secret_keys()]
        return Match.STALE if any(matched) else Match.NONE
    for position, key in enumerate(secret_keys()):
        if key_id(key) == kid:
            if not constant_time_compare(_digest(secret, key), expected):
                return Match.NONE
            return Match.CURRENT if position == 0 else Match.STALE
    return Match.NONE  # made under a key no longer configured


def client_secret_key_id(encoded: str) -> str | None:
    """The id of the key that made the hash; None for a hash older than key ids."""
    return _parts(encoded)[0]


def _parts(encoded: str) -> tuple[str | None, str]:
    fields = encoded.split("$")
    if len(fields) == 3:
        return fields[1], fields[2]
    return None, fields[-1]


def _digest(secret: str, key: str) -> str:
    return salted_hmac(_KEY_SALT, secret, secret=key, algorithm="sha256").hexdigest()


class ClientSecretHasher(BasePasswordHasher):
    """Keyed HMAC-SHA256 for client secrets, which we generate with 256 bits of entropy.

    A slow password hash (PBKDF2, argon2) defends low-entropy human passwords against
    guessing; a random 256-bit secret cannot be guessed, so the slow hash would only cap the
    token endpoint at a few requests per second per core. The key (from IDP_SECRET_KEY, and
    its fallbacks while it rotates) means a stolen table alone verifies nothing.
    Never used for user passwords: it is not first in PASSWORD_HASHERS.
    """

    algorithm = ALGORITHM

    def salt(self) -> str:
        return ""  # random secrets need no salt; the HMAC key already makes hashes site-specific

    def encode(self, password: str, salt: str) -> str:
        return client_secret_encode(password)

    def decode(self, encoded: str) -> dict[str, str]:
        return {"algorithm": self.algorithm, "hash": _parts(encoded)[1], "salt": ""}

    def verify(self, password: str, encoded: str) -> bool:
        return client_secret_verify(password, encoded) is not Match.NONE

    def must_update(self, encoded: str) -> bool:
        return client_secret_key_id(encoded) != current_key_id()

    def safe_summary(self, encoded: str) -> dict[str | _StrPromise, Any]:
        return {"algorithm": self.algorithm, "hash": _parts(encoded)[1][:6] + "…"}

    def harden_runtime(self, password: str, encoded: str) -> None:
        pass  # constant cost already
