"""Signing keys of ID tokens and JWT access tokens (RFC 9068): sealed at rest, rotated on a
schedule, published in the JWKS, served to the token code from an in-process snapshot.

Write side: keys_rotate() is the only writer of SigningKey rows. One key chain per algorithm
(every alg a client may pick for ID tokens plus settings.ACCESS_TOKEN_ALG, i.e. all three).
The timeline of a key, read from its timestamps only:

    created_at      published in the JWKS (the next key: publish_ahead() before it signs)
    activates_at    signs, until a newer key of its alg activates
    retired_at      stops signing (= the activates_at of the key that replaced it)
    retired_at + retired_publication()   its last token has expired: unpublished and deleted

Read side: signing_key(), verification_key(), jwks() and jwks_json() read one immutable
snapshot of the table holding the already parsed key objects, kept in the process cache
(apps.core.cache, name "keys"). keys_rotate() invalidates it in every process once it has
committed (one pub/sub message: within a second); it is also reloaded after CACHE_MAX_AGE
seconds (the bound while Redis is unreachable) and on a verification_key() miss (at most once
per MISS_RELOAD_INTERVAL). Between reloads the hot path runs no query and parses no key; a
reload parses only keys it has not seen before.

Lazy bootstrap: when a snapshot finds an algorithm with no signing key (a fresh install, before
beat first runs the rotation task), it runs keys_rotate() once, which creates the missing keys
(in the caller's transaction when there is one: `_bootstrap` bounds its wait on another
process's keys), so callers never have to bootstrap first. Deployments create them before the
web servers start (`manage.py rotate_keys --scheduled` in the migration Job).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from apps.core import sealing
from apps.core.cache import ProcessCache, publish_on_commit
from apps.core.errors import Unavailable
from apps.core.events import EventType, emit
from apps.core.sealing import kek_id as kek_id  # named here before it moved to core
from apps.keys.jose import JWKError, PublicKey, jwk_thumbprint, public_jwk, public_key_from_jwk
from apps.keys.models import SigningAlg, SigningKey

logger = logging.getLogger(__name__)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

# Every algorithm a token can be signed with; each keeps its own key chain.
ALGORITHMS: tuple[str, ...] = tuple(SigningAlg.values)
CACHE = "keys"  # the snapshot's name on the cache channel (apps.core.cache)
# Seconds a snapshot serves at most: the bound on staleness when no invalidation reaches the
# process (Redis unreachable). With Redis, a rotation reaches every process within a second.
CACHE_MAX_AGE = 30.0
MISS_RELOAD_INTERVAL = 1.0  # seconds between reloads caused by an unknown kid
DB_RETRY_INTERVAL = 1.0  # seconds a stale snapshot keeps serving when a reload fails
TOKEN_LEEWAY = timedelta(minutes=5)  # clock skew a relying party may allow on `exp`
ROTATE_ATTEMPTS = 3  # a concurrent rotation that inserted first makes ours re-read and retry
BOOTSTRAP_LOCK_WAIT = 3.0  # seconds a lazy bootstrap waits on another's uncommitted key


class SigningKeyError(Unavailable):
    """No usable signing key: the message says why and what to do. A request that needed one
    is answered 503 (core.errors.Unavailable); the grant's transaction rolls back, so the same
    code or refresh token works once the key opens again."""

    client_message = "The server cannot sign tokens right now. Try again later."
    retry_after = 30


class NoSigningKey(SigningKeyError):
    pass


class KeyUnsealError(SigningKeyError):
    pass


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """Signs: jwt.encode(claims, key=private_key, algorithm=alg, headers={"kid": kid})."""

    kid: str
    alg: str
    private_key: PrivateKey


@dataclass(frozen=True, slots=True)
class PublishedKey:
    kid: str
    alg: str
    public_key: PublicKey


# --- timeline ----------------------------------------------------------------------------


def publish_ahead() -> timedelta:
    """A new key is in the JWKS this long before it signs, so every relying party's cached
    JWKS (JWKS_MAX_AGE) already holds it, and a day at least."""
    return max(timedelta(seconds=settings.JWKS_MAX_AGE), timedelta(days=1))


def retired_publication() -> timedelta:
    """A retired key stays published until the last token it signed has expired."""
    longest = max(settings.ACCESS_TOKEN_LIFETIME, settings.ID_TOKEN_LIFETIME)
    return timedelta(seconds=longest) + TOKEN_LEEWAY


class _Lifecycle(Protocol):
    @property
    def activates_at(self) -> datetime: ...
    @property
    def retired_at(self) -> datetime | None: ...
    @property
    def generation(self) -> int: ...


_L = TypeVar("_L", bound=_Lifecycle)


def _signer(keys: Iterable[_L], now: datetime) -> _L | None:
    """The newest activated key that is not retired: the one that signs at `now`."""
    signing = [
        key
        for key in keys
        if key.activates_at <= now and (key.retired_at is None or now < key.retired_at)
    ]
    return max(signing, key=lambda key: (key.activates_at, key.generation), default=None)


def _published(key: _Lifecycle, now: datetime) -> bool:
    return key.retired_at is None or now < key.retired_at + retired_publication()


def signing_key_at(*, alg: str, now: datetime) -> SigningKey | None:
    """The row that signs tokens of `alg` at `now` (a database read; tokens use signing_key)."""
    return _signer(SigningKey.objects.filter(alg=alg), now)


def published_keys_at(*, now: datetime) -> list[SigningKey]:
    """The rows whose public keys are in the JWKS at `now`."""
    return [
        key for key in SigningKey.objects.order_by("alg", "-generation") if _published(key, now)
    ]


# --- keys, JWKs and sealing --------------------------------------------------------------


def _generate(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise SigningKeyError(f"unsupported signing algorithm {alg!r}: use one of {ALGORITHMS}")


def _aad(kid: str, alg: str) -> bytes:
    """Binds a sealed key to its row: a ciphertext copied to another kid or alg won't open."""
    return f"tessera signing key\x00{kid}\x00{alg}".encode()


def _seal(plaintext: bytes, *, kid: str, alg: str) -> tuple[bytes, str]:
    return sealing.seal(plaintext, aad=_aad(kid, alg))


def private_key_unseal(*, key: SigningKey) -> PrivateKey:
    """Open the sealed private key with IDP_KEY_ENCRYPTION_KEY or one of the old keys."""
    try:
        plaintext = sealing.unseal(
            bytes(key.sealed_private_key), sealed_by=key.kek_id, aad=_aad(key.kid, key.alg)
        )
    except sealing.UnknownKek:
        raise KeyUnsealError(
            f"signing key {key.kid} was sealed under key-encryption key {key.kek_id}, which is "
            "neither IDP_KEY_ENCRYPTION_KEY nor one of IDP_KEY_ENCRYPTION_KEYS_OLD: configure "
            "that key (as an old key) or rotate with `manage.py rotate_keys`"
        ) from None
    except sealing.SealAltered:
        raise KeyUnsealError(
            f"signing key {key.kid} does not decrypt under key-encryption key {key.kek_id}: "
            "the stored row was altered"
        ) from None
    private_key = serialization.load_der_private_key(plaintext, password=None)
    if (
        not isinstance(private_key, PrivateKey)
        or jwk_thumbprint(public_jwk(private_key.public_key())) != key.kid
    ):
        raise KeyUnsealError(f"signing key {key.kid} does not hold the key its kid names")
    return private_key


# --- rotation (the write side) -----------------------------------------------------------


def keys_rotate(
    *, now: datetime | None = None, immediate: bool = False, actor_id: object = None
) -> list[SigningKey]:
    """Bring every algorithm's key chain up to date at `now`; returns the keys it created.

    Scheduled (the hourly beat task): bootstrap an algorithm without a key; publish the next
    key publish_ahead() before the current one has signed KEY_ROTATION_DAYS; retire a key once
    its successor has activated; delete keys whose last token has expired; re-seal keys still
    sealed under an old key-encryption key. immediate=True (after a suspected compromise): a
    new key signs from `now` and every other key of its algorithm is retired at `now` (and
    stays published until its tokens have expired). `actor_id`: the operator who asked, on
    every key.rotated event this records.
    """
    now = now or timezone.now()
    for attempt in range(1, ROTATE_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                created = _rotate(now=now, immediate=immediate, actor_id=actor_id)
        except IntegrityError:
            # Another process added the same generation first: re-read its rows and go on.
            if attempt == ROTATE_ATTEMPTS:
                raise
            continue
        break
    publish_on_commit(CACHE)  # every process signs with the new keys within a second
    return created


def _rotate(*, now: datetime, immediate: bool, actor_id: object) -> list[SigningKey]:
    # Row locks serialize concurrent rotations over existing keys; the (alg, generation)
    # unique constraint catches the one race locks can't, two processes inserting a key.
    rows = list(SigningKey.objects.select_for_update().order_by("id"))
    created: list[SigningKey] = []
    for alg in ALGORITHMS:
        chain = [key for key in rows if key.alg == alg]
        new_key = _rotate_chain(alg, chain, now=now, immediate=immediate, actor_id=actor_id)
        if new_key is not None:
            created.append(new_key)
            rows.append(new_key)
    _delete_unpublished(rows, now=now, actor_id=actor_id)
    _reseal(rows, actor_id=actor_id)
    return created


def _rotate_chain(
    alg: str, chain: Sequence[SigningKey], *, now: datetime, immediate: bool, actor_id: object
) -> SigningKey | None:
    generation = max((key.generation for key in chain), default=0) + 1
    _retire_superseded(chain, now=now, actor_id=actor_id)
    signer = _signer(chain, now)
    if signer is None or immediate:
        reason = "bootstrap" if signer is None else "immediate"
        new_key = _create(
            alg,
            generation=generation,
            now=now,
            activates_at=now,
            reason=reason,
            actor_id=actor_id,
        )
        for key in chain:
            if key.retired_at is None:  # the signer, and a published-ahead key: both suspect
                _retire(key, at=now, replaced_by=new_key, actor_id=actor_id)
        _emit(new_key, "activated", actor_id, replaces=signer.kid if signer else None)
        return new_key

    pending = [key for key in chain if key.activates_at > now and key.retired_at is None]
    rotation = timedelta(days=settings.KEY_ROTATION_DAYS)
    if not pending and now >= signer.activates_at + rotation - publish_ahead():
        return _create(
            alg,
            generation=generation,
            now=now,
            activates_at=now + publish_ahead(),
            reason="scheduled",
            actor_id=actor_id,
        )
    return None


def _retire_superseded(chain: Sequence[SigningKey], *, now: datetime, actor_id: object) -> None:
    """A key stops signing when the next key activates: record that moment as retired_at."""
    activated = sorted(
        (
            key
            for key in chain
            if key.activates_at <= now
            and (key.retired_at is None or key.retired_at > key.activates_at)
        ),
        key=lambda key: (key.activates_at, key.generation),
    )
    for key, successor in pairwise(activated):
        if key.retired_at is None:
            _retire(key, at=successor.activates_at, replaced_by=successor, actor_id=actor_id)
            _emit(successor, "activated", actor_id, replaces=key.kid)


def _create(
    alg: str,
    *,
    generation: int,
    now: datetime,
    activates_at: datetime,
    reason: str,
    actor_id: object,
) -> SigningKey:
    private_key = _generate(alg)
    jwk = public_jwk(private_key.public_key())
    kid = jwk_thumbprint(jwk)
    der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sealed, sealed_by = _seal(der, kid=kid, alg=alg)
    key = SigningKey.objects.create(
        kid=kid,
        alg=alg,
        generation=generation,
        public_jwk={**jwk, "kid": kid, "alg": alg, "use": "sig"},
        sealed_private_key=sealed,
        kek_id=sealed_by,
        created_at=now,
        activates_at=activates_at,
    )
    _emit(key, "created", actor_id, reason=reason, activates_at=activates_at.isoformat())
    return key


def _retire(key: SigningKey, *, at: datetime, replaced_by: SigningKey, actor_id: object) -> None:
    key.retired_at = at
    key.save(update_fields=["retired_at"])
    published_until = at + retired_publication()
    _emit(
        key,
        "retired",
        actor_id,
        replaced_by=replaced_by.kid,
        published_until=published_until.isoformat(),
    )


def _delete_unpublished(rows: list[SigningKey], *, now: datetime, actor_id: object) -> None:
    for key in [key for key in rows if not _published(key, now)]:
        _emit(key, "removed", actor_id)
        key.delete()
        rows.remove(key)


def _reseal(rows: Iterable[SigningKey], *, actor_id: object) -> None:
    """Keys sealed under an old key-encryption key move to the current one."""
    current = kek_id(settings.KEY_ENCRYPTION_KEY)
    for key in rows:
        if key.kek_id == current:
            continue
        try:
            signing_key_reseal(key, actor_id=actor_id)
        except sealing.UnsealError as error:
            logger.error("cannot re-seal signing key %s: %r", key.kid, error)


def signing_key_reseal(key: SigningKey, *, actor_id: object = None) -> None:
    """Seal `key`'s private key again under the current key-encryption key (the caller holds
    its row lock), as a key.rotated event with action=resealed. The kid, and so every token it
    signed, is unchanged. Raises sealing.UnsealError when it does not open."""
    aad = _aad(key.kid, key.alg)
    der = sealing.unseal(bytes(key.sealed_private_key), sealed_by=key.kek_id, aad=aad)
    previous = key.kek_id
    key.sealed_private_key, key.kek_id = sealing.seal(der, aad=aad)
    key.save(update_fields=["sealed_private_key", "kek_id"])
    _emit(key, "resealed", actor_id, previous_kek_id=previous, kek_id=key.kek_id)


class SealedSigningKeys:
    """Signing keys for `manage.py reseal` (apps.core.reseal, settings.SEALED_ROWS)."""

    model = SigningKey

    def reseal(self, row: SigningKey) -> None:
        signing_key_reseal(row)

    def batch_resealed(self) -> None:
        # Nothing to reload: a process keeps the keys it opened by kid, and a new process
        # reads the row as it is now.
        pass


def _emit(key: SigningKey, action: str, actor_id: object, **metadata: Any) -> None:
    emit(
        EventType.KEY_ROTATED,
        actor_id=actor_id,
        resource_type="signing_key",
        resource_id=key.kid,
        action=action,
        metadata={"alg": key.alg, "generation": key.generation, **metadata},
    )


# --- the in-process snapshot (the read side) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    """A key that may sign: its timeline and its opened private key (or why it won't open)."""

    activates_at: datetime
    retired_at: datetime | None
    generation: int
    active: ActiveKey | None
    unseal_error: str


@dataclass(frozen=True, slots=True)
class _Snapshot:
    signers: Mapping[str, tuple[_Entry, ...]]  # alg -> keys not retired when loaded
    published: Mapping[str, PublishedKey]  # kid -> key in the JWKS
    jwks_keys: tuple[Mapping[str, Any], ...]
    jwks_json: bytes


_SNAPSHOT = "snapshot"  # the cache's one key
_cache: ProcessCache[_Snapshot] = ProcessCache(
    CACHE,
    max_age=CACHE_MAX_AGE,
    max_entries=1,
    single_flight=True,  # one reload at a time; meanwhile the others serve the previous one
    stale_on=(DatabaseError,),
    stale_retry=DB_RETRY_INTERVAL,
)


def signing_key(alg: str) -> ActiveKey:
    """The key that signs tokens of `alg` now. Raises SigningKeyError when there is none."""
    entries = _current().signers.get(alg)
    if entries is None:
        raise NoSigningKey(f"unsupported signing algorithm {alg!r}: use one of {ALGORITHMS}")
    entry = _signer(entries, timezone.now())
    if entry is None:
        raise NoSigningKey(f"no {alg} signing key: run `manage.py rotate_keys`")
    if entry.active is None:
        raise KeyUnsealError(entry.unseal_error)
    return entry.active


def verification_key(kid: str) -> PublishedKey | None:
    """The published key named `kid`, or None. An unknown kid reloads the snapshot (a key
    created by another process whose message has not arrived, e.g. with Redis down), at most
    once per MISS_RELOAD_INTERVAL."""
    found = _current().published.get(kid)
    if found is not None:
        return found
    snapshot = _cache.refresh(_SNAPSHOT, _load, min_interval=MISS_RELOAD_INTERVAL)
    return snapshot.published.get(kid) if snapshot is not None else None


def jwks() -> dict[str, list[dict[str, Any]]]:
    """RFC 7517 §5 JWK Set of every published key (a fresh copy the caller may change)."""
    return {"keys": [dict(jwk) for jwk in _current().jwks_keys]}


def jwks_json() -> bytes:
    """jwks() serialized once per snapshot: the JWKS endpoint's response body."""
    return _current().jwks_json


def keys_cache_clear() -> None:
    """Drop this process's snapshot: the next read reloads it from the database. (A change
    every process must see goes through publish_on_commit(CACHE), as keys_rotate does.)"""
    _cache.invalidate()


def _current() -> _Snapshot:
    snapshot = _cache.get(_SNAPSHOT, _load)
    assert snapshot is not None  # _load always returns one
    return snapshot


def _load(previous: _Snapshot | None) -> _Snapshot:
    now, rows = timezone.now(), _rows()
    if not all(_signer((key for key in rows if key.alg == alg), now) for alg in ALGORITHMS):
        _bootstrap(now)
        now, rows = timezone.now(), _rows()
    return _build(rows, now=now, previous=previous)


def _bootstrap(now: datetime) -> None:
    """The lazy bootstrap (module docstring). Called inside a request's transaction, the new
    keys stay uncommitted until that request ends, while loaders in other processes, each
    holding its process's single-flight lock on this cache, wait in PostgreSQL to insert the
    same generation: a wait across a Python lock and a row lock that no one detects (a web
    tier froze this way in benchmarks/scale_out.py with --lazy-key-bootstrap). So the insert
    waits at most BOOTSTRAP_LOCK_WAIT: past it this load fails (the request is a 503 with
    Retry-After: core.views.unavailable_response), its lock is released, and the next load
    reads the keys the other process committed. Deployments create the keys before the web
    servers start (`manage.py rotate_keys --scheduled` in the migration Job)."""
    bounded = connection.vendor == "postgresql" and connection.in_atomic_block
    if bounded:
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{int(BOOTSTRAP_LOCK_WAIT * 1000)}ms'")
    try:
        keys_rotate(now=now)
    finally:
        if bounded and not connection.needs_rollback:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout TO DEFAULT")


def _rows() -> list[SigningKey]:
    return list(SigningKey.objects.order_by("alg", "-generation"))


def _build(rows: Sequence[SigningKey], *, now: datetime, previous: _Snapshot | None) -> _Snapshot:
    """Parse each key once per process: a kid seen before reuses its key objects."""
    known_private = {
        entry.active.kid: entry.active
        for entries in (previous.signers.values() if previous else ())
        for entry in entries
        if entry.active is not None
    }
    known_public = dict(previous.published) if previous else {}
    signers: dict[str, list[_Entry]] = {alg: [] for alg in ALGORITHMS}
    published: dict[str, PublishedKey] = {}
    jwks_keys: list[Mapping[str, Any]] = []
    for key in rows:
        if _published(key, now):
            public = known_public.get(key.kid)
            if public is None:
                try:
                    public = _published_key(key)
                except (SigningKeyError, JWKError) as error:
                    logger.error("signing key %s left out of the JWKS: %s", key.kid, error)
                    continue
            published[key.kid] = public
            jwks_keys.append(key.public_jwk)
        if key.alg in signers and (key.retired_at is None or now < key.retired_at):
            active, unseal_error = known_private.get(key.kid), ""
            if active is None:
                try:
                    active = ActiveKey(key.kid, key.alg, private_key_unseal(key=key))
                except (SigningKeyError, ValueError) as error:
                    unseal_error = str(error)
                    logger.error("signing key %s cannot sign: %s", key.kid, error)
            signers[key.alg].append(
                _Entry(key.activates_at, key.retired_at, key.generation, active, unseal_error)
            )
    document = {"keys": jwks_keys}
    return _Snapshot(
        signers={alg: tuple(entries) for alg, entries in signers.items()},
        published=published,
        jwks_keys=tuple(jwks_keys),
        jwks_json=json.dumps(document, separators=(",", ":")).encode("utf-8"),
    )


def _published_key(key: SigningKey) -> PublishedKey:
    if jwk_thumbprint(key.public_jwk) != key.kid or key.public_jwk.get("alg") != key.alg:
        raise SigningKeyError("its stored JWK does not match its kid and alg")
    return PublishedKey(key.kid, key.alg, public_key_from_jwk(key.public_jwk))
