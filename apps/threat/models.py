from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class RuleAction(models.TextChoices):
    """apps.core.risk.Action, as administrators choose it."""

    ALERT = "alert", "Alert operators"
    REQUIRE_MFA = "require_mfa", "Require a second factor"
    INVALIDATE_SESSIONS = "invalidate_sessions", "End every session of the person"
    BLOCK = "block", "Refuse and block the person"


class RuleSeverity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class ThreatRule(models.Model):
    """A rule is data: a condition over the signals (apps/threat/signals.py) and the score, in
    the small expression language of apps/threat/rules.py, and what to do when it holds.
    Written only through apps.threat.services (each change records threat.rule_changed)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=500, blank=True)
    condition = models.TextField(max_length=2000)
    severity = models.CharField(max_length=16, choices=RuleSeverity.choices)
    action = models.CharField(max_length=32, choices=RuleAction.choices)
    enabled = models.BooleanField(default=True)
    # Shipped with Tessera (a data migration); administrators may change or disable it.
    builtin = models.BooleanField(default=False)
    # How long a `block` lasts, in minutes; null: until an operator unblocks the person.
    block_minutes = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name
