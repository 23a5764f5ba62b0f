"""The audit schema and every query of the pipeline on a current ClickHouse, embedded by chDB.

The suite's server is Debian's ClickHouse 18.16; production may run today's. The same DDL and
queries must work on both, with the same results: every statement of
apps/audit/clickhouse_schema.py and of tests/audit/conftest.py runs here against chDB, with
parameters substituted by clickhouse-driver's own escaping (what the driver sends the server).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from chdb import session
from clickhouse_driver.util.escape import escape_param, escape_params

from apps.audit import clickhouse_schema as schema
from tests.audit import conftest as queries


class Embedded:
    """A chDB session answering queries as clickhouse-driver's Client.execute would be asked
    them: `%(name)s` parameters, and INSERT ... VALUES followed by rows."""

    def __init__(self, path: str) -> None:
        self.session = session.Session(path)

    def execute(self, query: str, params: Any = None) -> list[tuple[str, ...]]:
        if query.rstrip().endswith("VALUES"):
            query += " " + ", ".join(str(escape_param(tuple(row), None)) for row in params)
        elif params:
            query %= escape_params(params, None)
        result = self.session.query(query, "TabSeparated")
        return [tuple(line.split("\t")) for line in result.bytes().decode().splitlines()]

    def version(self) -> str:
        return self.execute("SELECT version()")[0][0]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    clickhouse = Embedded(str(tmp_path_factory.mktemp("chdb")))
    major = int(clickhouse.version().split(".")[0])
    assert major >= 24, f"chDB embeds ClickHouse {clickhouse.version()}, not a current one"
    yield clickhouse
    clickhouse.session.close()


def _row(event_id: uuid.UUID, *, when: int, user: str, event_type: str) -> tuple[Any, ...]:
    """One outbox row as the shipper hands it to ClickHouse (clickhouse_schema.COLUMNS)."""
    values = {
        "id": event_id, "occurred_at": when, "occurred_at_us": 123456,
        "event_type": event_type, "user_id": user, "actor_id": "", "session_id": "s-1",
        "resource_type": "client", "resource_id": "rp", "action": "issued", "success": 1,
        "error_code": "", "error_message": "it's \\ fine", "ip_address": None,
        "user_agent": "ua", "request_id": "r-1", "duration_ms": 1.5,
        "metadata": '{"scope": "openid"}', "severity": "low", "compliance_tags": ["SOC2"],
    }  # fmt: skip
    return tuple(values[name] for name in schema.COLUMN_NAMES)


def test_schema_and_queries_run_on_current_clickhouse(embedded: Embedded) -> None:
    # audit_migrate's statements, in its order (apps/audit/management/commands/audit_migrate.py)
    embedded.execute(schema.CREATE_MIGRATIONS_TABLE)
    assert embedded.execute(schema.APPLIED_VERSIONS) == []
    for migration in schema.MIGRATIONS:
        for statement in migration.statements:
            embedded.execute(statement)
        embedded.execute(schema.RECORD_MIGRATION, [(migration.version, migration.name)])
    assert embedded.execute(queries.MIGRATIONS_RECORDED) == [
        (str(m.version), m.name) for m in schema.MIGRATIONS
    ]
    assert embedded.execute(queries.TABLES) == [
        ("audit_events", "ReplacingMergeTree", "toYYYYMM(occurred_at)",
         "user_id, occurred_at, occurred_at_us, id"),
        ("audit_events_by_type", "ReplacingMergeTree", "toYYYYMM(occurred_at)",
         "event_type, occurred_at, occurred_at_us, id"),
        ("audit_events_by_type_mv", "MaterializedView", "", ""),
        ("audit_schema_migrations", "MergeTree", "", "version"),
    ]  # fmt: skip
    # audit_migrate's checks before it applies anything (the cluster's own DDL needs
    # ZooKeeper and remote_servers: tests/audit/test_cluster.py runs it on the suite's 18.16).
    engine = embedded.execute(schema.TABLE_ENGINE, {"table": schema.EVENTS_TABLE})
    assert engine == [("ReplacingMergeTree",)]
    assert "tessera_no_such_cluster" not in {
        name for (name,) in embedded.execute(schema.CLUSTER_NAMES)
    }
    for table in schema.PARTITIONED_TABLES:
        embedded.execute(queries.STOP_MERGES.format(table=table))

    # The shipper's INSERT, one event shipped twice (a killed shipper's batch, re-shipped)
    # and one from an old month.
    january_2024, june_2025 = 1704067200, 1748736000
    twice, old = uuid.uuid4(), uuid.uuid4()
    batch = [_row(twice, when=june_2025, user="u-1", event_type="token.issued")]
    embedded.execute(schema.INSERT_EVENTS, batch)
    embedded.execute(schema.INSERT_EVENTS, batch)
    embedded.execute(
        schema.INSERT_EVENTS, [_row(old, when=january_2024, user="u-2", event_type="logout")]
    )
    assert tuple(int(embedded.execute(query)[0][0]) for query in queries.COUNTS) == (3, 2, 2, 2)
    assert embedded.execute(queries.USER_EVENT_TYPES, {"user": "u-1"}) == [("token.issued",)]
    [stored] = [row for row in embedded.execute(queries.EVENTS_FINAL) if row[0] == str(twice)]
    assert stored[1:4] == ("2025-06-01 00:00:00", "123456", "token.issued")
    assert stored[schema.COLUMN_NAMES.index("error_message")] == "it\\'s \\\\ fine"  # TSV escapes
    assert stored[schema.COLUMN_NAMES.index("ip_address")] == "\\N"  # NULL
    assert stored[schema.COLUMN_NAMES.index("compliance_tags")] == "['SOC2']"

    # Retention (apps/audit/retention.py): the partitions before June 2025, then dropped.
    [(database,)] = embedded.execute(schema.CURRENT_DATABASE)
    for table in schema.PARTITIONED_TABLES:
        found = embedded.execute(
            schema.PARTITIONS_BEFORE.format(parts=schema.system_table("parts", None)),
            {"database": database, "table": table, "month": 202506},
        )
        assert found == [("202401",)]
        embedded.execute(
            schema.DROP_PARTITION.format(table=table, on_cluster="", partition_id="202401")
        )
    assert embedded.execute(queries.PARTITIONS) == [
        ("audit_events", "202506"),
        ("audit_events_by_type", "202506"),
    ]

    for table in schema.PARTITIONED_TABLES:
        embedded.execute(queries.START_MERGES.format(table=table))
        embedded.execute(queries.OPTIMIZE.format(table=table))
    assert tuple(int(embedded.execute(query)[0][0]) for query in queries.COUNTS) == (1, 1, 1, 1)
    for table in schema.PARTITIONED_TABLES:  # the benchmark's reset
        embedded.execute(queries.TRUNCATE.format(table=table))
    assert int(embedded.execute(queries.ROWS)[0][0]) == 0
    for table in queries.DROP_ORDER:  # the tests' reset
        embedded.execute(queries.DROP_TABLE.format(table=table))
    assert embedded.execute(queries.TABLES) == []


def test_every_statement_of_the_schema_module_is_run_above() -> None:
    # A statement added to clickhouse_schema must be added to the test above too.
    statements = {
        name for name, value in vars(schema).items()
        if isinstance(value, str) and re.match(r"\s*(SELECT|INSERT|CREATE|ALTER)\b", value)
    }  # fmt: skip
    assert statements == {
        "CREATE_MIGRATIONS_TABLE", "APPLIED_VERSIONS", "RECORD_MIGRATION", "INSERT_EVENTS",
        "PARTITIONS_BEFORE", "DROP_PARTITION", "CURRENT_DATABASE", "CLUSTER_NAMES",
        "TABLE_ENGINE",
    }  # fmt: skip
