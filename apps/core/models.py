from __future__ import annotations

import uuid
from typing import Any, NoReturn

from django.db import models
from django.utils import timezone


class SecurityEvent(models.Model):
    """One row of the security-event outbox; written by core.events.emit() only.

    Append-only: a saved event is never updated or deleted one by one (authentik's Event and
    Zulip's RealmAuditLog do the same); the audit shipper removes rows in bulk once shipped.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    occurred_at = models.DateTimeField(default=timezone.now)
    event_type = models.CharField(max_length=64)
    user_id = models.CharField(max_length=64, blank=True)
    actor_id = models.CharField(max_length=64, blank=True)
    session_id = models.CharField(max_length=64, blank=True)
    resource_type = models.CharField(max_length=64, blank=True)
    resource_id = models.CharField(max_length=128, blank=True)
    action = models.CharField(max_length=64, blank=True)
    success = models.BooleanField(default=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=512, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    # Milliseconds from the request's arrival to the event (None outside a request).
    duration_ms = models.FloatField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # From events.RULES, never written by hand: low, medium, high or critical.
    severity = models.CharField(max_length=16, default="low")
    compliance_tags = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "core_security_event"
        indexes = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.Index(fields=["occurred_at"], name="core_event_occurred_idx"),
            # The console's "recent events of this user", newest first.
            models.Index(fields=["user_id", "-occurred_at"], name="core_event_user_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("security events are append-only and cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ValueError("security events are append-only and cannot be deleted one by one")


class JournalCheckpoint(models.Model):
    """How many bytes of one process's event journal (core.journal) are in the outbox.

    Advanced in the same transaction as the rows it covers, so a journal record is inserted
    exactly once: a drain or replay that dies before its COMMIT leaves both unchanged, one that
    dies after leaves both done, and the next replayer starts where this row says.
    """

    journal = models.CharField(primary_key=True, max_length=128)
    drained_bytes = models.BigIntegerField()

    class Meta:
        db_table = "core_journal_checkpoint"

    def __str__(self) -> str:
        return f"{self.journal} at {self.drained_bytes}"
