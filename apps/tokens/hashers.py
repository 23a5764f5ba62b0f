from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.hashers import BasePasswordHasher
from django.utils.crypto import constant_time_compare, salted_hmac

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

_KEY_SALT = "tessera.client-secret"


class ClientSecretHasher(BasePasswordHasher):
    """Keyed HMAC-SHA256 for client secrets, which we generate with 256 bits of entropy.

    A slow password hash (PBKDF2, argon2) defends low-entropy human passwords against
    guessing; a random 256-bit secret cannot be guessed, so the slow hash would only cap the
    token endpoint at a few requests per second per core. The key (from IDP_SECRET_KEY, and
    its fallbacks while it rotates) means a stolen table alone verifies nothing.
    Never used for user passwords: it is not first in PASSWORD_HASHERS.
    """

    algorithm = "hmac_sha256"

    def salt(self) -> str:
        return ""  # random secrets need no salt; the HMAC key already makes hashes site-specific

    def encode(self, password: str, salt: str) -> str:
        return f"{self.algorithm}${self._digest(password, settings.SECRET_KEY)}"

    def _digest(self, password: str, secret: str) -> str:
        return salted_hmac(_KEY_SALT, password, secret=secret, algorithm="sha256").hexdigest()

    def decode(self, encoded: str) -> dict[str, str]:
        algorithm, digest = encoded.split("$", 1)
        return {"algorithm": algorithm, "hash": digest, "salt": ""}

    def verify(self, password: str, encoded: str) -> bool:
        expected = self.decode(encoded)["hash"]
        keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
        return any(constant_time_compare(self._digest(password, key), expected) for key in keys)

    def safe_summary(self, encoded: str) -> dict[str | _StrPromise, Any]:
        return {"algorithm": self.algorithm, "hash": encoded.split("$", 1)[1][:6] + "…"}

    def harden_runtime(self, password: str, encoded: str) -> None:
        pass  # constant cost already
