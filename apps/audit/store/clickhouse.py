"""ClickHouse as an audit store: the tables of apps/audit/clickhouse_schema.py, read over the
native protocol (apps.core.clickhouse).

Every value reaches ClickHouse as a query parameter (%(name)s, escaped by clickhouse-driver);
the SQL text is made of the constant fragments below and table names from clickhouse_schema.
Each event is answered once: FINAL merges the copies a re-shipment leaves under one sorting
key, and LIMIT 1 BY id the two rows an erasure holds for a moment (the pseudonymized copy is
written before the original is deleted, and user_id is part of the sorting key).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from django.conf import settings

from apps.audit.clickhouse_schema import (
    COLUMN_NAMES,
    CURRENT_DATABASE,
    EVENTS_BY_TYPE_TABLE,
    EVENTS_TABLE,
    INSERT_EVENTS,
    PARTITIONED_TABLES,
    local_table,
    on_cluster,
    system_table,
)
from apps.audit.store.base import (
    CHUNK,
    PAGE_SIZE,
    RECORD_FIELDS,
    AuditEvent,
    EventCursor,
    EventFilters,
    EventPage,
    StoreUnavailable,
    Subject,
    check_limit,
    page_of,
    pseudonymized,
)
from apps.core.clickhouse import CLICKHOUSE_FAILURES, get_clickhouse, new_clickhouse

# An erasure waits this long for ClickHouse to delete the originals (a mutation rewrites
# every part holding one of them).
MUTATION_TIMEOUT = 600.0

# AuditEvent's fields, occurred_at as epoch seconds plus the microseconds within.
_READ = tuple(
    column
    for name in RECORD_FIELDS
    for column in (("occurred_at", "occurred_at_us") if name == "occurred_at" else (name,))
)
_SELECTED = ", ".join("toUInt32(occurred_at)" if name == "occurred_at" else name for name in _READ)
_NEWEST_FIRST = "ORDER BY occurred_at DESC, occurred_at_us DESC, toString(id) DESC LIMIT 1 BY id"
# The events table's own sorting key (user_id first): ClickHouse reads it in order.
_BY_USER = "ORDER BY user_id, occurred_at, occurred_at_us, toString(id) LIMIT 1 BY id"
# A sort of a large export may spill to disk rather than fail on the memory limit.
_STREAM_SETTINGS = {"max_bytes_before_external_sort": 1 << 30, "max_block_size": CHUNK}
# A time as the stores compare it: whole seconds (occurred_at) and the microsecond within.
_SINCE = (
    "occurred_at >= toDateTime(%(since_s)s)"
    " AND (occurred_at > toDateTime(%(since_s)s) OR occurred_at_us >= %(since_us)s)"
)
_UNTIL = (
    "occurred_at <= toDateTime(%(until_s)s)"
    " AND (occurred_at < toDateTime(%(until_s)s) OR occurred_at_us < %(until_us)s)"
)
_AFTER = (
    "occurred_at <= toDateTime(%(after_s)s) AND (occurred_at < toDateTime(%(after_s)s)"
    " OR occurred_at_us < %(after_us)s"
    " OR (occurred_at_us = %(after_us)s AND toString(id) < %(after_id)s))"
)
_ABOUT = (
    "(user_id = %(subject_id)s OR actor_id = %(subject_id)s OR resource_id = %(subject_id)s"
    " OR position(metadata, %(subject_id)s) > 0"
)
_ABOUT_EMAIL = " OR positionCaseInsensitiveUTF8(metadata, %(subject_email)s) > 0"
# A threat.assessed event's score and action, read from metadata's JSON text (PostgreSQL's
# jsonb text: `"key": value`) by regular expression: the ClickHouse versions supported include
# 18.16, which has no JSONExtract*, and whose visitParam* functions want JSON without spaces.
# The first occurrence is the top-level key: jsonb writes an object's keys shortest first, and
# the nested objects (the reasons) sit under longer keys and have neither.
_MIN_SCORE = (
    "match(metadata, '\"score\": ?[0-9]')"
    " AND toFloat64OrZero(extract(metadata, '\"score\": ?([0-9.]+)')) >= %(min_score)s"
)
_RISK_ACTION = 'extract(metadata, \'"action": ?"([a-z_]*)"\') = %(risk_action)s'
_MUTATIONS_RUNNING = (
    "SELECT count() FROM {mutations} "
    "WHERE database = %(database)s AND table IN %(tables)s AND NOT is_done"
)


class ClickHouseStore:
    def search(
        self, filters: EventFilters, *, after: EventCursor | None = None, limit: int = PAGE_SIZE
    ) -> EventPage:
        check_limit(limit)
        query, params = _select(filters, after)
        rows = _execute(f"{query} LIMIT %(limit)s", {**params, "limit": limit + 1})
        return page_of([_event(row) for row in rows], limit)

    def iterate(self, filters: EventFilters) -> Iterator[AuditEvent]:
        query, params = _select(filters, None)
        return _stream(query, params)

    def iterate_by_user(self, filters: EventFilters) -> Iterator[AuditEvent]:
        where, params = _where(filters, None)
        query = f"SELECT {_SELECTED} FROM {EVENTS_TABLE} FINAL WHERE {where} {_BY_USER}"  # noqa: S608
        return _stream(query, params)

    def pseudonymize_user(self, subject: Subject) -> int:
        """Re-inserts the subject's events pseudonymized, then deletes the originals from every
        events table (ALTER TABLE ... DELETE, a mutation: user_id is in the sorting key, which
        no UPDATE may change) and waits until ClickHouse has done so. A stop in between
        leaves both copies, which queries count once; the next run deletes the originals."""
        rewritten, newest = 0, None
        # The read streams on the thread's connection; the writes need another.
        writer = new_clickhouse()
        try:
            events = self.iterate(EventFilters(about=subject))  # newest first
            while batch := list(islice(events, CHUNK)):
                newest = newest or batch[0].occurred_at
                replaced = [_row(pseudonymized(event, subject)) for event in batch]
                # The materialized view copies them into the by-type table.
                writer.execute(INSERT_EVENTS, replaced, types_check=False)
                rewritten += len(replaced)
        except CLICKHOUSE_FAILURES as error:
            raise StoreUnavailable(f"ClickHouse: {error}") from error
        finally:
            writer.disconnect()
        if newest is not None:
            # Not an event shipped since the read: it has no copy yet (the next run's).
            copied = EventFilters(about=subject, until=newest + timedelta(microseconds=1))
            where, params = _where(copied, None)
            # On a cluster the rows are in the shards' local tables: deleted there, ON CLUSTER.
            cluster = settings.CLICKHOUSE_CLUSTER
            for table in _local_tables(cluster):
                _execute(f"ALTER TABLE {table}{on_cluster(cluster)} DELETE WHERE {where}", params)
            _wait_for_mutations(cluster)
        return rewritten


def _select(filters: EventFilters, after: EventCursor | None) -> tuple[str, dict[str, Any]]:
    # Events of one type are read in that type's order, unless the user is known.
    by_type = filters.event_type and not filters.user_id
    table = EVENTS_BY_TYPE_TABLE if by_type else EVENTS_TABLE
    where, params = _where(filters, after)
    query = f"SELECT {_SELECTED} FROM {table} FINAL WHERE {where} {_NEWEST_FIRST}"  # noqa: S608
    return query, params


def _where(filters: EventFilters, after: EventCursor | None) -> tuple[str, dict[str, Any]]:
    conditions: list[str] = []
    params: dict[str, Any] = {}
    exact = {
        "user_id": filters.user_id,
        "event_type": filters.event_type,
        "ip_address": filters.ip_address,
        "severity": filters.severity,
    }
    for name, value in exact.items():
        if value:
            conditions.append(f"{name} = %({name})s")
            params[name] = value
    if filters.success is not None:
        conditions.append("success = %(success)s")
        params["success"] = int(filters.success)
    if filters.min_score is not None:  # an event without a score has none to compare
        conditions.append(_MIN_SCORE)
        params["min_score"] = filters.min_score
    if filters.risk_action:
        conditions.append(_RISK_ACTION)
        params["risk_action"] = filters.risk_action
    for name, moment, condition in (
        ("since", filters.since, _SINCE),
        ("until", filters.until, _UNTIL),
        ("after", after.at if after else None, _AFTER),
    ):
        if moment is not None:
            conditions.append(condition)
            params[f"{name}_s"], params[f"{name}_us"] = _seconds(moment), moment.microsecond
    if after is not None:
        params["after_id"] = str(after.id)
    if filters.about is not None:
        conditions.append(_ABOUT + (_ABOUT_EMAIL if filters.about.email else "") + ")")
        params["subject_id"], params["subject_email"] = filters.about.user_id, filters.about.email
    return " AND ".join(conditions) or "1", params


def _execute(query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    try:
        rows: list[tuple[Any, ...]] = get_clickhouse().execute(query, params)
    except CLICKHOUSE_FAILURES as error:
        raise StoreUnavailable(f"ClickHouse: {error}") from error
    return rows


def _stream(query: str, params: dict[str, Any]) -> Iterator[AuditEvent]:
    client = get_clickhouse()
    finished = False
    try:
        for row in client.execute_iter(query, params, settings=_STREAM_SETTINGS):
            yield _event(row)
        finished = True
    except CLICKHOUSE_FAILURES as error:
        raise StoreUnavailable(f"ClickHouse: {error}") from error
    finally:
        if not finished:  # the rest of the answer is still on its way: drop the connection
            client.disconnect()


def _local_tables(cluster: str | None) -> tuple[str, ...]:
    return tuple(local_table(table, cluster) for table in PARTITIONED_TABLES)


def _wait_for_mutations(cluster: str | None) -> None:
    """Until no shard has a mutation of the events tables left to do."""
    ((database,),) = _execute(CURRENT_DATABASE, {})
    query = _MUTATIONS_RUNNING.format(mutations=system_table("mutations", cluster))
    params = {"database": database, "tables": _local_tables(cluster)}
    deadline = time.monotonic() + MUTATION_TIMEOUT
    while _execute(query, params)[0][0]:
        if time.monotonic() > deadline:
            raise StoreUnavailable(
                f"ClickHouse has not finished deleting the originals after {MUTATION_TIMEOUT}s; "
                "erase again to finish."
            )
        time.sleep(0.1)


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp() // 1)


def _event(row: tuple[Any, ...]) -> AuditEvent:
    values = dict(zip(_READ, row, strict=True))
    micros = values.pop("occurred_at_us")
    values["occurred_at"] = datetime.fromtimestamp(values["occurred_at"], UTC) + timedelta(
        microseconds=micros
    )
    values["success"] = bool(values["success"])
    values["metadata"] = json.loads(values["metadata"])
    values["compliance_tags"] = tuple(values["compliance_tags"])
    return AuditEvent(**values)


def _row(event: AuditEvent) -> list[Any]:
    """The event as clickhouse_schema.INSERT_EVENTS takes it, in COLUMN_NAMES order."""
    values = {
        **vars(event),
        "occurred_at": _seconds(event.occurred_at),
        "occurred_at_us": event.occurred_at.microsecond,
        "success": int(event.success),
        "metadata": json.dumps(event.metadata, ensure_ascii=False),
        "compliance_tags": list(event.compliance_tags),
    }
    return [values[name] for name in COLUMN_NAMES]
