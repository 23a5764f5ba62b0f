"""What the threats pages and the admin API's threat endpoints accept: the assessment filters
(turned into the audit store's EventFilters), a block with its reason and length, and a rule
as administrators write it. Every field bounded here (OWASP ASVS 5.1.3); whether a rule's
condition means anything is apps.threat.rules' to say (its message goes under the field)."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from apps.accounts.models import User
from apps.audit.store import PAGE_SIZE, PAGE_SIZE_MAX, EventCursor, EventFilters, InvalidFilter
from apps.core.events import EventType
from apps.core.risk import Action
from apps.sessions.selectors import user_lookup
from apps.threat.models import RuleAction, RuleSeverity

_ANY = [("", "Any")]
# A block set by hand lasts at most a year; longer is "until unblocked" (empty).
BLOCK_MINUTES_MAX = 366 * 24 * 60


class AssessmentFilterForm(forms.Form):
    """threat.assessed events: at least a score, one action, one person."""

    min_score = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=100,
        label="Score at least",
        error_messages={"invalid": "A minimum score is a whole number from 0 to 100."},
    )
    action = forms.ChoiceField(
        required=False,
        choices=_ANY + [(a, a) for a in Action.ORDER],
        error_messages={
            "invalid_choice": f"An action is one of {', '.join(Action.ORDER)}.",
        },
    )
    user = forms.CharField(required=False, max_length=254, label="Person (email or id)")
    after = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    person: User | None = None
    filters = EventFilters(event_type=EventType.THREAT_ASSESSED)

    def clean_user(self) -> str:
        text: str = self.cleaned_data["user"].strip()
        if not text:
            return ""
        if "@" in text:
            validate_email(text)
            self.person = user_lookup(email=text)
            if self.person is None:
                raise ValidationError("No account has this email address.", code="not_found")
            return str(self.person.pk)
        try:
            user_id = uuid.UUID(text)
        except ValueError:
            raise ValidationError(
                "A person is an email address or a user id (a UUID).", code="invalid"
            ) from None
        self.person = user_lookup(user_id=user_id)
        return str(user_id)

    def clean_after(self) -> EventCursor | None:
        text: str = self.cleaned_data["after"]
        try:
            return EventCursor.parse(text) if text else None
        except InvalidFilter as invalid:
            raise ValidationError(str(invalid), code="invalid") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            self.filters = EventFilters(
                event_type=EventType.THREAT_ASSESSED,
                user_id=cleaned["user"],
                min_score=cleaned["min_score"],
                risk_action=cleaned["action"],
            )
        except InvalidFilter as invalid:
            raise ValidationError(str(invalid), code="invalid") from None
        return cleaned


class AssessmentApiFilterForm(AssessmentFilterForm):
    limit = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=PAGE_SIZE_MAX,
        error_messages={"invalid": f"A page holds 1 to {PAGE_SIZE_MAX} assessments."},
    )

    def clean_limit(self) -> int:
        return self.cleaned_data["limit"] or PAGE_SIZE


class BlockForm(forms.Form):
    """An operator's block: why (kept on the account and in user.blocked), and for how long."""

    reason = forms.CharField(
        max_length=200,
        help_text="Kept on their account and in the audit trail (at most 200 characters).",
        error_messages={"required": "Say why they are blocked."},
    )
    minutes = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=BLOCK_MINUTES_MAX,
        label="For how many minutes",
        help_text="Empty: until an operator unblocks them.",
        error_messages={"invalid": "Minutes are a whole number."},
    )


class UnblockForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=200,
        label="Why (optional)",
        help_text="Recorded in user.unblocked.",
    )


class RuleForm(forms.Form):
    """A threat rule as apps.threat.services takes it. The name is a slug (ThreatRule.name);
    the condition is checked by apps.threat.rules.compile_condition when it is saved."""

    name = forms.SlugField(
        max_length=64,
        help_text="Letters, digits, - and _; unique.",
        error_messages={"invalid": "A name is letters, digits, hyphens and underscores."},
    )
    description = forms.CharField(required=False, max_length=500)
    condition = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "code"}),
        help_text="Signals below, compared with numbers, strings, True/False; joined by and, "
        "or, not. Example: new_country and new_device and score >= 60",
    )
    action = forms.ChoiceField(choices=RuleAction.choices)
    severity = forms.ChoiceField(choices=RuleSeverity.choices)
    block_minutes = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=BLOCK_MINUTES_MAX,
        label="Block for (minutes)",
        help_text="For a block only; empty: until an operator unblocks them.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("action") != RuleAction.BLOCK and cleaned.get("block_minutes"):
            self.add_error("block_minutes", "Only a block lasts: leave it empty for this action.")
        return cleaned
