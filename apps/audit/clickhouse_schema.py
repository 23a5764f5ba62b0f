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

On a cluster (IDP_CLICKHOUSE_CLUSTER, `audit_migrate --cluster NAME`) the same names are
Distributed tables over ReplicatedReplacingMergeTree tables named `<name>_local` on every shard
(cluster_migrations below). Rows go to a shard by a hash of the event id, so a re-shipped
event lands on the shard that holds its first copy and FINAL, which each shard applies to its
own rows, still sees both. Queries and the shipper's INSERT keep their text; what acts on the
stored parts (retention's partitions, erasure's mutations) names the local tables, ON CLUSTER.
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


def _events_table(name: str, order_by: str, engine: str = "ReplacingMergeTree") -> str:
    # ReplacingMergeTree keeps one row per sorting key, so the key ends with the event id.
    columns = ",\n    ".join(f"{column} {kind}" for column, kind in COLUMNS)
    return (
        f"CREATE TABLE IF NOT EXISTS {name} (\n    {columns}\n)\n"
        f"ENGINE = {engine}\n"
        "PARTITION BY toYYYYMM(occurred_at)\n"
        f"ORDER BY ({order_by}, occurred_at, occurred_at_us, id)"
    )


class Migration(NamedTuple):
    version: int
    name: str
    statements: tuple[str, ...]


# Applied in order by `manage.py audit_migrate`, each recorded in MIGRATIONS_TABLE. ClickHouse
# has no transactional DDL, so every statement is idempotent (IF NOT EXISTS): a run stopped
# between a statement and its record repeats it harmlessly. Append; never edit an applied one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "events ordered by user", (_events_table(EVENTS_TABLE, "user_id"),)),
    Migration(2, "events ordered by type", (_events_table(EVENTS_BY_TYPE_TABLE, "event_type"),)),
    Migration(
        3,
        "feed events ordered by type",
        # Runs on each INSERT into audit_events (a re-shipped event too: the copy is replaced
        # in both tables alike). Columns are named: a view's SELECT * is fixed at creation.
        (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {EVENTS_BY_TYPE_TABLE}_mv "  # noqa: S608
            f"TO {EVENTS_BY_TYPE_TABLE} AS SELECT {', '.join(COLUMN_NAMES)} FROM {EVENTS_TABLE}",
        ),
    ),
)

_MIGRATIONS_COLUMNS = "(version UInt32, name String, applied_at DateTime('UTC') DEFAULT now())"
CREATE_MIGRATIONS_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} {_MIGRATIONS_COLUMNS} "
    "ENGINE = MergeTree ORDER BY version"
)

# --- A cluster: the tables above as Distributed tables over one replicated table per shard.

# The ZooKeeper (or ClickHouse Keeper) path of a shard's table: {shard} and {replica} are each
# server's <macros>, so the replicas of one shard share a path and shards do not.
# https://clickhouse.com/docs/engines/table-engines/mergetree-family/replication
ZOOKEEPER_PATH = "/clickhouse/tables/{{shard}}/{database}/{table}"
# Which shard an event goes to: a hash of its id, so every copy of it (a re-shipment, an
# erasure's pseudonymized row) goes where the first one went and FINAL and LIMIT 1 BY id,
# which see one shard's rows at a time, count it once. Ids are random: shards fill evenly.
SHARDING_KEY = "sipHash64(toString(id))"


def local_table(table: str, cluster: str | None) -> str:
    """The table that holds `table`'s rows: itself on one server, `<table>_local` (one on
    each shard) behind the Distributed `table` on a cluster."""
    return f"{table}_local" if cluster else table


def on_cluster(cluster: str | None) -> str:
    return f" ON CLUSTER `{cluster}`" if cluster else ""


def cluster_migrations(cluster: str, database: str) -> tuple[Migration, ...]:
    """MIGRATIONS for `cluster`, version for version: each events table becomes a
    ReplicatedReplacingMergeTree `<name>_local` on every shard and a Distributed `<name>` over
    them; the view feeds each shard's by-type table from the same shard's events. Every
    statement runs ON CLUSTER (each server executes it from the DDL queue in ZooKeeper) and is
    idempotent, as in MIGRATIONS. Names are qualified: a server executing a queued statement
    has no current database of the client's."""
    db = f"`{database}`"

    def replicated(table: str, order_by: str) -> tuple[str, str]:
        local = local_table(table, cluster)
        path = ZOOKEEPER_PATH.format(database=database, table=local)
        engine = f"ReplicatedReplacingMergeTree('{path}', '{{replica}}')"
        create_local = _events_table(f"{db}.{local}{on_cluster(cluster)}", order_by, engine)
        create_distributed = (
            f"CREATE TABLE IF NOT EXISTS {db}.{table}{on_cluster(cluster)} AS {db}.{local} "
            f"ENGINE = Distributed('{cluster}', '{database}', '{local}', {SHARDING_KEY})"
        )
        return create_local, create_distributed

    events, by_type = local_table(EVENTS_TABLE, cluster), local_table(EVENTS_BY_TYPE_TABLE, cluster)
    return (
        Migration(1, MIGRATIONS[0].name, replicated(EVENTS_TABLE, "user_id")),
        Migration(2, MIGRATIONS[1].name, replicated(EVENTS_BY_TYPE_TABLE, "event_type")),
        Migration(
            3,
            MIGRATIONS[2].name,
            (
                f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{EVENTS_BY_TYPE_TABLE}_mv"  # noqa: S608
                f"{on_cluster(cluster)} TO {db}.{by_type} "
                f"AS SELECT {', '.join(COLUMN_NAMES)} FROM {db}.{events}",
            ),
        ),
    )


def cluster_migrations_table(cluster: str, database: str) -> str:
    """The migrations record on a cluster: one replica on every server (no {shard} in its
    path), so audit_migrate run against any of them sees what was applied."""
    path = ZOOKEEPER_PATH.format(database=database, table=MIGRATIONS_TABLE).replace("{shard}/", "")
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.{MIGRATIONS_TABLE}{on_cluster(cluster)} "
        f"{_MIGRATIONS_COLUMNS} "
        f"ENGINE = ReplicatedMergeTree('{path}', '{{shard}}-{{replica}}') ORDER BY version"
    )


CURRENT_DATABASE = "SELECT currentDatabase()"
# Before reading the record on a cluster: this server's replica fetches what another server's
# audit_migrate recorded (replication is asynchronous; without it a run right after another's,
# through another server, applied the last migration again).
SYNC_MIGRATIONS_TABLE = f"SYSTEM SYNC REPLICA {MIGRATIONS_TABLE}"
# Is NAME a cluster of this server's remote_servers, and what engine has a table now.
CLUSTER_NAMES = "SELECT DISTINCT cluster FROM system.clusters ORDER BY cluster"
TABLE_ENGINE = (
    "SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = %(table)s"
)
APPLIED_VERSIONS = f"SELECT DISTINCT version FROM {MIGRATIONS_TABLE}"  # noqa: S608
RECORD_MIGRATION = f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES"

# One batch from the outbox, columnar, in COLUMN_NAMES order.
INSERT_EVENTS = f"INSERT INTO {EVENTS_TABLE} ({', '.join(COLUMN_NAMES)}) VALUES"

# Retention: the monthly partitions of a table wholly before a month (YYYYMM, UInt32).
PARTITIONS_BEFORE = (
    "SELECT DISTINCT partition_id FROM {parts} "
    "WHERE database = %(database)s AND table = %(table)s AND active "
    "AND toUInt32(partition_id) < %(month)s ORDER BY partition_id"
)
# Table and partition id come from the constants above and system.parts, never from input.
DROP_PARTITION = "ALTER TABLE {table}{on_cluster} DROP PARTITION ID '{partition_id}'"


def system_table(name: str, cluster: str | None) -> str:
    """system.<name> of this server, or of every server of the cluster (the cluster table
    function: one query, each shard's rows). Filter it by a database named as a parameter
    (CURRENT_DATABASE): the other servers run the query in a database of their own."""
    return f"cluster('{cluster}', system.{name})" if cluster else f"system.{name}"
