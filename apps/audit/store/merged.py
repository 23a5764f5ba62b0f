"""ClickHouse together with the outbox's events not shipped yet: the audit store while
CLICKHOUSE_URL is set, so a search sees an event from the moment it is recorded, not from the
next shipping run (AUDIT_SHIP_INTERVAL) or the end of a ClickHouse outage.

The outbox is always read first. A shipper inserts a batch into ClickHouse and then deletes
it from the outbox; read in this order an event on its way is seen in one store or both,
never in neither, and both answers are merged in the stores' order with duplicates dropped.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

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

    def iterate_by_user(self, filters: EventFilters) -> Iterator[AuditEvent]:
        sources: list[Iterable[AuditEvent]] = [
            self.pending.iterate_by_user(filters),
            self.shipped.iterate_by_user(filters),
        ]
        return _merged(sources, key=_by_user, reverse=False)

    def pseudonymize_user(self, subject: Subject) -> int:
        # The outbox first: its UPDATE waits for a shipper holding the subject's rows, which
        # are in ClickHouse once it lets go.
        return self.pending.pseudonymize_user(subject) + self.shipped.pseudonymize_user(subject)


def _newest_first(event: AuditEvent) -> tuple[datetime, str]:
    return event.cursor.key


def _by_user(event: AuditEvent) -> tuple[str, datetime, str]:
    return event.user_id, event.occurred_at, str(event.id)


def _merged(
    sources: list[Iterable[AuditEvent]],
    key: Callable[[AuditEvent], tuple[Any, ...]] = _newest_first,
    reverse: bool = True,
) -> Iterator[AuditEvent]:
    """Both answers in the stores' order (newest first unless told), an event held by both
    once (its copies sort side by side)."""
    previous = None
    for event in heapq.merge(*sources, key=key, reverse=reverse):
        if event.id != previous:
            yield event
        previous = event.id
