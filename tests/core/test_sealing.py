"""Secrets sealed under the key-encryption key (AES-256-GCM with an AAD naming the row)."""

from __future__ import annotations

import os

import pytest

from apps.core import sealing


def test_sealed_value_opens_with_its_aad_only() -> None:
    sealed, sealed_by = sealing.seal(b"secret", aad=b"row 1")
    assert b"secret" not in sealed
    assert sealing.unseal(sealed, sealed_by=sealed_by, aad=b"row 1") == b"secret"
    with pytest.raises(sealing.SealAltered):
        sealing.unseal(sealed, sealed_by=sealed_by, aad=b"row 2")


def test_value_sealed_under_an_old_kek_opens_and_an_unknown_one_is_named(settings) -> None:
    old = os.urandom(32)
    settings.KEY_ENCRYPTION_KEY = old
    sealed, sealed_by = sealing.seal(b"secret", aad=b"a")
    settings.KEY_ENCRYPTION_KEY = os.urandom(32)
    with pytest.raises(sealing.UnknownKek):
        sealing.unseal(sealed, sealed_by=sealed_by, aad=b"a")
    settings.KEY_ENCRYPTION_KEYS_OLD = (old,)
    assert sealing.unseal(sealed, sealed_by=sealed_by, aad=b"a") == b"secret"
    assert sealed_by != sealing.current_kek_id()


@pytest.mark.parametrize("sealed", [b"", b"short", os.urandom(40)])
def test_truncated_or_altered_value_is_seal_altered(sealed: bytes) -> None:
    with pytest.raises(sealing.SealAltered):
        sealing.unseal(sealed, sealed_by=sealing.current_kek_id(), aad=b"a")
