"""Clients by client_id, cached in the process (apps.core.cache, name "clients"): every token,
revocation and introspection request authenticates one, and a database round trip for it cost
more than the token's whole cryptography. A change to a client (secret, redirect URIs, grant
types, removal) is published once it commits (apps.tokens.receivers) and reaches every process
within a second; with Redis unreachable, within CACHE_SECONDS."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus

from django.contrib.auth.hashers import check_password

from apps.core.cache import ProcessCache, publish_on_commit
from apps.core.events import EventType, emit
from apps.tokens.hashers import ALGORITHM, Match, client_secret_encode, client_secret_verify
from apps.tokens.models import Client

CACHE = "clients"  # the cache's name on the cache channel
CACHE_SECONDS = 30.0  # staleness bound while Redis (the invalidation channel) is unreachable
MAX_ENTRIES = 10_000  # bounded: client_ids come from the network

_cache: ProcessCache[Client] = ProcessCache(CACHE, max_age=CACHE_SECONDS, max_entries=MAX_ENTRIES)


def client_by_id(client_id: str) -> Client | None:
    """The registered client, or None (also for a client an operator disabled: every
    protocol endpoint refuses it as unknown). Treat the instance as read-only: it is shared.
    Unknown ids are not cached: a flood of them cannot evict real clients."""
    return _cache.get(client_id, lambda _previous: _client_load(client_id))


def _client_load(client_id: str) -> Client | None:
    client: Client | None = Client.objects.filter(
        client_id=client_id, disabled_at__isnull=True
    ).first()
    return client


def clients_cache_clear() -> None:
    """Drop this process's cached clients (publish(CACHE, client_id) reaches every process)."""
    _cache.invalidate()


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """Client id and secret from an HTTP Basic header (RFC 7617), each form-urlencoded
    (RFC 6749 §2.3.1); None when there is no Basic header or it does not decode."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


def authenticate(client_id: str, secret: str) -> Client | None:
    """The confidential client these credentials prove, or None (RFC 6749 §2.3.1). The
    secret is compared by its keyed hash in constant time (ClientSecretHasher), under the
    current IDP_SECRET_KEY and then its fallbacks."""
    if not secret:
        return None  # no secret is an empty one (whatever a column might hold)
    client = client_by_id(client_id) if client_id else None
    if client is None or client.client_type != Client.CLIENT_CONFIDENTIAL:
        return None
    stored = client.client_secret
    if not stored:
        return None
    if not stored.startswith(f"{ALGORITHM}$"):
        return client if check_password(secret, stored) else None  # another hasher's
    match = client_secret_verify(secret, stored)
    if match is Match.NONE:
        return None
    if match is Match.STALE:
        _secret_rekey(client, secret)
    return client


def _secret_rekey(client: Client, secret: str) -> None:
    """The secret verified under a fallback of IDP_SECRET_KEY (or its hash predates key
    ids): store its hash under the current key, so that the fallback can be dropped (one
    UPDATE, once). Conditional on the hash read, so that a secret rotated meanwhile stays."""
    Client.objects.filter(pk=client.pk, client_secret=client.client_secret).update(
        client_secret=client_secret_encode(secret)
    )
    publish_on_commit(CACHE, client.client_id)  # the cached copy holds the old hash


# RFC 6749 §5.2 invalid_client, the same words wherever a client fails to authenticate.
AUTHENTICATION_FAILED = (
    "Client authentication failed: send the client id and secret with HTTP Basic, or as "
    "client_id and client_secret in the body (RFC 6749 section 2.3.1); a client registered "
    "for mutual TLS presents its certificate and sends client_id (RFC 8705 section 2); only a "
    "public client sends its client_id alone."
)


@dataclass(frozen=True)
class Presented:
    """The client credentials a request carries and how: client_secret_basic,
    client_secret_post, or none (a client_id alone, or nothing); tls_client_auth or
    self_signed_tls_client_auth once a client_id alone named a client registered for them."""

    client_id: str
    secret: str | None
    method: str


def presented(authorization: str, client_id: str | None, client_secret: str | None) -> Presented:
    """RFC 6749 §2.3.1: HTTP Basic, else client_id and client_secret in the body."""
    basic = basic_credentials(authorization)
    if basic is not None:
        return Presented(basic[0], basic[1], "client_secret_basic")
    if client_secret is not None:
        return Presented(client_id or "", client_secret, "client_secret_post")
    return Presented(client_id or "", None, "none")


def authenticate_presented(credentials: Presented) -> Client | None:
    """The confidential client the credentials prove, or None."""
    if credentials.secret is None:
        return None
    return authenticate(credentials.client_id, credentials.secret)


def authentication_failed(credentials: Presented, *, endpoint: str) -> None:
    """Records a failed client authentication (RFC 6749 §5.2 invalid_client) at the token,
    introspection or revocation endpoint: the client id as given, the endpoint, and how the
    client tried; never the secret."""
    emit(
        EventType.CLIENT_AUTH_FAILED,
        success=False,
        resource_type="client",
        resource_id=credentials.client_id,
        error_code="invalid_client",
        metadata={
            "client_id": credentials.client_id[:200],
            "endpoint": endpoint,
            "method": credentials.method,
        },
    )
