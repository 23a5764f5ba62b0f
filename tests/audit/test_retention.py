"""Audit retention (apps/audit/retention.py): events older than AUDIT_RETENTION_DAYS go, whole
months at a time in ClickHouse, row by row from the outbox when it is the audit store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.audit import retention
from apps.audit.shipping import outbox_drain
from apps.audit.tasks import apply_retention, ship_events
from apps.core import journal
from apps.core.events import EventType, emit
from apps.core.models import SecurityEvent
from tests.audit.conftest import PARTITIONS, counts


def _event_at(when: datetime) -> None:
    """An event recorded through emit(), then moved back in time as if it were that old."""
    event_id = emit(EventType.LOGOUT, user_id="u-1")
    journal.drain_now()  # outside a transaction it went to the journal first
    SecurityEvent.objects.filter(pk=event_id).update(occurred_at=when)


def _month(when: datetime) -> str:
    return f"{when:%Y%m}"


@pytest.mark.django_db(transaction=True)
def test_retention_drops_the_months_wholly_past_it_in_both_tables(
    audit_clickhouse, settings
) -> None:
    settings.AUDIT_RETENTION_DAYS = 400
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=400)
    old = cutoff - timedelta(days=200)
    month_start = cutoff.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_old_month = month_start - timedelta(microseconds=1)
    kept = [month_start, cutoff + timedelta(hours=1), now]  # the cutoff's month stays whole
    for when in (old, last_old_month, *kept):
        _event_at(when)
    assert outbox_drain(batch_size=100) == 5

    dropped = retention.clickhouse_partitions_drop(before=cutoff)

    months = sorted({_month(old), _month(last_old_month)})
    assert dropped == [f"{table}:{month}" for table in ("audit_events", "audit_events_by_type")
                       for month in months]  # fmt: skip
    assert counts(audit_clickhouse) == (3, 3, 3, 3)
    remaining = {partition for _, partition in audit_clickhouse.execute(PARTITIONS)}
    assert remaining == {_month(when) for when in kept}
    assert apply_retention() == 0  # the daily task finds nothing more to drop


@pytest.mark.django_db(transaction=True)
def test_without_clickhouse_retention_deletes_old_outbox_rows_in_batches(
    settings, monkeypatch
) -> None:
    settings.CLICKHOUSE_URL = None
    settings.AUDIT_RETENTION_DAYS = 30
    monkeypatch.setattr(retention, "OUTBOX_DELETE_BATCH", 2)  # several batches for 5 rows
    now = datetime.now(UTC)
    for days in (400, 90, 45, 31, 30.5):
        _event_at(now - timedelta(days=days))
    recent = [emit(EventType.LOGOUT, user_id="u-1") for _ in range(2)]
    journal.drain_now()
    _event_at(now - timedelta(days=29))

    assert apply_retention() == 5

    assert SecurityEvent.objects.count() == 3
    assert set(recent) <= set(SecurityEvent.objects.values_list("pk", flat=True))
    assert ship_events() == 0  # without ClickHouse the outbox is the store: nothing ships
    assert SecurityEvent.objects.count() == 3
