"""Writing threat rules: the only way to change one (the console's editor and its API call
these). Each change is checked field by field (a ValidationError naming the field, with a
message a person can act on), recorded as `threat.rule_changed` in the same transaction
(metadata: what the rule was before and is after), and reaches every process's
`ruleset_current()` through the cache channel once it commits.

A shipped rule (builtin, from migration 0002) may be changed and disabled but not deleted:
disabling is the reversible way to turn it off, and the rule stays listed, so an operator
sees what was shipped and what was turned off, and a later release that improves a shipped
rule finds it by name and can tell whether an operator changed it (`updated_by`).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from apps.core.cache import publish_on_commit
from apps.core.events import EventType, emit
from apps.threat.models import ThreatRule
from apps.threat.ruleset import CACHE, check_rule

NAME_MAX = ThreatRule._meta.get_field("name").max_length or 64
DESCRIPTION_MAX = ThreatRule._meta.get_field("description").max_length or 500
# What rule_update may change; the rest (id, builtin, timestamps) is the system's.
EDITABLE = ("name", "description", "condition", "action", "severity", "enabled", "block_minutes")


def rule_create(
    *,
    actor_id: uuid.UUID | None,
    name: str,
    condition: str,
    action: str,
    severity: str,
    description: str = "",
    enabled: bool = True,
    block_minutes: int | None = None,
) -> ThreatRule:
    """A new rule, checked and recorded; ValidationError naming each field that is wrong."""
    values = {
        "name": name,
        "description": description,
        "condition": condition,
        "action": action,
        "severity": severity,
        "enabled": enabled,
        "block_minutes": block_minutes,
    }
    _check(values)
    with transaction.atomic():
        if ThreatRule.objects.filter(name=name).exists():
            raise _name_taken(name)
        rule = ThreatRule(**values, updated_by_id=actor_id)
        try:
            with transaction.atomic():
                rule.save()
        except IntegrityError:  # created meanwhile by another request
            raise _name_taken(name) from None
        _record(rule, "created", actor_id, before=None, after=_snapshot(rule))
    return rule


def rule_update(*, rule: ThreatRule, actor_id: uuid.UUID | None, **changes: Any) -> ThreatRule:
    """Change some of EDITABLE; the rule as it is after. Nothing changed: nothing recorded."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ValidationError(
            dict.fromkeys(unknown, "This field cannot be changed."), code="invalid"
        )
    with transaction.atomic():
        locked = ThreatRule.objects.select_for_update().get(pk=rule.pk)
        before = _snapshot(locked)
        after = before | changes
        if after == before:
            _copy(locked, rule)
            return rule
        _check(after)
        renamed = after["name"] != before["name"]
        if renamed and ThreatRule.objects.filter(name=after["name"]).exists():
            raise _name_taken(after["name"])
        for field in EDITABLE:
            setattr(locked, field, after[field])
        locked.updated_by_id = actor_id
        try:
            with transaction.atomic():
                locked.save()
        except IntegrityError:
            raise _name_taken(after["name"]) from None
        _record(locked, "updated", actor_id, before=before, after=_snapshot(locked))
    _copy(locked, rule)
    return rule


def rule_delete(*, rule: ThreatRule, actor_id: uuid.UUID | None) -> None:
    """Remove a rule an administrator made; a shipped one can only be disabled."""
    with transaction.atomic():
        locked = ThreatRule.objects.select_for_update().filter(pk=rule.pk).first()
        if locked is None:
            return  # already deleted (another request): nothing left to record
        if locked.builtin:
            raise ValidationError(
                {
                    "builtin": f"{locked.name} is shipped with Tessera: disable it instead "
                    "(enabled: false). It stays listed, and can be enabled again."
                },
                code="builtin",
            )
        before = _snapshot(locked)
        locked.delete()
        _record(locked, "deleted", actor_id, before=before, after=None)


def _check(values: dict[str, Any]) -> None:
    errors: dict[str, str] = {}
    name = values["name"]
    if not isinstance(name, str) or not name:
        errors["name"] = "A rule needs a name."
    elif len(name) > NAME_MAX:
        errors["name"] = f"A name has at most {NAME_MAX} characters."
    else:
        try:
            validate_slug(name)
        except ValidationError:
            errors["name"] = (
                "A name is one word of letters, digits, _ and -, like impossible_travel."
            )
    description = values["description"]
    if not isinstance(description, str):
        errors["description"] = "A description is text."
    elif len(description) > DESCRIPTION_MAX:
        errors["description"] = f"A description has at most {DESCRIPTION_MAX} characters."
    if not isinstance(values["enabled"], bool):
        errors["enabled"] = "Enabled is true or false."
    condition = values["condition"]
    if not isinstance(condition, str):
        errors["condition"] = "A condition is text."
        condition = "True"  # checked above; the other fields are still checked below
    found = check_rule(
        name=name if isinstance(name, str) else "",
        condition=condition,
        action=values["action"],
        severity=values["severity"],
        block_minutes=values["block_minutes"],
    )
    found.pop("name", None)  # said above, in the words of this module
    errors = found | errors
    if errors:
        raise ValidationError(errors, code="invalid")


def _name_taken(name: str) -> ValidationError:
    return ValidationError({"name": f"A rule named {name} exists already."}, code="unique")


def _snapshot(rule: ThreatRule) -> dict[str, Any]:
    return {field: getattr(rule, field) for field in EDITABLE}


def _copy(source: ThreatRule, target: ThreatRule) -> None:
    if source is not target:
        for field in (*EDITABLE, "updated_by_id", "updated_at"):
            setattr(target, field, getattr(source, field))


def _record(
    rule: ThreatRule,
    action: str,
    actor_id: uuid.UUID | None,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    if before is None or after is None:
        changed = list(EDITABLE)
    else:
        changed = [field for field in EDITABLE if before[field] != after[field]]
    emit(
        EventType.THREAT_RULE_CHANGED,
        actor_id=actor_id,
        resource_type="threat_rule",
        resource_id=rule.pk,
        action=action,
        metadata={
            "rule": rule.name,
            "builtin": rule.builtin,
            "changed": changed,
            "before": before,
            "after": after,
        },
    )
    publish_on_commit(CACHE)  # every process decides by the new rules within a second
