"""Ports: what a person's own account page (apps/signin/account.py) shows and does about things
signin may not import (DESIGN: signin imports neither tokens nor audit).

- PersonApplications: the applications the person let in (their consents and offline
  grants) and revoking one; apps.tokens implements it, named by settings.PERSON_APPLICATIONS.
- person_security_history: the person's recent security events (sign-ins, new devices,
  password and e-mail changes, sessions ended); apps.audit implements it, named by
  settings.PERSON_SECURITY_HISTORY.

Both are dotted paths, as USER_ACCESS_TOKEN_REVOKER (apps/core/revocation.py) is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class ApplicationAccess:
    """One thing a person allowed an application: a consent (kind "consent", `id` the client
    id) or an offline grant (kind "offline", `id` the grant's id)."""

    kind: str
    id: str
    client_id: str
    client_name: str
    scopes: tuple[str, ...]
    granted_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime | None = None


class PersonApplications(Protocol):
    def list(self, *, user_id: object) -> list[ApplicationAccess]:
        """The person's consents and live offline grants, newest first."""
        ...

    def consent_revoke(self, *, user_id: object, client_id: str) -> bool:
        """Withdraws the person's consent for the client, and the client's tokens for them.
        False when the person has no consent for such a client (the page answers 404)."""
        ...

    def offline_grant_revoke(self, *, user_id: object, grant_id: str) -> bool:
        """Ends one of the person's live offline grants. False when `grant_id` names none
        of theirs (another person's, ended, or malformed: the page answers 404)."""
        ...


def person_applications() -> PersonApplications:
    implementation: PersonApplications = import_string(settings.PERSON_APPLICATIONS)()
    return implementation


@dataclass(frozen=True)
class HistoryEntry:
    """One security event about the person, as the audit trail keeps it."""

    occurred_at: datetime
    event_type: str
    success: bool
    ip_address: str | None
    user_agent: str
    actor_id: str
    session_id: str
    resource_type: str = ""
    resource_id: str = ""
    error_code: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)


class HistoryUnavailable(Exception):
    """The audit trail did not answer (its store is down): the page says so, not a 500."""


class SecurityHistory(Protocol):
    def __call__(self, *, user_id: object, limit: int) -> list[HistoryEntry]: ...


def person_security_history(*, user_id: object, limit: int) -> list[HistoryEntry]:
    """The person's newest security events (at most `limit`), newest first. Raises
    HistoryUnavailable."""
    history: SecurityHistory = import_string(settings.PERSON_SECURITY_HISTORY)
    return history(user_id=user_id, limit=limit)
