"""The signing keys' readiness check (settings.READINESS_CHECKS; apps/core/health.py)."""

from __future__ import annotations

from apps.keys.keys import ALGORITHMS, signing_key


def signing_keys_state() -> str:
    """Each algorithm's active key opens with this process's key-encryption key. A pod
    started with a wrong IDP_KEY_ENCRYPTION_KEY can sign no token: it gets no traffic, and a
    rollout of such pods halts. Raises KeyUnsealError, whose message names the key to
    configure. Reads the process's snapshot of the keys: no query while it is current."""
    return ", ".join(f"{alg} {signing_key(alg).kid[:8]}" for alg in ALGORITHMS)
