"""The ClickHouse side of the audit pipeline: versioned DDL and every query the pipeline runs.

Written for the oldest server we meet, Debian's ClickHouse 18.16 (the suite's), and run on a
current one too (tests/audit/test_schema_current_clickhouse.py runs every statement here through
chDB). So: no DateTime64 (sub-second time is its own column), no LowCardinality, no TTL
(retention drops partitions), no IPv6 type (addresses are text).

Counting is by event id: the shipper may deliver an event twice (a worker killed between the
INSERT and its outbox commit), and ReplacingMergeTree removes the copy only when it merges
parts, at a time of its choosing. Every query therefore reads FINAL or groups by id
(https://clickhouse.com/docs/engines/table-engines/mergetree-family/replacingmergetree).
Duplicates share the whole sorting key and, with it, the partition, so FINAL always sees both.
"""

from __future__ import annotations

from typing import NamedTuple

EVENTS_TABLE = "audit_events"
# The same rows ordered for "events of one type over time", fed by a materialized view.
EVENTS_BY_TYPE_TABLE = "audit_events_by_type"
MIGRATIONS_TABLE = "audit_schema_migrations"
# Tables whose monthly partitions retention drops.
PARTITIONED_TABLES = (EVENTS_TABLE, EVENTS_BY_TYPE_TABLE)

# Column, ClickHouse type: the outbox's columns (core_security_event) in its order, plus the
# microseconds within the second of occurred_at (PostgreSQL keeps microseconds, DateTime whole
# seconds; together they give the exact instant and the order within a second).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "UUID"),
    ("occurred_at", "DateTime('UTC')"),
    ("occurred_at_us", "UInt32"),
    ("event_type", "String"),
    ("user_id", "String"),
    ("actor_id", "String"),
    ("session_id", "String"),
    ("resource_type", "String"),
    ("resource_id", "String"),
    ("action", "String"),
    ("success", "UInt8"),
    ("error_code", "String"),
    ("error_message", "String"),
    ("ip_address", "Nullable(String)"),
    ("user_agent", "String"),
    ("request_id", "String"),
    ("duration_ms", "Nullable(Float64)"),
    ("metadata", "String"),  # the JSON object as text
    ("severity", "String"),
    ("compliance_tags", "Array(String)"),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)


def _events_table(name: str, order_by: str) -> str:
    # ReplacingMergeTree keeps one row per sorting key, so the key ends with the event id.
    columns = ",\n    ".join(f"{column} {kind}" for column, kind in COLUMNS)
    return (
        f"CREATE TABLE IF NOT EXISTS {name} (\n    {columns}\n)\n"
        "ENGINE = ReplacingMergeTree\n"
        "PARTITION BY toYYYYMM(occurred_at)\n"
        f"ORDER BY ({order_by}, occurred_at, occurred_at_us, id)"
    )


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


# Applied in order by `manage.py audit_migrate`, each recorded in MIGRATIONS_TABLE. ClickHouse
# has no transactional DDL, so every statement is idempotent (IF NOT EXISTS): a run stopped
# between a statement and its record repeats it harmlessly. Append; never edit an applied one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "events ordered by user", _events_table(EVENTS_TABLE, "user_id")),
    Migration(2, "events ordered by type", _events_table(EVENTS_BY_TYPE_TABLE, "event_type")),
    Migration(
        3,
        "feed events ordered by type",
        # Runs on each INSERT into audit_events (a re-shipped event too: the copy is replaced
        # in both tables alike). Columns are named: a view's SELECT * is fixed at creation.
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {EVENTS_BY_TYPE_TABLE}_mv "  # noqa: S608
        f"TO {EVENTS_BY_TYPE_TABLE} AS SELECT {', '.join(COLUMN_NAMES)} FROM {EVENTS_TABLE}",
    ),
)

CREATE_MIGRATIONS_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
    "(version UInt32, name String, applied_at DateTime('UTC') DEFAULT now()) "
    "ENGINE = MergeTree ORDER BY version"
)
APPLIED_VERSIONS = f"SELECT DISTINCT version FROM {MIGRATIONS_TABLE}"  # noqa: S608
RECORD_MIGRATION = f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES"

# One batch from the outbox, columnar, in COLUMN_NAMES order.
INSERT_EVENTS = f"INSERT INTO {EVENTS_TABLE} ({', '.join(COLUMN_NAMES)}) VALUES"

# Retention: the monthly partitions of a table wholly before a month (YYYYMM, UInt32).
PARTITIONS_BEFORE = (
    "SELECT DISTINCT partition_id FROM system.parts "
    "WHERE database = currentDatabase() AND table = %(table)s AND active "
    "AND toUInt32(partition_id) < %(month)s ORDER BY partition_id"
)
# Table and partition id come from the constants above and system.parts, never from input.
DROP_PARTITION = "ALTER TABLE {table} DROP PARTITION ID '{partition_id}'"
