"""SigningKey moved from apps.tokens to apps.keys by a state-only migration pair: a database
migrated before the move keeps its table, its rows and their kids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.keys.keys import keys_cache_clear, signing_key, verification_key
from apps.keys.models import SigningKey

BEFORE = [("tokens", "0006_offline_grant_require_pkce"), ("keys", None)]


def _migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection)


@pytest.mark.django_db(transaction=True)
def test_migrating_from_tokens_signing_key_keeps_every_row() -> None:
    leaf = MigrationExecutor(connection).loader.graph.leaf_nodes()
    assert connection.vendor == "postgresql"
    try:
        old_state = _migrate(BEFORE).loader.project_state(BEFORE[:1])
        OldSigningKey = old_state.apps.get_model("tokens", "SigningKey")
        assert OldSigningKey._meta.db_table == "tokens_signing_key"
        # Keys as the tokens app made them (sealed by apps.keys now: the same code moved).
        from apps.keys.keys import keys_rotate

        created = keys_rotate(now=datetime(2025, 1, 1, tzinfo=UTC))
        rows = {
            key.kid: (key.alg, key.generation, bytes(key.sealed_private_key))
            for key in OldSigningKey.objects.all()
        }
        assert set(rows) == {key.kid for key in created}
        content_types = old_state.apps.get_model("contenttypes", "ContentType")
        content_types.objects.get_or_create(app_label="tokens", model="signingkey")

        _migrate(leaf)
    finally:
        _migrate(leaf)

    keys_cache_clear()
    moved = {
        key.kid: (key.alg, key.generation, bytes(key.sealed_private_key))
        for key in SigningKey.objects.all()
    }
    assert moved == rows
    for kid, (alg, _, _) in rows.items():
        assert verification_key(kid) is not None
        assert signing_key(alg).kid == kid  # the same keys open and sign: nothing re-created
    from django.contrib.contenttypes.models import ContentType

    assert ContentType.objects.filter(app_label="keys", model="signingkey").exists()
    assert not ContentType.objects.filter(app_label="tokens", model="signingkey").exists()
