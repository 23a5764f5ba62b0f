from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.audit.retention import (
    clickhouse_partitions_drop,
    outbox_rows_delete,
    retention_cutoff,
)
from apps.audit.shipping import outbox_drain


@shared_task
def ship_events() -> int:
    """Beat runs this every AUDIT_SHIP_INTERVAL seconds: ships the outbox to ClickHouse until it
    is drained; returns how many events. Does nothing without ClickHouse (the outbox is then
    the audit store). A ClickHouse outage is not a task failure: the events wait, the next run
    tries again, and the outage is logged once (shipping.outbox_drain)."""
    if settings.CLICKHOUSE_URL is None:
        return 0
    return outbox_drain(batch_size=settings.AUDIT_SHIP_BATCH)


@shared_task
def apply_retention() -> int:
    """Beat runs this daily: removes events older than AUDIT_RETENTION_DAYS from the audit
    store, ClickHouse's monthly partitions or the outbox's rows; returns how many partitions
    or rows."""
    before = retention_cutoff(now=timezone.now())
    if settings.CLICKHOUSE_URL is None:
        return outbox_rows_delete(before=before)
    return len(clickhouse_partitions_drop(before=before))
