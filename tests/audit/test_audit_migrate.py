"""`manage.py audit_migrate`: the ClickHouse audit schema, applied in order, recorded, and a
no-op when run again."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client
from django.core.management import CommandError, call_command

from apps.audit.clickhouse_schema import MIGRATIONS
from tests.audit.conftest import MIGRATIONS_RECORDED, TABLES
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "audit_migrate_test"


@pytest.fixture
def empty_database(servers, clickhouse_client: Client, settings) -> Iterator[Client]:
    """A ClickHouse database of its own, without audit tables, as CLICKHOUSE_URL; yields a
    client of that database."""
    clickhouse_client.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    clickhouse_client.execute(f"CREATE DATABASE {DATABASE}")
    settings.CLICKHOUSE_URL = servers.clickhouse.url().rsplit("/", 1)[0] + f"/{DATABASE}"
    client = Client.from_url(settings.CLICKHOUSE_URL)
    yield client
    client.disconnect()
    clickhouse_client.execute(f"DROP DATABASE IF EXISTS {DATABASE}")


def _migrate() -> str:
    out = io.StringIO()
    call_command("audit_migrate", stdout=out)
    return out.getvalue()


def test_audit_migrate_applies_each_migration_once_in_order(empty_database: Client) -> None:
    first = _migrate()

    assert first.splitlines() == [
        *(f"audit schema: applying {m.version} {m.name}" for m in MIGRATIONS),
        f"audit schema: at version {MIGRATIONS[-1].version}",
    ]
    assert _migrate().splitlines() == [
        "audit schema: up to date",
        f"audit schema: at version {MIGRATIONS[-1].version}",
    ]
    recorded = empty_database.execute(MIGRATIONS_RECORDED)
    assert recorded == [(m.version, m.name) for m in MIGRATIONS]
    tables = empty_database.execute(TABLES)
    assert tables == [
        ("audit_events", "ReplacingMergeTree", "toYYYYMM(occurred_at)",
         "user_id, occurred_at, occurred_at_us, id"),
        ("audit_events_by_type", "ReplacingMergeTree", "toYYYYMM(occurred_at)",
         "event_type, occurred_at, occurred_at_us, id"),
        ("audit_events_by_type_mv", "MaterializedView", "", ""),
        ("audit_schema_migrations", "MergeTree", "", "version"),
    ]  # fmt: skip


def test_audit_migrate_without_clickhouse_says_so(settings) -> None:
    settings.CLICKHOUSE_URL = None
    with pytest.raises(CommandError, match="CLICKHOUSE_URL is not set"):
        call_command("audit_migrate")


def test_audit_migrate_with_clickhouse_unreachable_says_so(settings) -> None:
    settings.CLICKHOUSE_URL = f"clickhouse://default:@127.0.0.1:{free_port()}/default"
    with pytest.raises(CommandError, match=r"ClickHouse: .*Connection refused"):
        call_command("audit_migrate")


def test_clickhouse_with_sqlite_stops_startup_naming_both(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_DATA_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path}/idp.sqlite3")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "CLICKHOUSE_URL needs a PostgreSQL DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
