"""Writes security-event rows to the outbox table; core.events.emit() is its only caller.

Inside a transaction a row is inserted on the caller's connection, so it commits or rolls back
with the change it records. Outside one it is appended to this process's journal before
write() returns and moved here in batches (core.journal); with AUDIT_JOURNAL off it is
inserted and committed when write() returns.

Through Django's cursor the INSERT cost a token request more CPU than signing the token: its
13 parameters were quoted into SQL text in Python (Django uses psycopg's client-side binding).
On PostgreSQL the row goes through a psycopg cursor with server-side binding instead (the
parameters are adapted by psycopg's C code and sent apart from the statement), and the
statement is prepared once per connection.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from django.dispatch import Signal
from psycopg.types.json import Jsonb

from apps.core import journal
from apps.core.commit import after_commit
from apps.core.models import SecurityEvent

# Sent after the commit of each AUDIT_SHIP_THRESHOLD-th event this process writes: the audit
# app then ships at once rather than at its next scheduled run (apps/audit/receivers.py).
outbox_grew = Signal()
_written = itertools.count(1)


def write(values: Mapping[str, Any]) -> None:
    """Record one event row, a Python value per model field: inserted in the caller's
    transaction when there is one; outside one appended to this process's journal, which
    moves it here within 50 ms (core.journal), unless AUDIT_JOURNAL is off."""
    if settings.AUDIT_JOURNAL and not connection.in_atomic_block:
        journal.append(values)
        return
    _insert(values)
    _count(1)


def insert_rows(rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert a batch of event rows in the current transaction (core.journal's drain)."""
    fields = SecurityEvent._meta.concrete_fields
    prepared = [
        [field.get_db_prep_save(values[field.name], connection) for field in fields]
        for values in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_insert_sql(), prepared)
    _count(len(rows))


def insert_json(records: Sequence[bytes], *, checkpoint: tuple[str, int] | None = None) -> None:
    """Insert a batch of events given as JSON objects keyed by column (core.journal's records);
    PostgreSQL only. With `checkpoint` (journal name, bytes drained), that journal's checkpoint
    is written by the same statement: atomic by itself, so outside a transaction the batch is
    one round trip (no BEGIN, no COMMIT).

    PostgreSQL parses the batch itself (jsonb_populate_recordset): no Python work per row.
    Measured against decoding each record and COPYing the rows, the drain thread's CPU per event
    fell from about 50 to about 10 µs (benchmarks/audit_journal.py).
    """
    batch = "[" + ",".join(record.decode() for record in records) + "]"
    sql = _recordset_sql()
    params: list[object] = [batch]
    if checkpoint is not None:
        sql = f"WITH batch AS ({sql}) {_CHECKPOINT_UPSERT}"
        params = [batch, *checkpoint]
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as pg:
        pg.execute(sql, params, prepare=True)
    _count(len(records))


# core.journal's checkpoint (models.JournalCheckpoint).
_CHECKPOINT_UPSERT = (
    "INSERT INTO core_journal_checkpoint (journal, drained_bytes) VALUES (%s, %s) "
    "ON CONFLICT (journal) DO UPDATE SET drained_bytes = excluded.drained_bytes"
)


def _count(rows: int) -> None:
    if any(next(_written) % settings.AUDIT_SHIP_THRESHOLD == 0 for _ in range(rows)):
        # robust: a broker outage must not fail the action; the scheduled run ships later.
        after_commit(outbox_grew.send, sender=SecurityEvent)


def _insert(values: Mapping[str, Any]) -> None:
    fields = SecurityEvent._meta.concrete_fields
    if connection.vendor != "postgresql":
        row = [field.get_db_prep_save(values[field.name], connection) for field in fields]
        with connection.cursor() as cursor:
            cursor.execute(_insert_sql(), row)
        return
    # psycopg adapts uuid, datetime and inet itself; JSON needs saying.
    row = [_pg(values[field.name]) for field in fields]
    # What Django's cursor() does first: reconnect if the connection went bad, and turn
    # driver errors into Django's (marking the connection for closing at request end).
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_insert_sql(), row, prepare=True)
    if connection.queries_logged:  # as Django's cursor would: statement counts stay honest
        connection.queries_log.append({"sql": _insert_sql(), "time": "0.000"})


def _pg(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


@cache
def _insert_sql() -> str:
    # Identifiers come from the model and are quoted; every value is a query parameter.
    quote = connection.ops.quote_name
    names = [field.name for field in SecurityEvent._meta.concrete_fields]
    table = quote(SecurityEvent._meta.db_table)
    placeholders = ", ".join(["%s"] * len(names))
    return f"INSERT INTO {table} ({', '.join(map(quote, names))}) VALUES ({placeholders})"  # noqa: S608


@cache
def _recordset_sql() -> str:
    quote = connection.ops.quote_name
    names = ", ".join(quote(field.name) for field in SecurityEvent._meta.concrete_fields)
    table = quote(SecurityEvent._meta.db_table)
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} "  # noqa: S608 - names from the model
        f"FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)"
    )
