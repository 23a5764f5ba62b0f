"""Reads of the audit trail for the console and the admin API, from the configured store
(apps.audit.store.audit_store): ClickHouse with the events not shipped yet, or the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from apps.audit.store import (
    PAGE_SIZE,
    AuditEvent,
    EventCursor,
    EventFilters,
    EventPage,
    StoreUnavailable,
)
from apps.audit.store import audit_store as _store
from apps.core.events import EventType
from apps.core.people import HistoryEntry, HistoryUnavailable
from apps.core.privacy import PSEUDONYM_PREFIX
from apps.core.signin_history import PastSignIn, SignInHistoryUnavailable

# Events on a person's console page; the rest is a search away.
RECENT_EVENTS = 10


def event_page(
    *, filters: EventFilters, after: EventCursor | None = None, limit: int = PAGE_SIZE
) -> EventPage:
    """Newest first, one keyset page (no OFFSET, no COUNT: page 1,000 costs what page 1
    does). Raises InvalidFilter for a limit out of range, StoreUnavailable."""
    return _store().search(filters, after=after, limit=limit)


def events_recent_for_user(*, user_id: object, limit: int = RECENT_EVENTS) -> list[AuditEvent]:
    """The person's newest events: the head of their timeline."""
    return event_page(filters=EventFilters(user_id=str(user_id)), limit=limit).events


# What a person's own security history shows (apps/signin/account.py, through the core port
# apps.core.people.person_security_history): what they did or was done to their account and
# its sign-ins. Token issuance, failed sign-ins (anyone can cause them: a list of 20 must not
# be flooded by someone guessing) and an operator's reads stay on the console.
PERSON_HISTORY_TYPES = frozenset(
    {
        EventType.LOGIN_SUCCEEDED,
        EventType.LOGOUT,
        EventType.SESSION_REVOKED,
        EventType.SESSION_COMPROMISED,
        EventType.SESSION_LIMIT_REACHED,
        EventType.PASSWORD_CHANGED,
        EventType.PASSWORD_RESET_REQUESTED,
        EventType.EMAIL_CHANGED,
        EventType.EMAIL_VERIFIED,
        EventType.EMAIL_VERIFICATION_SENT,
        EventType.USER_CHANGED,
        EventType.CONSENT_GRANTED,
        EventType.CONSENT_REVOKED,
        EventType.OFFLINE_ACCESS_GRANTED,
        EventType.OFFLINE_ACCESS_REVOKED,
        EventType.ACCOUNT_LOCKED,
        EventType.ACCOUNT_UNLOCKED,
    }
)
# Events of the person read at most, newest first, in pages of PERSON_HISTORY_PAGE, to find
# the ones worth showing: bounds the read when token refreshes crowd the timeline.
PERSON_HISTORY_PAGE = 200
PERSON_HISTORY_SCAN = 1000


def person_security_history(*, user_id: object, limit: int) -> list[HistoryEntry]:
    """The person's newest events of PERSON_HISTORY_TYPES (core.people's SecurityHistory
    port). Raises HistoryUnavailable when the store does not answer."""
    filters = EventFilters(user_id=str(user_id))
    found: list[HistoryEntry] = []
    after: EventCursor | None = None
    read = 0
    try:
        while len(found) < limit and read < PERSON_HISTORY_SCAN:
            page = event_page(filters=filters, after=after, limit=PERSON_HISTORY_PAGE)
            read += len(page.events)
            found += [_entry(e) for e in page.events if e.event_type in PERSON_HISTORY_TYPES]
            if page.next_cursor is None:
                break
            after = page.next_cursor
    except StoreUnavailable as error:
        raise HistoryUnavailable from error
    return found[:limit]


def _entry(event: AuditEvent) -> HistoryEntry:
    return HistoryEntry(
        occurred_at=event.occurred_at,
        event_type=event.event_type,
        success=event.success,
        ip_address=event.ip_address,
        user_agent=event.user_agent,
        actor_id=event.actor_id,
        session_id=event.session_id,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        error_code=event.error_code,
        metadata=event.metadata,
    )


def past_sign_ins(*, since: datetime) -> Iterator[PastSignIn]:
    """Successful sign-ins (login.succeeded) since `since`, by person then oldest first
    (core.signin_history's SignInHistory port), streamed from the configured store. An
    erased person's events (their user id now a pseudonym) are no one's: left out."""
    filters = EventFilters(event_type=EventType.LOGIN_SUCCEEDED, since=since, success=True)
    try:
        for event in _store().iterate_by_user(filters):
            if not event.user_id or event.user_id.startswith(PSEUDONYM_PREFIX):
                continue
            yield _sign_in(event)
    except StoreUnavailable as error:
        raise SignInHistoryUnavailable(str(error)) from error


def _sign_in(event: AuditEvent) -> PastSignIn:
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    device, country, asn = (metadata.get(k) for k in ("device_id", "country", "asn"))
    return PastSignIn(
        user_id=event.user_id,
        at=event.occurred_at,
        ip=event.ip_address or "",
        user_agent=event.user_agent,
        device_id=device if isinstance(device, str) else "",
        country=country if isinstance(country, str) else None,
        asn=asn if isinstance(asn, int) and not isinstance(asn, bool) else None,
    )
