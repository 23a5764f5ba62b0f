"""The security events a block of test code records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from apps.core import journal
from apps.core.models import SecurityEvent


@contextmanager
def recorded() -> Iterator[list[SecurityEvent]]:
    """The events recorded inside the block, in order: `[event] = events` asserts one."""
    journal.drain_now()  # what was journaled before the block is not the block's
    seen = set(SecurityEvent.objects.values_list("id", flat=True))
    events: list[SecurityEvent] = []
    yield events
    journal.drain_now()  # what this process journaled outside a transaction
    events.extend(SecurityEvent.objects.exclude(id__in=seen).order_by("occurred_at"))
