"""Pushed authorization requests (RFC 9126): their store. The endpoint is apps/tokens/par.py.

A client POSTs its authorization request's parameters to /oauth/par, authenticated as at the
token endpoint (§2); they are checked by authorize's checks that need no browser (§2.1: as
any authorization request is), then kept in Redis under a random `request_uri` (§2.2) for
PAR_LIFETIME seconds. /oauth/authorize takes the record with one GETDEL (single use, §4) when
the browser brings `client_id` and `request_uri`, and proceeds with the pushed parameters.
The record carries its own expiry: Redis keeps it a little longer, so an expired request_uri
is still recognized and its error can go to the client's (already validated) redirect URI.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import zlib
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import RedisError

from apps.core import sealing
from apps.core.redis import get_redis

# RFC 9126 §2.2: "urn:ietf:params:oauth:request_uri:" followed by a random reference.
URN_PREFIX = "urn:ietf:params:oauth:request_uri:"
_KEY = "tessera:par:"
# Seconds Redis keeps a record past its expiry, to say "expired" rather than "unknown".
EXPIRED_GRACE = 60
MAX_REQUEST_URI = len(URN_PREFIX) + 64  # ours: the prefix and 43 characters


class PushedUnavailable(Exception):
    """Redis could not be reached: nothing can be pushed or taken (fail closed)."""


@dataclass(frozen=True)
class Pushed:
    client_id: str
    params: dict[str, str]
    expires_at: float  # epoch seconds

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at


def pushed_store(*, client_id: str, params: dict[str, str]) -> tuple[str, int]:
    """Keeps a validated request; returns its request_uri and lifetime in seconds."""
    reference = secrets.token_urlsafe(32)  # 256 bits (RFC 9126 §7.1: not guessable)
    lifetime = settings.PAR_LIFETIME
    record = {"client_id": client_id, "params": params, "expires_at": time.time() + lifetime}
    try:
        get_redis().set(_KEY + reference, json.dumps(record), ex=lifetime + EXPIRED_GRACE)
    except RedisError as error:
        raise PushedUnavailable(str(error)) from None
    return URN_PREFIX + reference, lifetime


def pushed_take(request_uri: str) -> Pushed | None:
    """The pushed request, deleted as it is read (RFC 9126 §4: one use; also when it turns out
    expired or another client's); None for one never issued or already used."""
    if not request_uri.startswith(URN_PREFIX) or len(request_uri) > MAX_REQUEST_URI:
        return None
    try:
        raw = get_redis().getdel(_KEY + request_uri.removeprefix(URN_PREFIX))
    except RedisError as error:
        raise PushedUnavailable(str(error)) from None
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        return Pushed(str(record["client_id"]), dict(record["params"]), float(record["expires_at"]))
    except (ValueError, TypeError, KeyError):
        return None


# --- carried through the browser's later round trips (sign-in, step-up, consent) ---------------
# The request_uri is spent at the first authorize; what the browser brings back afterwards is
# the pushed parameters sealed (AES-256-GCM under the key-encryption key, apps.core.sealing):
# the browser can neither read them (RFC 9126 §1: the request's contents stay out of the front
# channel) nor change them, and a sealed blob is honoured for `max_age` seconds only.
_CARRY_AAD = b"tessera.authorize.pushed"


def pushed_seal(params: dict[str, str]) -> str:
    payload = json.dumps({"p": params, "t": time.time()}, separators=(",", ":")).encode()
    sealed, kek = sealing.seal(zlib.compress(payload), aad=_CARRY_AAD)
    return f"{kek}.{base64.urlsafe_b64encode(sealed).decode().rstrip('=')}"


def pushed_open(blob: str, *, max_age: float) -> dict[str, str] | None:
    """The sealed parameters, or None: altered, sealed under an unknown key, or too old."""
    kek, _, body = blob.partition(".")
    if not kek or not body or len(blob) > 16_384:
        return None
    try:
        sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        payload = json.loads(zlib.decompress(sealing.unseal(sealed, sealed_by=kek, aad=_CARRY_AAD)))
    except (ValueError, zlib.error, sealing.UnsealError):
        return None
    params, at = payload.get("p"), payload.get("t")
    if not isinstance(params, dict) or not isinstance(at, int | float):
        return None
    if not 0 <= time.time() - at <= max_age:
        return None
    return {str(k): str(v) for k, v in params.items()}
