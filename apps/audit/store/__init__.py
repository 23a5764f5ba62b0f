"""The audit store: one interface (base.AuditStore) over the event outbox and ClickHouse."""

from __future__ import annotations

from django.conf import settings

from apps.audit.store.base import (
    PAGE_SIZE,
    PAGE_SIZE_MAX,
    RECORD_FIELDS,
    AuditEvent,
    AuditStore,
    EventCursor,
    EventFilters,
    EventPage,
    InvalidFilter,
    StoreUnavailable,
    Subject,
    pseudonym,
)
from apps.audit.store.clickhouse import ClickHouseStore
from apps.audit.store.database import DatabaseStore
from apps.audit.store.merged import MergedStore

__all__ = [
    "PAGE_SIZE",
    "PAGE_SIZE_MAX",
    "RECORD_FIELDS",
    "AuditEvent",
    "AuditStore",
    "ClickHouseStore",
    "DatabaseStore",
    "EventCursor",
    "EventFilters",
    "EventPage",
    "InvalidFilter",
    "MergedStore",
    "StoreUnavailable",
    "Subject",
    "audit_store",
    "pseudonym",
]


def audit_store() -> AuditStore:
    """ClickHouse and the events not shipped yet when CLICKHOUSE_URL is set (merged.py);
    otherwise the outbox, which then is the whole audit trail."""
    if settings.CLICKHOUSE_URL is None:
        return DatabaseStore()
    return MergedStore(ClickHouseStore(), DatabaseStore())
