"""Moves security events from the database outbox (core_security_event) to ClickHouse.

One batch is one PostgreSQL transaction:

1. SELECT the oldest rows ... FOR UPDATE SKIP LOCKED: two shippers never take the same rows
   (https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE);
2. one ClickHouse INSERT of the whole batch;
3. DELETE those rows, COMMIT.

A shipper that dies after 2 and before 3 leaves the rows in the outbox, unlocked when its
connection goes; the next run ships them again, and ReplacingMergeTree with FINAL queries
(clickhouse_schema) counts each event once. ClickHouse down: the INSERT fails within the
connect timeout, the transaction rolls back, nothing is deleted and the outbox grows until a
later run (beat, every AUDIT_SHIP_INTERVAL seconds) gets through.

Requires PostgreSQL (settings refuse CLICKHOUSE_URL with SQLite). Rows are read and deleted
through a psycopg cursor with server-side binding, as core.outbox writes them: the batch's
ids travel as one uuid[] parameter, and the columns come out of PostgreSQL already in the
form ClickHouse takes (epoch seconds, text, arrays), so Python only transposes them.
"""

from __future__ import annotations

import logging
import time

import psycopg
from django.db import connection, transaction

from apps.audit import clickhouse_schema
from apps.core.clickhouse import CLICKHOUSE_FAILURES, get_clickhouse

log = logging.getLogger("tessera.audit")

# The outbox columns in clickhouse_schema.COLUMNS order, converted by PostgreSQL: occurred_at as
# whole epoch seconds plus microseconds, inet as bare text, jsonb as text (metadata) and as a
# text[] (compliance_tags; anything but a JSON array, which emit() never writes, is kept as its
# JSON text rather than failing every batch after it).
_SELECT_BATCH = """
SELECT id,
       floor(extract(epoch FROM occurred_at))::bigint,
       extract(microseconds FROM occurred_at)::bigint %% 1000000,
       event_type, user_id, actor_id, session_id, resource_type, resource_id, action,
       success::int, error_code, error_message, host(ip_address), user_agent, request_id,
       duration_ms, metadata::text, severity,
       CASE jsonb_typeof(compliance_tags)
            WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(compliance_tags))
            ELSE ARRAY[compliance_tags::text] END
FROM core_security_event
ORDER BY occurred_at
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
_DELETE_BATCH = "DELETE FROM core_security_event WHERE id = ANY(%s)"

# When this process first failed to reach ClickHouse in the current outage (monotonic), so
# an outage is logged once when it starts and once when it ends, not at every attempt.
_outage_started: float | None = None


def outbox_ship_batch(*, batch_size: int) -> int:
    """Ship up to `batch_size` of the oldest events nobody else is shipping; returns how many.

    Raises what the ClickHouse client raises (CLICKHOUSE_FAILURES); the transaction is then
    rolled back and the events stay in the outbox.
    """
    with (
        transaction.atomic(),
        connection.wrap_database_errors,
        psycopg.Cursor(connection.connection) as cursor,
    ):
        # Binary results: psycopg builds uuid, int and float values from bytes, not text.
        cursor.execute(_SELECT_BATCH, [batch_size], prepare=True, binary=True)
        rows = cursor.fetchall()
        if not rows:
            return 0
        ids = [row[0] for row in rows]
        columns = [list(column) for column in zip(*rows, strict=True)]
        get_clickhouse().execute(
            clickhouse_schema.INSERT_EVENTS, columns, columnar=True, types_check=False
        )
        cursor.execute(_DELETE_BATCH, [ids], prepare=True)
    return len(rows)


def outbox_drain(*, batch_size: int) -> int:
    """Ship batches until one comes back short (the outbox is drained, or the rest is being
    shipped by another worker); returns how many events this run shipped.

    Beat starts a run every AUDIT_SHIP_INTERVAL seconds; a run keeps going while full batches
    come, so a burst is shipped at full speed without a trigger from emit() (core does not know
    audit exists). ClickHouse failures end the run quietly: logged once per outage.
    """
    global _outage_started
    shipped = 0
    try:
        while True:
            count = outbox_ship_batch(batch_size=batch_size)
            shipped += count
            if count < batch_size:
                break
    except CLICKHOUSE_FAILURES as error:
        if _outage_started is None:
            _outage_started = time.monotonic()
            log.error(
                "audit: cannot ship events to ClickHouse, they wait in the outbox: %s",
                f"{type(error).__name__}: {error}"[:500],
            )
        return shipped
    if _outage_started is not None:
        log.info(
            "audit: shipping to ClickHouse again after %.0fs",
            time.monotonic() - _outage_started,
        )
        _outage_started = None
    return shipped
