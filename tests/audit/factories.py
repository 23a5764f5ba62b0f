"""Audit events made to measure, and the ways to put them where a store reads them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from apps.audit.shipping import outbox_ship_batch
from apps.audit.store import AuditEvent
from apps.core.models import SecurityEvent

T0 = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)


def audit_event(seconds: float = 0, **fields: Any) -> AuditEvent:
    """A token.issued event `seconds` after T0 unless `fields` say otherwise."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "occurred_at": T0 + timedelta(seconds=seconds),
        "event_type": "token.issued",
        "user_id": "",
        "actor_id": "",
        "session_id": "",
        "resource_type": "",
        "resource_id": "",
        "action": "issued",
        "success": True,
        "error_code": "",
        "error_message": "",
        "ip_address": None,
        "user_agent": "Mozilla/5.0",
        "request_id": "",
        "duration_ms": None,
        "metadata": {},
        "severity": "low",
        "compliance_tags": ("SOC2",),
    }
    return AuditEvent(**{**values, **fields})


def outbox_insert(events: list[AuditEvent]) -> None:
    """Rows of the event outbox, as emit() writes them."""
    SecurityEvent.objects.bulk_create(
        [SecurityEvent(**{**vars(e), "compliance_tags": list(e.compliance_tags)}) for e in events],
        batch_size=2000,
    )


def ship_all() -> None:
    """The real shipper (apps/audit/shipping.py) moves the whole outbox to ClickHouse."""
    while outbox_ship_batch(batch_size=10_000):
        pass
