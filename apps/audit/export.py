"""Exports of audit events as CSV or JSON Lines, streamed from the store CHUNK events at a
time (never the whole result in memory), each export recorded with the operator as actor."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from typing import NamedTuple

from apps.audit.store import RECORD_FIELDS, AuditEvent, EventFilters, audit_store
from apps.audit.store.base import CHUNK
from apps.core.events import EventType, emit

# OWASP CSV Injection (https://owasp.org/www-community/attacks/CSV_Injection): a cell that a
# spreadsheet would read as a formula is prefixed with a quote and so read as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Format(NamedTuple):
    content_type: str
    encode: Callable[[Iterable[list[AuditEvent]]], Iterator[str]]


def _csv_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv(chunks: Iterable[list[AuditEvent]]) -> Iterator[str]:
    """RFC 4180 CSV: a header, then one row per event; metadata as its JSON text and
    compliance tags separated by spaces."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(RECORD_FIELDS)
    for chunk in chunks:
        for event in chunk:
            record = event.as_record()
            record["metadata"] = json.dumps(event.metadata, ensure_ascii=False)
            record["compliance_tags"] = " ".join(event.compliance_tags)
            writer.writerow([_csv_cell(record[name]) for name in RECORD_FIELDS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _jsonl(chunks: Iterable[list[AuditEvent]]) -> Iterator[str]:
    """JSON Lines (https://jsonlines.org): one event record per line."""
    for chunk in chunks:
        yield "".join(
            json.dumps(event.as_record(), ensure_ascii=False, separators=(",", ":")) + "\n"
            for event in chunk
        )


FORMATS = {
    "csv": Format("text/csv; charset=utf-8", _csv),
    "jsonl": Format("application/jsonl; charset=utf-8", _jsonl),
}


def chunked(events: Iterator[AuditEvent]) -> Iterator[list[AuditEvent]]:
    """`events` CHUNK at a time, the first chunk read now: an unreachable store raises
    StoreUnavailable before a response has begun, not halfway through a download."""
    chunks = iter(lambda: list(islice(events, CHUNK)), [])
    first = next(chunks, [])
    return chain([first], chunks)


def events_export(*, filters: EventFilters, fmt: str, actor_id: object) -> Iterator[str]:
    """The matching events, newest first, as `fmt` (a key of FORMATS) text chunks. The export
    is recorded (SOC 2 CC7.2, GDPR Art. 30): who, which filters, and whose events when the
    filters name a person."""
    chunks = chunked(audit_store().iterate(filters))
    emit(
        EventType.AUDIT_EXPORTED,
        user_id=filters.user_id,
        actor_id=actor_id,
        resource_type="audit_events",
        action="exported",
        metadata={"format": fmt, "filters": filters.as_params()},
    )
    return FORMATS[fmt].encode(chunks)
