"""The audit pipeline against the suite's real PostgreSQL and ClickHouse: each test that asks
for it starts with ClickHouse running and a new, empty audit schema."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest
from clickhouse_driver import Client
from django.core.management import call_command

from apps.audit.clickhouse_schema import COLUMN_NAMES, PARTITIONED_TABLES
from apps.core import journal
from apps.core.events import EventType, emit
from tests.servers import ClickHouseCluster, TestServers

# What the tests read back, counted three ways: rows as stored (a re-shipped event is two
# rows until a merge), rows after replacing (FINAL), and distinct event ids.
ROWS = "SELECT count() FROM audit_events"
ROWS_FINAL = "SELECT count() FROM audit_events FINAL"
DISTINCT_IDS = "SELECT uniqExact(id) FROM audit_events"
ROWS_BY_TYPE_FINAL = "SELECT count() FROM audit_events_by_type FINAL"
COUNTS = (ROWS, ROWS_FINAL, DISTINCT_IDS, ROWS_BY_TYPE_FINAL)
EVENTS_FINAL = f"SELECT {', '.join(COLUMN_NAMES)} FROM audit_events FINAL"  # noqa: S608
USER_EVENT_TYPES = (
    "SELECT event_type FROM audit_events FINAL WHERE user_id = %(user)s "
    "ORDER BY occurred_at, occurred_at_us"
)
PARTITIONS = (
    "SELECT DISTINCT table, partition_id FROM system.parts "
    "WHERE database = currentDatabase() AND active AND table LIKE 'audit_events%' "
    "ORDER BY table, partition_id"
)
TABLES = (
    "SELECT name, engine, partition_key, sorting_key FROM system.tables "
    "WHERE database = currentDatabase() ORDER BY name"
)
MIGRATIONS_RECORDED = "SELECT version, name FROM audit_schema_migrations ORDER BY version"
# Merges would remove duplicates before a test could count them.
STOP_MERGES = "SYSTEM STOP MERGES {table}"
START_MERGES = "SYSTEM START MERGES {table}"
OPTIMIZE = "OPTIMIZE TABLE {table} FINAL"
TRUNCATE = "TRUNCATE TABLE {table}"  # benchmarks/audit_pipeline.py, which restarts nothing
DROP_TABLE = "DROP TABLE IF EXISTS {table}"
# The view first: it feeds audit_events_by_type from audit_events.
DROP_ORDER = (
    "audit_events_by_type_mv",
    "audit_events_by_type",
    "audit_events",
    "audit_schema_migrations",
)


def counts(client: Client) -> tuple[int, ...]:
    """(rows, rows FINAL, distinct ids, rows FINAL of the by-type table)."""
    return tuple(client.execute(query)[0][0] for query in COUNTS)


@pytest.fixture
def audit_clickhouse(servers: TestServers, clickhouse_client: Client) -> Iterator[Client]:
    """ClickHouse running, the audit schema new and empty (made by `audit_migrate`), merges
    stopped (so a test sees every row it inserted) until the test ends.

    The tables are dropped, not truncated: ClickHouse 18.16 brings a truncated table's merged
    parts back when it restarts before deleting their files, and some tests restart it.
    """
    if not servers.clickhouse.running:  # a test that stopped it and failed before restarting
        servers.clickhouse.start()
    for table in DROP_ORDER:
        clickhouse_client.execute(DROP_TABLE.format(table=table))
    call_command("audit_migrate", stdout=io.StringIO())
    for table in PARTITIONED_TABLES:
        clickhouse_client.execute(STOP_MERGES.format(table=table))
    yield clickhouse_client
    if not servers.clickhouse.running:
        servers.clickhouse.start()
    for table in PARTITIONED_TABLES:
        clickhouse_client.execute(START_MERGES.format(table=table))


def emit_many(count: int) -> None:
    """`count` events, each recorded outside a transaction as a token request's is, and all
    of them in the outbox when this returns (the journal drained, core.journal)."""
    for index in range(count):
        emit(
            EventType.TOKEN_ISSUED,
            resource_type="client",
            resource_id=f"client-{index % 7}",
            metadata={"grant_type": "client_credentials", "n": index},
        )
    journal.drain_now()


@pytest.fixture(scope="session")
def clickhouse_cluster(
    servers: TestServers, pytestconfig: pytest.Config
) -> Iterator[ClickHouseCluster]:
    """Two ClickHouse servers, one shard each, and ZooKeeper (tests/servers.py), started once
    for the session when a test marked clickhouse_cluster asks; the start time is reported."""
    cluster = ClickHouseCluster(servers.base / "clickhouse-cluster")
    started = time.monotonic()
    cluster.start()
    cluster.started_in = time.monotonic() - started
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # on the terminal, not in captured output
            reporter.write_line(
                f"\nclickhouse cluster (ZooKeeper + 2 shards) started in {cluster.started_in:.2f}s"
            )
    yield cluster
    cluster.stop()
