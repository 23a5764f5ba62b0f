"""Rotating the key-encryption key without downtime (docs/operations.md, "The key-encryption
key"): teach every process the new key, switch, re-seal (`manage.py reseal`), drop the old
key once no row names it (`manage.py reseal --check`). Each phase is a settings pair;
processes of neighbouring phases serve side by side during a rolling update, so each must
open what the other sealed.
"""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.core import sealing
from apps.federation.providers import provider_create, provider_secret
from apps.keys.keys import ALGORITHMS, keys_cache_clear, signing_key
from apps.mfa.totp import totp_enrol, totp_secret
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

OLD, NEW = os.urandom(32), os.urandom(32)
BEFORE = (OLD, ())  # (IDP_KEY_ENCRYPTION_KEY, IDP_KEY_ENCRYPTION_KEYS_OLD)
TEACH = (OLD, (NEW,))
SWITCH = (NEW, (OLD,))
AFTER = (NEW, ())

# The query of the docs' step 4: which key-encryption keys rows still name.
KEK_USE = """
SELECT 'signing keys', kek_id, count(*) FROM tokens_signing_key GROUP BY kek_id
UNION ALL SELECT 'totp', kek_id, count(*) FROM mfa_totpdevice GROUP BY kek_id
UNION ALL SELECT 'providers', kek_id, count(*) FROM federation_provider GROUP BY kek_id
"""


def _phase(settings, phase: tuple[bytes, tuple[bytes, ...]]) -> None:
    settings.KEY_ENCRYPTION_KEY, settings.KEY_ENCRYPTION_KEYS_OLD = phase
    keys_cache_clear()  # as a process started with these settings


def _kek_use() -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(KEK_USE)
        return {(kind, kek) for kind, kek, _ in cursor.fetchall()}


def test_kek_rotation_in_three_rollouts_keeps_every_seal_open(settings) -> None:
    _phase(settings, BEFORE)
    kids = {alg: signing_key(alg).kid for alg in ALGORITHMS}  # keys sealed under OLD
    person = UserFactory()
    sealed_before = totp_enrol(user=person, name="Old phone")
    provider = provider_create(
        actor_id=None,
        slug="acme-sso",
        name="Acme SSO",
        kind="oidc",
        issuer="https://sso.acme.example",
        client_id="tessera",
        client_secret="upstream secret",
    )

    # One step (BEFORE beside AFTER) would break: a process without the new key cannot open
    # what one on the new key sealed. Hence the teaching rollout first.
    _phase(settings, AFTER)
    sealed_new = totp_enrol(user=UserFactory(), name="New phone")
    _phase(settings, BEFORE)
    with pytest.raises(sealing.UnknownKek):
        totp_secret(sealed_new.device)

    # Rollout 1 (BEFORE beside TEACH): both seal under OLD, both open it.
    _phase(settings, TEACH)
    sealed_teach = totp_enrol(user=UserFactory(), name="Phone")
    assert sealed_teach.device.kek_id == sealing.kek_id(OLD)
    # Rollout 2 (TEACH beside SWITCH): each opens what the other seals.
    _phase(settings, SWITCH)
    sealed_switch = totp_enrol(user=UserFactory(), name="Phone")
    assert sealed_switch.device.kek_id == sealing.kek_id(NEW)
    assert totp_secret(sealed_teach.device) == sealed_teach.secret
    _phase(settings, TEACH)
    assert totp_secret(sealed_switch.device) == sealed_switch.secret

    # Step 3: `manage.py reseal` moves every sealed row to NEW: signing keys (kids
    # unchanged), TOTP secrets and providers' client secrets.
    _phase(settings, SWITCH)
    assert {("totp", sealing.kek_id(OLD)), ("providers", sealing.kek_id(OLD))} <= _kek_use()
    with pytest.raises(CommandError, match="still sealed under"):
        call_command("reseal", "--check", stdout=StringIO())
    out = StringIO()
    call_command("reseal", stdout=out)
    assert "totp: done, 2 resealed, 2 already current, 0 unreadable" in out.getvalue()
    # Step 4's question, answered by the query and by --check: only NEW is named.
    assert {kek for _, kek in _kek_use()} == {sealing.kek_id(NEW)}
    checked = StringIO()
    call_command("reseal", "--check", stdout=checked)
    assert "IDP_KEY_ENCRYPTION_KEYS_OLD can be emptied" in checked.getvalue()

    # Without OLD the signing keys still sign, with the same kids.
    _phase(settings, AFTER)
    assert {alg: signing_key(alg).kid for alg in ALGORITHMS} == kids
    for enrolment in (sealed_before, sealed_new, sealed_teach, sealed_switch):
        enrolment.device.refresh_from_db()
        assert totp_secret(enrolment.device) == enrolment.secret
    provider.refresh_from_db()
    assert provider_secret(provider) == "upstream secret"
