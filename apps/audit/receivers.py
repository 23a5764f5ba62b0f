"""The outbox passed its size threshold (core.outbox.outbox_grew): ship now, not at the next
scheduled run, so a burst of events reaches ClickHouse without waiting AUDIT_SHIP_INTERVAL."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.dispatch import receiver

from apps.audit.tasks import ship_events
from apps.core.commit import queue_after_commit
from apps.core.outbox import outbox_grew


@receiver(outbox_grew, dispatch_uid="tessera.audit.ship_on_growth")
def ship_now(sender: Any, **kwargs: Any) -> None:
    if settings.CLICKHOUSE_URL is not None:  # without it the outbox is the audit store
        queue_after_commit(ship_events)
