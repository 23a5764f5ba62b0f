"""ClickHouse together with the outbox's events not shipped yet: the audit store while
CLICKHOUSE_URL is set, so a search sees an event from the moment it is recorded, not from the
next shipping run (AUDIT_SHIP_INTERVAL) or the end of a ClickHouse outage.

The outbox is always read first. A shipper inserts a batch into ClickHouse and then deletes
it from the outbox; read in this order an event on its way is seen in one store or both,
never in neither, and both answers are merged in the stores' order with duplicates dropped.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from apps.audit.store.base import (
    PAGE_SIZE,
    AuditEvent,
    EventCursor,
    EventFilters,
    EventPage,
    Subject,
    check_limit,
    page_of,
)
from apps.audit.store.clickhouse import ClickHouseStore
from apps.audit.store.database import DatabaseStore


class MergedStore:
    def __init__(self, shipped: ClickHouseStore, pending: DatabaseStore) -> None:
        self.shipped, self.pending = shipped, pending

    def search(
        self, filters: EventFilters, *, after: EventCursor | None = None, limit: int = PAGE_SIZE
    ) -> EventPage:
        check_limit(limit)
        pending = self.pending.search(filters, after=after, limit=limit)
        shipped = self.shipped.search(filters, after=after, limit=limit)
        events = list(_merged([pending.events, shipped.events]))
        if pending.next_cursor or shipped.next_cursor:  # a store has more beyond its page
            events = events[:limit]
            return EventPage(events, events[-1].cursor)
        return page_of(events, limit)

    def iterate(self, filters: EventFilters) -> Iterator[AuditEvent]:
        # heapq.merge takes the first event of each in turn: the outbox's query runs first.
        return _merged([self.pending.iterate(filters), self.shipped.iterate(filters)])

    def pseudonymize_user(self, subject: Subject) -> int:
        # The outbox first: its UPDATE waits for a shipper holding the subject's rows, which
        # are in ClickHouse once it lets go.
        return self.pending.pseudonymize_user(subject) + self.shipped.pseudonymize_user(subject)


def _merged(sources: list[Iterable[AuditEvent]]) -> Iterator[AuditEvent]:
    """Both answers in the stores' order (newest first), an event held by both once."""
    previous = None
    for event in heapq.merge(*sources, key=lambda event: event.cursor.key, reverse=True):
        if event.id != previous:
            yield event
        previous = event.id
