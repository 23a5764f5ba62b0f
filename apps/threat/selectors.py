"""Reads of threat state for the console and the admin API: the rules, the people blocked now
(User.blocked_*, set by apps.accounts.services.user_block), and the addresses of the people a
list of assessments names. The assessments themselves are audit events (threat.assessed),
read by the console from the audit store."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts.models import User
from apps.threat.models import ThreatRule

# People shown blocked at once, the newest block first; the rest are a search away (the API
# pages them).
BLOCKED_LIMIT = 200


def rule_list() -> list[ThreatRule]:
    """Every rule, enabled or not, by name (one query; who changed it last joined)."""
    return list(ThreatRule.objects.select_related("updated_by").order_by("name"))


def rule_detail(*, rule_id: uuid.UUID) -> ThreatRule | None:
    return ThreatRule.objects.select_related("updated_by").filter(pk=rule_id).first()


def _blocked_now(now: datetime.datetime) -> QuerySet[User]:
    """User.is_blocked in SQL: a block without an end, or whose end is still to come."""
    return User.objects.filter(blocked_at__isnull=False).filter(
        Q(blocked_until__isnull=True) | Q(blocked_until__gt=now)
    )


def blocked_people(
    *, now: datetime.datetime | None = None, limit: int = BLOCKED_LIMIT, offset: int = 0
) -> list[User]:
    """People blocked now, the newest block first (then by id, a stable order for pages).
    A block whose time has passed is not listed even before the worker lifts it: the
    sign-in step already lets the person in (User.is_blocked)."""
    people = _blocked_now(now or timezone.now()).order_by("-blocked_at", "-id")
    return list(people[offset : offset + limit])


def blocked_count(*, now: datetime.datetime | None = None) -> int:
    return _blocked_now(now or timezone.now()).count()


def emails_by_user_id(ids: Iterable[str]) -> dict[str, str]:
    """The address of each account among these ids (as text; anything not a UUID is skipped),
    by the text given: one indexed query, for a list of events that links to people."""
    wanted: dict[uuid.UUID, str] = {}
    for text in ids:
        try:
            wanted[uuid.UUID(text)] = text
        except ValueError:
            continue
    if not wanted:
        return {}
    rows = User.objects.filter(pk__in=wanted).values_list("pk", "email")
    return {wanted[pk]: email for pk, email in rows}
