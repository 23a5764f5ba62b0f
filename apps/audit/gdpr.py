"""A person's rights over what Tessera holds about them: access and portability (GDPR Art. 15
and 20) as one JSON document, and erasure (Art. 17).

What each app holds about the person comes from the holders core.privacy lists (accounts,
sessions, tokens: their account, memberships, sessions, consents and clients); this module
adds the audit events and runs the two operations. Erasure scrubs the account rather than
deleting it (accounts.privacy says why), so the person's `sub` is never given to anyone else.

In the audit store every event of the person is pseudonymized in place (store.base
.pseudonymized): their user id and email become one keyed-hash pseudonym, their IP addresses
pseudonymous ones, so counts per person, per address and per type stay what they were.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from apps.audit.export import chunked
from apps.audit.store import ClickHouseStore, DatabaseStore, EventFilters, Subject, audit_store
from apps.audit.store.base import AuditEvent
from apps.core import privacy
from apps.core.events import EventType, emit

EXPORT_FORMAT = "tessera.subject-export.v1"


class ErasureUnavailable(Exception):
    """Redis did not answer while the erasure ran (ending the person's sessions needs the
    revocation list, threat data lives there): nothing of the account changed (the
    transaction rolled back); erasing again once Redis is back finishes it."""


class ErasureRefused(Exception):
    """An erasure that must not happen; the message says why."""


def user_is_erased(user: Any) -> bool:
    return privacy.is_erased(user.email)


def subject_export(*, user: Any, actor_id: object) -> Iterator[str]:
    """Everything held about the person, as the text chunks of one JSON document: each
    holder's sections (account, memberships, login sessions, consents, the clients they
    used), then every audit event that names them (store.base.Subject). Streamed: the events
    are read CHUNK at a time. The export is recorded with the operator as actor (GDPR
    Art. 30)."""
    events = chunked(audit_store().iterate(EventFilters(about=_subject(user))))
    emit(
        EventType.GDPR_EXPORTED,
        user_id=user.pk,
        actor_id=actor_id,
        resource_type="user",
        resource_id=user.pk,
        action="exported",
    )
    return _document(user, events)


def user_erase(*, user: Any, actor_id: object) -> str:
    """Erases the person (see the module's doc) and returns the pseudonym their events now
    carry. Runs again safely: a second run finishes one that ClickHouse interrupted.

    The outbox is pseudonymized once, inside the transaction that scrubs the account, so the
    events that transaction records (sessions ended) are covered too; its UPDATE waits for a
    shipper holding the subject's rows. ClickHouse, when there is one, twice: before the
    account changes, so that ClickHouse being down stops the erasure there (erasing again
    finishes it), and after, for whatever a shipper moved meanwhile."""
    if str(user.pk) == str(actor_id):
        raise ErasureRefused("Operators cannot erase their own account; ask another operator.")
    subject = _subject(user)
    _pseudonymize_shipped(subject)
    try:
        with transaction.atomic():
            get_user_model().objects.select_for_update().filter(pk=user.pk).first()
            # The account is listed first and scrubbed last, after what refers to it.
            for holder in reversed(privacy.holders()):
                holder.erase(user, pseudonym=subject.pseudonym, actor_id=actor_id)
            DatabaseStore().pseudonymize_user(subject)
            emit(
                EventType.GDPR_ERASED,
                user_id=subject.pseudonym,
                actor_id=actor_id,
                resource_type="user",
                resource_id=subject.pseudonym,
                action="erased",
            )
    except RedisError as error:
        raise ErasureUnavailable(
            "Redis did not answer, so nothing was erased; erase again once it is back."
        ) from error
    _pseudonymize_shipped(subject)
    return subject.pseudonym


def _pseudonymize_shipped(subject: Subject) -> None:
    if settings.CLICKHOUSE_URL is not None:
        ClickHouseStore().pseudonymize_user(subject)


def _subject(user: Any) -> Subject:
    # A scrubbed account's email is a pseudonym: events never named it.
    return Subject(str(user.pk), "" if user_is_erased(user) else user.email)


def _document(user: Any, events: Iterable[list[AuditEvent]]) -> Iterator[str]:
    yield _json({"format": EXPORT_FORMAT, "generated_at": timezone.now()})[:-1]  # left open
    sections: dict[str, privacy.Section] = {}
    for holder in privacy.holders():
        sections.update(holder.export(user))
    sections["events"] = (event.as_record() for chunk in events for event in chunk)
    for name, section in sections.items():
        if isinstance(section, dict):
            yield f', "{name}": {_json(section)}'
            continue
        yield f', "{name}": ['
        for index, record in enumerate(section):
            yield (", " if index else "") + _json(record)
        yield "]"
    yield "}\n"


def _json(value: object) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)
