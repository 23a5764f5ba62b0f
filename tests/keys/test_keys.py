"""Signing keys: sealed at rest, rotated on schedule, published in the JWKS, cached in-process."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings as conf
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone

from apps.core import cache, sealing
from apps.core.models import SecurityEvent
from apps.keys import keys
from apps.keys.keys import (
    ALGORITHMS,
    KeyUnsealError,
    jwk_thumbprint,
    jwks,
    jwks_json,
    kek_id,
    keys_cache_clear,
    keys_rotate,
    private_key_unseal,
    published_keys_at,
    signing_key,
    signing_key_at,
    verification_key,
)
from apps.keys.models import SigningKey
from apps.keys.tasks import rotate_signing_keys
from tests.servers import wait_for

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    """The snapshot is per process: no test sees keys cached by the one before."""
    keys_cache_clear()
    yield
    keys_cache_clear()


@pytest.fixture
def timeline(settings):
    """The documented defaults, whatever the environment says."""
    settings.KEY_ROTATION_DAYS = 30
    settings.JWKS_MAX_AGE = 600  # publish-ahead: max(600 s, 1 day) = 1 day
    settings.ACCESS_TOKEN_LIFETIME = 900
    settings.ID_TOKEN_LIFETIME = 3600  # retired keys stay published 1 h + 5 min leeway
    return settings


@pytest.fixture
def clock(monkeypatch):
    """The process cache's monotonic clock, moved by hand."""
    now = [time.monotonic()]
    monkeypatch.setattr(cache, "_clock", lambda: now[0])
    return now


def _by_alg(created: list[SigningKey]) -> dict[str, SigningKey]:
    assert len({key.alg for key in created}) == len(created)
    return {key.alg: key for key in created}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _thumbprint_by_hand(public_key: object) -> str:
    """RFC 7638 §3.1/§3.3 and RFC 8037 §2, spelled out member by member."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        x, y = _b64(numbers.x.to_bytes(32, "big")), _b64(numbers.y.to_bytes(32, "big"))
        members = f'{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}'
    elif isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        n = _b64(rsa_numbers.n.to_bytes(256, "big"))
        members = f'{{"e":"AQAB","kty":"RSA","n":"{n}"}}'
        assert rsa_numbers.e == 65537
    else:
        assert isinstance(public_key, ed25519.Ed25519PublicKey)
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = f'{{"crv":"Ed25519","kty":"OKP","x":"{_b64(raw)}"}}'
    return _b64(hashlib.sha256(members.encode()).digest())


def _events(kid: str) -> list[str]:
    return [
        event.action
        for event in SecurityEvent.objects.filter(
            event_type="key.rotated", resource_type="signing_key", resource_id=kid
        ).order_by("occurred_at")
    ]


# --- identity of a key ---------------------------------------------------------------------


def test_thumbprint_matches_the_rfc_examples() -> None:
    # RFC 7638 §3.1
    rsa_jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
        "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-6"
        "5YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyr"
        "dkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKn"
        "qDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(rsa_jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    # RFC 8037 Appendix A.3
    okp_jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert jwk_thumbprint(okp_jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.mark.django_db
def test_kid_is_the_rfc7638_thumbprint_of_the_key() -> None:
    created = keys_rotate(now=T0)

    assert sorted(key.alg for key in created) == sorted(ALGORITHMS)
    for key in created:
        public_key = private_key_unseal(key=key).public_key()
        assert key.kid == _thumbprint_by_hand(public_key)
        assert key.public_jwk["kid"] == key.kid
        assert key.public_jwk["alg"] == key.alg
        assert key.public_jwk["use"] == "sig"


@pytest.mark.django_db
def test_private_key_is_never_stored_in_clear() -> None:
    keys_rotate(now=T0)

    for key in SigningKey.objects.all():
        private_key = private_key_unseal(key=key)
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            secret = private_key.private_numbers().private_value.to_bytes(32, "big")
        elif isinstance(private_key, rsa.RSAPrivateKey):
            secret = private_key.private_numbers().d.to_bytes(256, "big")
        else:
            secret = private_key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        der = private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        pem_body = b"".join(
            private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).splitlines()[1:-1]
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM tokens_signing_key WHERE kid = %s", [key.kid])
            row = cursor.fetchone()
        stored = b"|".join(
            bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
            for value in row
        )

        assert key.kek_id == kek_id(conf.KEY_ENCRYPTION_KEY)
        for clear in (secret, der, pem_body[:64], _b64(secret).encode(), secret.hex().encode()):
            assert clear not in stored
        assert b"PRIVATE KEY" not in stored


# --- key-encryption keys -------------------------------------------------------------------


@pytest.mark.django_db
def test_key_sealed_under_an_old_kek_still_opens_and_is_resealed(settings) -> None:
    old_kek, new_kek = os.urandom(32), os.urandom(32)
    settings.KEY_ENCRYPTION_KEY = old_kek
    keys_rotate()
    sealed_before = {key.kid: bytes(key.sealed_private_key) for key in SigningKey.objects.all()}

    settings.KEY_ENCRYPTION_KEY = new_kek
    settings.KEY_ENCRYPTION_KEYS_OLD = (os.urandom(32), old_kek)
    keys_cache_clear()
    for alg in ALGORITHMS:
        key = SigningKey.objects.get(alg=alg)
        assert key.kek_id == kek_id(old_kek)
        assert jwk_thumbprint(key.public_jwk) == key.kid
        assert signing_key(alg).kid == key.kid

    assert keys_rotate() == []  # nothing due, but keys under an old KEK move to the new one

    settings.KEY_ENCRYPTION_KEYS_OLD = ()
    for key in SigningKey.objects.all():
        assert key.kek_id == kek_id(new_kek)
        assert bytes(key.sealed_private_key) != sealed_before[key.kid]
        assert _thumbprint_by_hand(private_key_unseal(key=key).public_key()) == key.kid
        assert _events(key.kid)[-1] == "resealed"


@pytest.mark.django_db
def test_unknown_kek_fails_with_a_clear_error_and_the_jwks_is_still_served(settings) -> None:
    keys_rotate()
    settings.KEY_ENCRYPTION_KEY = os.urandom(32)
    settings.KEY_ENCRYPTION_KEYS_OLD = (os.urandom(32),)
    keys_cache_clear()

    key = SigningKey.objects.get(alg="ES256")
    message = "neither IDP_KEY_ENCRYPTION_KEY nor one of IDP_KEY_ENCRYPTION_KEYS_OLD"
    with pytest.raises(KeyUnsealError, match=message):
        private_key_unseal(key=key)
    with pytest.raises(KeyUnsealError, match=message):
        signing_key("ES256")
    assert {jwk["kid"] for jwk in jwks()["keys"]} == set(
        SigningKey.objects.values_list("kid", flat=True)
    )
    assert verification_key(key.kid) is not None


@pytest.mark.django_db
def test_altered_or_transplanted_ciphertext_does_not_open() -> None:
    first = _by_alg(keys_rotate(now=T0))["ES256"]
    second = _by_alg(keys_rotate(now=T0 + DAY, immediate=True))["ES256"]

    # AAD binds the ciphertext to its kid and alg: another row's sealed key won't open here.
    second.sealed_private_key = bytes(first.sealed_private_key)
    with pytest.raises(KeyUnsealError, match="does not decrypt"):
        private_key_unseal(key=second)

    tampered = bytearray(first.sealed_private_key)
    tampered[-1] ^= 1
    first.sealed_private_key = bytes(tampered)
    with pytest.raises(KeyUnsealError, match="does not decrypt"):
        private_key_unseal(key=first)


# --- signing and verifying -----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ALGORITHMS)
def test_token_signed_with_signing_key_verifies_with_verification_key_and_jwks(alg) -> None:
    keys_rotate()
    active = signing_key(alg)
    token = jwt.encode(
        {"sub": "alice", "aud": "rp"}, key=active.private_key, algorithm=alg,
        headers={"kid": active.kid},
    )  # fmt: skip

    header = jwt.get_unverified_header(token)
    assert (header["kid"], header["alg"]) == (active.kid, alg)
    published = verification_key(header["kid"])
    assert published is not None
    assert published.alg == alg
    claims = jwt.decode(token, key=published.public_key, algorithms=[published.alg], audience="rp")
    assert claims["sub"] == "alice"

    # A relying party holding nothing but the JWKS document verifies it too.
    relying_party_key = jwt.PyJWKSet.from_json(jwks_json().decode())[active.kid]
    assert jwt.decode(token, key=relying_party_key, algorithms=[alg], audience="rp") == claims


@pytest.mark.django_db
def test_jwks_holds_public_signature_keys_only() -> None:
    keys_rotate()
    document = jwks()

    assert len(document["keys"]) == len(ALGORITHMS)
    for jwk in document["keys"]:
        assert jwk["use"] == "sig"
        assert jwk["kid"] == jwk_thumbprint(jwk)
        assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()  # RFC 7518 §6.2.2, §6.3.2
    assert jwks_json() == jwks_json()
    document["keys"].clear()  # a caller's copy: the cached document is untouched
    assert len(jwks()["keys"]) == len(ALGORITHMS)


@pytest.mark.django_db
def test_signing_key_bootstraps_a_fresh_install_lazily() -> None:
    assert not SigningKey.objects.exists()

    active = signing_key("RS256")

    assert SigningKey.objects.get(alg="RS256").kid == active.kid
    assert set(SigningKey.objects.values_list("alg", flat=True)) == set(ALGORITHMS)


@pytest.mark.django_db
def test_unsupported_algorithm_is_a_clear_error() -> None:
    keys_rotate()
    with pytest.raises(keys.NoSigningKey, match="unsupported signing algorithm 'HS256'"):
        signing_key("HS256")


# --- rotation ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_rotation_timeline_publishes_ahead_activates_retires_and_removes(timeline) -> None:
    # Bootstrap: no token exists yet, so the first key signs at once.
    first = _by_alg(keys_rotate(now=T0))
    for alg, key in first.items():
        assert key.activates_at == T0
        assert signing_key_at(alg=alg, now=T0) == key

    # Nothing to do while the key is younger than rotation minus publish-ahead (29 days).
    assert keys_rotate(now=T0 + timedelta(days=28)) == []

    # The next key is published a day before it signs: every JWKS cache has it by then.
    published_at = T0 + timedelta(days=29, hours=1)
    second = _by_alg(keys_rotate(now=published_at))
    assert keys_rotate(now=published_at + timedelta(hours=12)) == []  # one next key only
    activates_at = published_at + DAY
    in_jwks = {key.kid for key in published_keys_at(now=published_at)}
    for alg, key in second.items():
        assert key.activates_at == activates_at
        assert {first[alg].kid, key.kid} <= in_jwks
        assert signing_key_at(alg=alg, now=activates_at - timedelta(seconds=1)) == first[alg]
        # It signs from activates_at on, whether or not the task has run yet.
        assert signing_key_at(alg=alg, now=activates_at) == key

    # The next run records the activation: the previous key retired at that moment.
    assert keys_rotate(now=activates_at + timedelta(minutes=30)) == []
    retired_until = activates_at + timedelta(hours=1, minutes=5)  # ID token lifetime + leeway
    for key in first.values():
        key.refresh_from_db()
        assert key.retired_at == activates_at
    still_published = {
        key.kid for key in published_keys_at(now=retired_until - timedelta(seconds=1))
    }
    gone = {key.kid for key in published_keys_at(now=retired_until)}
    for alg in ALGORITHMS:
        assert first[alg].kid in still_published
        assert first[alg].kid not in gone
        assert second[alg].kid in gone

    # Once its last token has expired the retired key is deleted.
    assert keys_rotate(now=retired_until) == []
    assert set(SigningKey.objects.values_list("kid", flat=True)) == {
        key.kid for key in second.values()
    }
    for alg in ALGORITHMS:
        assert _events(first[alg].kid) == ["created", "activated", "retired", "removed"]
        assert _events(second[alg].kid) == ["created", "activated"]


@pytest.mark.django_db
def test_retired_key_stays_published_for_the_longer_token_lifetime(timeline) -> None:
    timeline.ACCESS_TOKEN_LIFETIME = 7200  # access tokens now outlive ID tokens
    first = _by_alg(keys_rotate(now=T0))["EdDSA"]
    keys_rotate(now=T0 + timedelta(hours=1), immediate=True)

    edge = T0 + timedelta(hours=3, minutes=5)
    assert first.kid in {key.kid for key in published_keys_at(now=edge - timedelta(seconds=1))}
    assert first.kid not in {key.kid for key in published_keys_at(now=edge)}


@pytest.mark.django_db
def test_long_publish_ahead_follows_jwks_max_age(timeline) -> None:
    timeline.JWKS_MAX_AGE = 86400
    timeline.KEY_ROTATION_DAYS = 7
    keys_rotate(now=T0)

    assert keys_rotate(now=T0 + timedelta(days=5, hours=23)) == []
    created = keys_rotate(now=T0 + timedelta(days=6))
    assert {key.activates_at for key in created} == {T0 + timedelta(days=7)}


@pytest.mark.django_db
def test_immediate_rotation_retires_every_older_key_now(timeline) -> None:
    first = _by_alg(keys_rotate(now=T0))
    pending = _by_alg(keys_rotate(now=T0 + timedelta(days=29, hours=1)))
    now = T0 + timedelta(days=29, hours=2)

    replacement = _by_alg(keys_rotate(now=now, immediate=True))

    for alg in ALGORITHMS:
        assert replacement[alg].activates_at == now
        assert signing_key_at(alg=alg, now=now) == replacement[alg]
        for old in (first[alg], pending[alg]):
            old.refresh_from_db()
            assert old.retired_at == now
        # The published-ahead key is suspect too: it never signs.
        later = pending[alg].activates_at + timedelta(hours=1)
        assert signing_key_at(alg=alg, now=later) == replacement[alg]
        # The retired key still verifies the tokens it signed until they have expired.
        in_jwks = {key.kid for key in published_keys_at(now=now + timedelta(hours=1))}
        assert first[alg].kid in in_jwks
        assert _events(replacement[alg].kid) == ["created", "activated"]
        retired = SecurityEvent.objects.get(resource_id=first[alg].kid, action="retired")
        assert retired.metadata["replaced_by"] == replacement[alg].kid


@pytest.mark.django_db
def test_bootstrap_records_key_rotated_events() -> None:
    created = keys_rotate(now=T0)

    events = SecurityEvent.objects.filter(event_type="key.rotated")
    assert events.count() == 2 * len(ALGORITHMS)
    for key in created:
        created_event = events.get(resource_id=key.kid, action="created")
        assert created_event.resource_type == "signing_key"
        assert created_event.metadata["alg"] == key.alg
        assert created_event.metadata["reason"] == "bootstrap"
        activated = events.get(resource_id=key.kid, action="activated")
        assert activated.metadata["replaces"] is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("moment", ["bootstrap", "scheduled"])
def test_concurrent_rotations_add_one_key_per_algorithm(
    monkeypatch, timeline, moment, servers
) -> None:
    if moment == "scheduled":
        keys_rotate(now=T0)
    now = T0 if moment == "bootstrap" else T0 + timedelta(days=29, hours=1)
    expected = SigningKey.objects.count() + len(ALGORITHMS)
    both_started = threading.Barrier(2, timeout=30)
    real_rotate, real_generate = keys._rotate, keys._generate
    attempts = []
    seen = threading.local()

    def rotate_after_both_started(**kwargs):
        attempts.append(1)
        if not getattr(seen, "started", False):  # first attempt only, not the retry
            seen.started = True
            both_started.wait()
        return real_rotate(**kwargs)

    arrived = []
    observer = psycopg.connect(
        servers.postgres.url(conf.DATABASES["default"]["NAME"]), autocommit=True
    )

    def other_waits_for_a_lock() -> bool:
        # Over existing keys the other rotation blocks on this one's row locks (scheduled).
        blocked = observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND cardinality(pg_blocking_pids(pid)) > 0"
        ).fetchone()
        return bool(blocked and blocked[0])

    def generate_once_the_other_has_read(alg):
        # Without keys there are no rows to lock (bootstrap): each waits here until the other
        # has read the empty table too, so both insert the same generation.
        if not getattr(seen, "generated", False):
            seen.generated = True
            arrived.append(1)
            wait_for(
                lambda: len(arrived) == 2 or other_waits_for_a_lock(), 30,
                "the other rotation neither read the table nor waited for its locks",
            )  # fmt: skip
        return real_generate(alg)

    monkeypatch.setattr(keys, "_rotate", rotate_after_both_started)
    monkeypatch.setattr(keys, "_generate", generate_once_the_other_has_read)
    results: list[list[SigningKey]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(keys_rotate(now=now))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    observer.close()

    assert errors == []
    assert len(attempts) == 3  # the loser's insert hit the constraint; it re-read, found the key
    assert sorted(len(created) for created in results) == [0, len(ALGORITHMS)]
    assert SigningKey.objects.count() == expected
    created_events = SecurityEvent.objects.filter(action="created")
    assert created_events.count() == expected


@pytest.mark.django_db
def test_celery_task_runs_the_schedule_step() -> None:
    kids = rotate_signing_keys.apply().get()

    assert sorted(kids) == sorted(SigningKey.objects.values_list("kid", flat=True))
    assert rotate_signing_keys.apply().get() == []


@pytest.mark.django_db
def test_rotate_keys_command_replaces_every_key_now() -> None:
    before = _by_alg(keys_rotate())
    signing_key("ES256")  # cached, and the command must drop that

    out = io.StringIO()
    call_command("rotate_keys", stdout=out)

    lines = out.getvalue().splitlines()
    assert len(lines) == len(ALGORITHMS)
    now = timezone.now()
    for alg in ALGORITHMS:
        new = signing_key_at(alg=alg, now=now)
        assert new is not None
        assert new.kid != before[alg].kid
        [line] = [line for line in lines if line.startswith(f"{alg} kid={new.kid} ")]
        assert line.endswith(f"replacing kid={before[alg].kid}")
        assert signing_key(alg).kid == new.kid
        before[alg].refresh_from_db()
        assert before[alg].retired_at is not None

    out = io.StringIO()
    call_command("rotate_keys", "--scheduled", stdout=out)
    assert out.getvalue() == "no new key: every algorithm's key is within its rotation period\n"


# --- the in-process snapshot ---------------------------------------------------------------


@pytest.mark.django_db
def test_second_read_runs_no_query_and_parses_no_key(monkeypatch, django_assert_num_queries):
    keys_rotate()
    kids = {alg: signing_key(alg).kid for alg in ALGORITHMS}
    body = jwks_json()

    def parse(*args, **kwargs):
        raise AssertionError("a key was parsed on the hot path")

    monkeypatch.setattr(serialization, "load_der_private_key", parse)
    monkeypatch.setattr(serialization, "load_pem_private_key", parse)
    monkeypatch.setattr(keys, "public_key_from_jwk", parse)
    monkeypatch.setattr(sealing, "AESGCM", parse)  # the seal moved to core (apps.core.sealing)
    with django_assert_num_queries(0):
        for alg, kid in kids.items():
            assert signing_key(alg).kid == kid
            published = verification_key(kid)
            assert published is not None
            assert published.alg == alg
        assert jwks_json() is body
        assert len(jwks()["keys"]) == len(ALGORITHMS)


@pytest.mark.django_db
def test_snapshot_is_reloaded_after_thirty_seconds(clock, django_assert_num_queries) -> None:
    keys_rotate()
    signing_key("ES256")

    clock[0] += 29
    with django_assert_num_queries(0):
        signing_key("ES256")
    clock[0] += 2
    with django_assert_num_queries(1):
        signing_key("ES256")
        signing_key("ES256")


@pytest.mark.django_db
def test_unknown_kid_flood_reloads_at_most_once_per_second(clock, django_assert_num_queries):
    keys_rotate()
    jwks_json()

    with django_assert_num_queries(0):  # the snapshot was loaded under a second ago
        for _ in range(200):
            assert verification_key(secrets.token_urlsafe(32)) is None
    clock[0] += 1.5
    with django_assert_num_queries(1):
        for _ in range(1000):
            assert verification_key(secrets.token_urlsafe(32)) is None
    clock[0] += 0.5
    with django_assert_num_queries(0):
        for _ in range(200):
            assert verification_key(secrets.token_urlsafe(32)) is None
    clock[0] += 0.6
    with django_assert_num_queries(1):
        for _ in range(200):
            assert verification_key(secrets.token_urlsafe(32)) is None


@pytest.mark.django_db
def test_key_rotated_by_another_process_is_seen_within_the_bounds(
    monkeypatch, clock, django_assert_num_queries
) -> None:
    old = _by_alg(keys_rotate())["ES256"]
    assert signing_key("ES256").kid == old.kid
    with monkeypatch.context() as elsewhere:  # another process: this one's snapshot stays
        elsewhere.setattr(keys, "publish_on_commit", lambda name: None)
        new = _by_alg(keys_rotate(immediate=True))["ES256"]

    assert signing_key("ES256").kid == old.kid  # bounded staleness: until the next reload
    clock[0] += 1.5
    with django_assert_num_queries(1):  # a token with the new kid reloads the snapshot
        published = verification_key(new.kid)
    assert published is not None
    with django_assert_num_queries(0):
        assert signing_key("ES256").kid == new.kid
        assert verification_key(old.kid) is not None  # still published: its tokens live on


@pytest.mark.django_db
def test_failed_reload_serves_the_previous_snapshot(monkeypatch, clock) -> None:
    keys_rotate()
    body = jwks_json()
    attempts = []

    def database_down(*args, **kwargs):
        attempts.append(1)
        raise OperationalError("connection refused")

    monkeypatch.setattr(SigningKey.objects, "order_by", database_down)
    clock[0] += 31
    assert jwks_json() is body
    assert signing_key("RS256").alg == "RS256"
    assert len(attempts) == 1
    clock[0] += 1.1
    assert jwks_json() is body
    assert len(attempts) == 2


class WaiterCountingLock:
    """The keys cache's load lock, counting the threads that had to wait for it."""

    def __init__(self) -> None:
        self._lock, self._count, self.waiting = threading.Lock(), threading.Lock(), 0

    def acquire(self, blocking: bool = True) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        if not blocking:
            return False
        with self._count:
            self.waiting += 1
        return self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_reads_load_one_snapshot(monkeypatch) -> None:
    keys_rotate()
    keys_cache_clear()
    builds = []
    real_build = keys._build

    lock = WaiterCountingLock()

    def counting_build(*args, **kwargs):
        builds.append(1)
        # the first build goes on only once every other reader waits for it on the lock
        wait_for(lambda: lock.waiting == 7, 30, "the other readers did not wait on the lock")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(keys._cache, "_load_lock", lock)
    monkeypatch.setattr(keys, "_build", counting_build)
    start = threading.Barrier(8, timeout=30)
    bodies: list[bytes] = []

    def read() -> None:
        try:
            start.wait()
            bodies.append(jwks_json())
            bodies.append(signing_key("ES256").kid.encode())
        finally:
            connection.close()

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(bodies) == 16
    assert len(builds) == 1
    assert len({id(body) for body in bodies[::2]}) == 1


@pytest.mark.django_db
def test_a_reload_parses_only_keys_it_has_not_seen(monkeypatch, clock, django_assert_num_queries):
    keys_rotate()
    kid = signing_key("ES256").kid
    clock[0] += 31
    cache.bus.listener(keys.CACHE).prune()  # the subscriber's periodic sweep

    def parse(*args, **kwargs):
        raise AssertionError("a key seen before was parsed again")

    monkeypatch.setattr(serialization, "load_der_private_key", parse)
    monkeypatch.setattr(keys, "public_key_from_jwk", parse)
    with django_assert_num_queries(1):
        assert signing_key("ES256").kid == kid
        assert verification_key(kid) is not None
