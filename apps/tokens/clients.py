"""Clients by client_id, cached in the process: every token, revocation and introspection
request authenticates one, and a database round trip for it cost more than the token's whole
cryptography. Changes to a client (secret, redirect URIs, removal) reach every process
within CACHE_SECONDS."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from apps.tokens.models import Client

CACHE_SECONDS = 30.0
MAX_ENTRIES = 10_000  # bounded: client_ids come from the network

_lock = threading.Lock()
_cache: OrderedDict[str, tuple[float, Client]] = OrderedDict()


def client_by_id(client_id: str) -> Client | None:
    """The registered client, or None. Treat the instance as read-only: it is shared."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(client_id)
        if hit is not None and hit[0] > now:
            _cache.move_to_end(client_id)
            return hit[1]
    client: Client | None = Client.objects.filter(client_id=client_id).first()
    if client is None:
        return None  # unknown ids are not cached: a flood of them cannot evict real clients
    with _lock:
        _cache[client_id] = (now + CACHE_SECONDS, client)
        _cache.move_to_end(client_id)
        while len(_cache) > MAX_ENTRIES:
            _cache.popitem(last=False)
    return client


def clients_cache_clear() -> None:
    with _lock:
        _cache.clear()
