"""What every audit store takes and gives: filters, keyset cursors, pages of events, and the
pseudonyms an erasure writes in place of a person (GDPR Art. 4(5), 17)."""

from __future__ import annotations

import ipaddress
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Protocol, Self

from django.utils.crypto import salted_hmac

from apps.core.cursors import KeysetCursor
from apps.core.events import EventType, Severity
from apps.core.privacy import PSEUDONYM_PREFIX
from apps.core.risk import Action

PAGE_SIZE = 50
PAGE_SIZE_MAX = 1000
# Rows a store reads per round trip while it streams (iterate, pseudonymize_user).
CHUNK = 1000


class InvalidFilter(ValueError):
    """A filter, cursor or limit no store can answer; the message says why, for a 400."""


class StoreUnavailable(Exception):
    """The audit store did not answer (ClickHouse down or refusing): a 503, not a 500."""


class EventCursor(KeysetCursor):
    """Where a page ends in the stores' order: occurred_at, then id (as text), newest first."""

    @classmethod
    def parse(cls, text: str) -> Self:
        try:
            return super().parse(text)
        except ValueError:
            raise InvalidFilter(
                "This page link is malformed; start again from the first page."
            ) from None

    @property
    def key(self) -> tuple[datetime, str]:
        """The sort key both stores order by: UUIDs compare as their text (PostgreSQL compares
        uuid bytes, which is the same order; ClickHouse compares them otherwise, so it sorts
        by toString(id))."""
        return self.at, str(self.id)


@dataclass(frozen=True)
class AuditEvent:
    """One security event as the stores give it back: the outbox's columns
    (apps.core.models.SecurityEvent), whichever store holds it."""

    id: uuid.UUID
    occurred_at: datetime
    event_type: str
    user_id: str
    actor_id: str
    session_id: str
    resource_type: str
    resource_id: str
    action: str
    success: bool
    error_code: str
    error_message: str
    ip_address: str | None
    user_agent: str
    request_id: str
    duration_ms: float | None
    metadata: dict[str, Any] = field(hash=False)
    severity: str
    compliance_tags: tuple[str, ...]

    @property
    def cursor(self) -> EventCursor:
        return EventCursor(self.occurred_at, self.id)

    def as_record(self) -> dict[str, Any]:
        """JSON-ready, in field order: the shape of the exports and of the admin API."""
        record = {name: getattr(self, name) for name in RECORD_FIELDS}
        record["id"] = str(self.id)
        record["occurred_at"] = self.occurred_at.isoformat().replace("+00:00", "Z")
        record["compliance_tags"] = list(self.compliance_tags)
        return record


RECORD_FIELDS = tuple(f.name for f in fields(AuditEvent))


@dataclass(frozen=True)
class EventPage:
    events: list[AuditEvent]
    next_cursor: EventCursor | None  # None on the last page


def page_of(events: list[AuditEvent], limit: int) -> EventPage:
    """The first `limit` of `events` (in the stores' order, one more fetched than shown)."""
    if len(events) <= limit:
        return EventPage(events, None)
    return EventPage(events[:limit], events[limit - 1].cursor)


def check_limit(limit: int) -> None:
    if not 1 <= limit <= PAGE_SIZE_MAX:
        raise InvalidFilter(f"A page holds 1 to {PAGE_SIZE_MAX} events.")


@dataclass(frozen=True)
class Subject:
    """A person whose events are exported or erased: every event that names their user id
    (as user, actor or resource, or inside metadata, e.g. a console path) or their email
    address (in metadata: a failed sign-in, an admin change of their account). The email is
    empty when it is no longer known (a second erasure of a scrubbed account)."""

    user_id: str
    email: str = ""

    @property
    def pseudonym(self) -> str:
        return pseudonym(self.user_id)


@dataclass(frozen=True)
class EventFilters:
    """What a search, an export or a GDPR request asks a store for; every field optional and
    checked here once for all stores (OWASP ASVS 5.1.3: allow-list input validation)."""

    user_id: str = ""
    event_type: str = ""
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    ip_address: str = ""
    success: bool | None = None
    severity: str = ""
    about: Subject | None = None
    # threat.assessed events (apps.core.risk.RiskDecision in their metadata): a score at least
    # this (0-100), and the action decided.
    min_score: int | None = None
    risk_action: str = ""

    def __post_init__(self) -> None:
        if len(self.user_id) > 64 or not self.user_id.isprintable():
            raise InvalidFilter("A user id has at most 64 printable characters.")
        if self.event_type and self.event_type not in EventType.values:
            raise InvalidFilter(f"{self.event_type!r} is not an event type of the catalog.")
        if self.severity and self.severity not in Severity.values:
            raise InvalidFilter(f"Severity is one of {', '.join(Severity.values)}.")
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() is None:
                raise InvalidFilter("Times need a time zone.")
        if self.since and self.until and self.since > self.until:
            raise InvalidFilter("The start of the time range is after its end.")
        if self.min_score is not None and (
            isinstance(self.min_score, bool)
            or not isinstance(self.min_score, int)
            or not 0 <= self.min_score <= 100
        ):
            raise InvalidFilter("A minimum score is a whole number from 0 to 100.")
        if self.risk_action and self.risk_action not in Action.ORDER:
            raise InvalidFilter(f"An action is one of {', '.join(Action.ORDER)}.")
        if self.ip_address:
            try:
                canonical = str(ipaddress.ip_address(self.ip_address))
            except ValueError:
                raise InvalidFilter(f"{self.ip_address!r} is not an IP address.") from None
            object.__setattr__(self, "ip_address", canonical)

    def as_params(self) -> dict[str, str]:
        """The filters that are set, as text (what an export's event records)."""
        params = {
            "user_id": self.user_id,
            "event_type": self.event_type,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "ip_address": self.ip_address,
            "success": "" if self.success is None else str(self.success).lower(),
            "severity": self.severity,
            "min_score": "" if self.min_score is None else str(self.min_score),
            "risk_action": self.risk_action,
        }
        return {name: value for name, value in params.items() if value}


class AuditStore(Protocol):
    """Where audit events are read and, for GDPR erasure, pseudonymized. Implementations:
    DatabaseStore (the outbox), ClickHouseStore, and MergedStore (ClickHouse plus the outbox's
    events not shipped yet), chosen by apps.audit.store.audit_store(). A person's timeline is
    a search by user_id; the events of a GDPR request are iterate(EventFilters(about=...)).
    tests/audit/test_store_contract.py holds every implementation to the same answers."""

    def search(
        self, filters: EventFilters, *, after: EventCursor | None = None, limit: int = PAGE_SIZE
    ) -> EventPage:
        """Newest first (occurred_at, id), one keyset page: each event once."""
        ...

    def iterate(self, filters: EventFilters) -> Iterator[AuditEvent]:
        """Every matching event, newest first, streamed (CHUNK rows at a time), each once."""
        ...

    def iterate_by_user(self, filters: EventFilters) -> Iterator[AuditEvent]:
        """Every matching event grouped by person: by user_id (as bytes compare: "C"
        collation), then oldest first (occurred_at, id), streamed (CHUNK rows at a time),
        each once. What a job that folds each person's events in turn reads (the threat
        baselines, apps/threat/baselines.py): one person's events end before the next's
        begin, so it holds one person at a time, never the whole trail."""
        ...

    def pseudonymize_user(self, subject: Subject) -> int:
        """Rewrites every event of the subject with pseudonyms (see pseudonymized); returns
        how many. Idempotent: a second run finds nothing left to rewrite."""
        ...


# --- Pseudonyms (GDPR Art. 4(5)): keyed hashes, so counts per person and per type survive ---

# RFC 3849: never a real source address, so a pseudonymous IP cannot be taken for one.
_PSEUDONYMOUS_NETWORK = ipaddress.ip_network("2001:db8::/32")


def _keyed_hash(purpose: str, value: str) -> bytes:
    # HMAC-SHA256 under a key derived from SECRET_KEY for this purpose alone. Whoever holds
    # SECRET_KEY can test a guess, so this is pseudonymization, not anonymization.
    return salted_hmac(f"tessera.audit.{purpose}", value, algorithm="sha256").digest()


def pseudonym(user_id: str) -> str:
    """The text that replaces a user id and email in erased events: the same for every event
    of one person, unlinkable to them without SECRET_KEY (128 bits)."""
    return PSEUDONYM_PREFIX + _keyed_hash("pseudonym", user_id)[:16].hex()


def ip_pseudonym(address: str) -> str:
    """An IP address of an erased person's event, replaced by an address of the IPv6
    documentation network (the stores keep addresses in address columns): 96 bits of keyed
    hash, the same for every event from that address."""
    canonical = ipaddress.ip_address(address)
    if canonical in _PSEUDONYMOUS_NETWORK:
        return str(canonical)  # already a pseudonym
    digest = _keyed_hash("ip", str(canonical))[:12]
    return str(ipaddress.IPv6Address(_PSEUDONYMOUS_NETWORK.network_address.packed[:4] + digest))


def pseudonymized(event: AuditEvent, subject: Subject) -> AuditEvent:
    """The event with the subject's user id and email replaced by their pseudonym wherever
    they appear (user, actor, resource, metadata) and its IP address by a pseudonymous one."""
    alias = subject.pseudonym
    names = [re.escape(subject.user_id)] + ([re.escape(subject.email)] if subject.email else [])
    text = json.dumps(event.metadata, ensure_ascii=False)
    metadata = json.loads(re.sub("|".join(names), alias, text, flags=re.IGNORECASE))
    return replace(
        event,
        user_id=alias if event.user_id == subject.user_id else event.user_id,
        actor_id=alias if event.actor_id == subject.user_id else event.actor_id,
        resource_id=alias if event.resource_id == subject.user_id else event.resource_id,
        metadata=metadata,
        ip_address=ip_pseudonym(event.ip_address) if event.ip_address else None,
    )
