"""The event outbox (core_security_event) as an audit store, through the ORM: the whole audit
trail when there is no ClickHouse, and the events not shipped yet when there is."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connection
from django.db.models import F, Q, QuerySet, TextField
from django.db.models.functions import Cast, Collate

from apps.audit.store.base import (
    CHUNK,
    PAGE_SIZE,
    RECORD_FIELDS,
    AuditEvent,
    EventCursor,
    EventFilters,
    EventPage,
    Subject,
    check_limit,
    page_of,
    pseudonymized,
)
from apps.core.models import SecurityEvent

# What an erasure rewrites (base.pseudonymized).
_PSEUDONYMIZED_FIELDS = ("user_id", "actor_id", "resource_id", "metadata", "ip_address")
_NEWEST_FIRST = ("-occurred_at", "-id")


class DatabaseStore:
    def search(
        self, filters: EventFilters, *, after: EventCursor | None = None, limit: int = PAGE_SIZE
    ) -> EventPage:
        check_limit(limit)
        rows = _matching(filters, after).order_by(*_NEWEST_FIRST)[: limit + 1]
        return page_of([_event(row) for row in rows], limit)

    def iterate(self, filters: EventFilters) -> Iterator[AuditEvent]:
        # One query; on PostgreSQL a server-side cursor, so memory holds CHUNK rows at a time.
        rows = _matching(filters, None).order_by(*_NEWEST_FIRST).iterator(chunk_size=CHUNK)
        return (_event(row) for row in rows)

    def iterate_by_user(self, filters: EventFilters) -> Iterator[AuditEvent]:
        # PostgreSQL sorts text by the database's collation; ClickHouse and Python compare
        # bytes. The merged store interleaves both answers, so both sort as bytes ("C").
        by_user = Collate(F("user_id"), "C") if connection.vendor == "postgresql" else "user_id"
        rows = _matching(filters, None).order_by(by_user, "occurred_at", "id")
        return (_event(row) for row in rows.iterator(chunk_size=CHUNK))

    def pseudonymize_user(self, subject: Subject) -> int:
        """UPDATEs the subject's rows in place, CHUNK at a time in id order. The one change an
        outbox row ever gets: GDPR Art. 17 outranks append-only. A row a shipper holds
        (FOR UPDATE) is waited for; it is then in ClickHouse, for the next store to rewrite."""
        rewritten = 0
        matching = _matching(EventFilters(about=subject), None).order_by("id")
        batch = list(matching[:CHUNK])
        while batch:
            rows = [SecurityEvent(**vars(pseudonymized(_event(row), subject))) for row in batch]
            SecurityEvent.objects.bulk_update(rows, _PSEUDONYMIZED_FIELDS)
            rewritten += len(rows)
            batch = list(matching.filter(id__gt=batch[-1].id)[:CHUNK])
        return rewritten


def _matching(filters: EventFilters, after: EventCursor | None) -> QuerySet[SecurityEvent]:
    events = SecurityEvent.objects.all()
    exact = {
        "user_id": filters.user_id,
        "event_type": filters.event_type,
        "ip_address": filters.ip_address,
        "severity": filters.severity,
    }
    events = events.filter(**{name: value for name, value in exact.items() if value})
    if filters.success is not None:
        events = events.filter(success=filters.success)
    if filters.min_score is not None:
        events = events.filter(metadata__score__gte=filters.min_score)
    if filters.risk_action:
        events = events.filter(metadata__action=filters.risk_action)
    if filters.since is not None:
        events = events.filter(occurred_at__gte=filters.since)
    if filters.until is not None:
        events = events.filter(occurred_at__lt=filters.until)
    if filters.about is not None:
        events = events.annotate(metadata_text=Cast("metadata", TextField())).filter(
            _about(filters.about)
        )
    if after is not None:
        # (occurred_at, id) < after, spelled so that the occurred_at index bounds the scan.
        events = events.filter(occurred_at__lte=after.at).exclude(
            occurred_at=after.at, id__gte=after.id
        )
    return events


def _about(subject: Subject) -> Q:
    named = (
        Q(user_id=subject.user_id)
        | Q(actor_id=subject.user_id)
        | Q(resource_id=subject.user_id)
        | Q(metadata_text__contains=subject.user_id)
    )
    return named | Q(metadata_text__icontains=subject.email) if subject.email else named


def _event(row: SecurityEvent) -> AuditEvent:
    # The record's fields are the model's (AuditEvent's doc); tags come back as a list.
    values = {name: getattr(row, name) for name in RECORD_FIELDS}
    return AuditEvent(**values | {"compliance_tags": tuple(row.compliance_tags)})
