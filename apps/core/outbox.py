"""Writes security-event rows to the outbox table; core.events.emit() is its only caller.

A row is inserted on the caller's connection, so inside a transaction it commits or rolls back
with the change it records, and outside one it is committed when write() returns.

Through Django's cursor the INSERT cost a token request more CPU than signing the token: its
13 parameters were quoted into SQL text in Python (Django uses psycopg's client-side binding).
On PostgreSQL the row goes through a psycopg cursor with server-side binding instead (the
parameters are adapted by psycopg's C code and sent apart from the statement), and the
statement is prepared once per connection.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from functools import cache, partial
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.dispatch import Signal
from psycopg.types.json import Jsonb

from apps.core.models import SecurityEvent

# Sent after the commit of each AUDIT_SHIP_THRESHOLD-th event this process writes: the audit
# app then ships at once rather than at its next scheduled run (apps/audit/receivers.py).
outbox_grew = Signal()
_written = itertools.count(1)


def write(values: Mapping[str, Any]) -> None:
    """Insert one event row, a Python value per model field."""
    _insert(values)
    if next(_written) % settings.AUDIT_SHIP_THRESHOLD == 0:
        # robust: a broker outage must not fail the action; the scheduled run ships later.
        transaction.on_commit(partial(outbox_grew.send, sender=SecurityEvent), robust=True)


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
