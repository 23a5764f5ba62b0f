"""Port: the successful sign-ins the audit trail keeps, for threat to build per-person
baselines from (apps/threat/baselines.py) without importing audit (DESIGN: no app imports
audit). apps.audit implements it, named by settings.SIGN_IN_HISTORY, as
person_security_history (apps/core/people.py) is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class PastSignIn:
    """One successful sign-in (a `login.succeeded` event). `device_id` is "" when the event
    names none (scripts keep no device cookie; events recorded before sign-in kept it);
    `country` and `asn` are None when the event does not say (looked up by the reader)."""

    user_id: str
    at: datetime
    ip: str
    user_agent: str
    device_id: str = ""
    country: str | None = None
    asn: int | None = None


class SignInHistoryUnavailable(Exception):
    """The audit trail did not answer (its store is down)."""


class SignInHistory(Protocol):
    def __call__(self, *, since: datetime) -> Iterator[PastSignIn]: ...


def past_sign_ins(*, since: datetime) -> Iterator[PastSignIn]:
    """Every successful sign-in at or after `since` (aware), grouped by person: all of one
    person's, oldest first, then the next person's. Streamed: it never holds the whole
    trail. Pseudonymized (erased) people are left out. Raises SignInHistoryUnavailable,
    possibly part-way through."""
    history: SignInHistory = import_string(settings.SIGN_IN_HISTORY)
    return history(since=since)
