"""Reads of the audit trail for the console and the admin API, from the configured store
(apps.audit.store.audit_store): ClickHouse with the events not shipped yet, or the outbox."""

from __future__ import annotations

from apps.audit.store import PAGE_SIZE, AuditEvent, EventCursor, EventFilters, EventPage
from apps.audit.store import audit_store as _store

# Events on a person's console page; the rest is a search away.
RECENT_EVENTS = 10


def event_page(
    *, filters: EventFilters, after: EventCursor | None = None, limit: int = PAGE_SIZE
) -> EventPage:
    """Newest first, one keyset page (no OFFSET, no COUNT: page 1,000 costs what page 1
    does). Raises InvalidFilter for a limit out of range, StoreUnavailable."""
    return _store().search(filters, after=after, limit=limit)


def events_recent_for_user(*, user_id: object, limit: int = RECENT_EVENTS) -> list[AuditEvent]:
    """The person's newest events: the head of their timeline."""
    return event_page(filters=EventFilters(user_id=str(user_id)), limit=limit).events
