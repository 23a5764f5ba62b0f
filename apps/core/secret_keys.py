"""The secret key and its fallbacks (IDP_SECRET_KEY, IDP_SECRET_KEY_FALLBACKS).

A new key signs and keys everything from the moment it is configured; an old key listed as a
fallback only still verifies what it made, until what it made has expired or has been made
again under the new key on its next use (NIST SP 800-57 Part 1 Rev. 5 §5.3: a key's
originator-usage period ends before its recipient-usage period; OWASP ASVS 5.0 V11.1.1,
V13.3.4). Django's own signatures (sessions, their authentication hash, django.core.signing)
already try SECRET_KEY_FALLBACKS; this module serves Tessera's keyed hashes, which must also
say *which* key matched, so that a stored value made under a fallback is re-made.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core import signing
from django.utils.crypto import salted_hmac


def secret_keys() -> tuple[str, ...]:
    """The current key first, then the fallbacks (newest first, as configured)."""
    return (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)


@lru_cache(maxsize=8)
def key_id(secret: str) -> str:
    """A short public name of a key (8 hex digits, a keyed hash of nothing under it): stored
    beside what the key made, so that `manage.py secret_key_status` counts what an old key
    still holds. It tells nothing of the key itself."""
    mac = salted_hmac("tessera.secret-key-id", "", secret=secret, algorithm="sha256")
    return mac.hexdigest()[:8]


def current_key_id() -> str:
    return key_id(settings.SECRET_KEY)


def unsign(value: str, *, salt: str, max_age: int | None = None) -> tuple[Any, bool]:
    """django.core.signing.loads, and whether a fallback made the signature (then the caller
    signs it again under the current key). Raises what loads raises; the current key is tried
    alone first, so a value signed under it costs what it always did."""
    try:
        return signing.loads(value, salt=salt, max_age=max_age, fallback_keys=[]), False
    except signing.SignatureExpired:
        raise
    except signing.BadSignature:
        if not settings.SECRET_KEY_FALLBACKS:
            raise
    first, *others = settings.SECRET_KEY_FALLBACKS
    older: list[str | bytes] = list(others)
    return signing.loads(value, salt=salt, max_age=max_age, key=first, fallback_keys=older), True
