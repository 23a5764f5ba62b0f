"""A person's rights over what Tessera holds about them: access and portability (GDPR Art. 15
and 20) as one JSON document, and erasure (Art. 17).

Erasure scrubs the account rather than deleting it. Deleting the row would cascade to the
person's login sessions, and with them to the back-channel logout deliveries that tell
relying parties the sessions ended (sent after commit); to OAuth clients they registered
(django-oauth-toolkit's Client.user), which serve other people; and to the admin change log
they wrote as an operator. A scrubbed account holds no personal data: the email becomes
<pseudonym>@erased.invalid (RFC 2606 §2), the name goes, the password is unusable, it can
no longer sign in, its memberships and consents are deleted, and its sessions are ended and
stripped of IP address, device and browser. The row keeps the id, the `sub` relying parties
know, so that none is ever given to someone else (OIDC Core §2: sub is never reassigned).

In the audit store every event of the person is pseudonymized in place (store.base
.pseudonymized): their user id and email become one keyed-hash pseudonym, their IP addresses
pseudonymous ones, so counts per person, per address and per type stay what they were.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import (
    GroupMembership,
    OrganizationMembership,
    User,
    WorkspaceMembership,
)
from apps.audit.export import chunked
from apps.audit.store import DatabaseStore, EventFilters, Subject, audit_store
from apps.audit.store.base import AuditEvent
from apps.core.events import EventType, emit
from apps.sessions.models import LoginSession, SessionClient
from apps.sessions.services import session_end_all
from apps.tokens.models import Client, Consent

ERASED_DOMAIN = "erased.invalid"
EXPORT_FORMAT = "tessera.subject-export.v1"


class ErasureRefused(Exception):
    """An erasure that must not happen; the message says why."""


def user_is_erased(user: User) -> bool:
    return user.email.endswith(f"@{ERASED_DOMAIN}")


def subject_export(*, user: User, actor_id: object) -> Iterator[str]:
    """Everything held about the person, as the text chunks of one JSON document: account,
    memberships, login sessions, consents, the clients they used and every audit event that
    names them (store.base.Subject). Streamed: the events are read CHUNK at a time. The
    export is recorded with the operator as actor (GDPR Art. 30)."""
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


def user_erase(*, user: User, actor_id: object) -> str:
    """Erases the person (see the module's doc) and returns the pseudonym their events now
    carry. Runs again safely: a second run finishes one that ClickHouse interrupted.

    The audit store is pseudonymized three times: first, before the account changes, so that
    ClickHouse being down stops the erasure there (erasing again finishes it); then the
    outbox, inside the transaction that scrubs the account, for the events that transaction
    records (sessions ended); last, whatever a shipper moved to ClickHouse meanwhile."""
    if str(user.pk) == str(actor_id):
        raise ErasureRefused("Operators cannot erase their own account; ask another operator.")
    subject = _subject(user)
    store = audit_store()
    store.pseudonymize_user(subject)
    with transaction.atomic():
        _account_scrub(user, subject, actor_id)
        DatabaseStore().pseudonymize_user(subject)
        emit(
            EventType.GDPR_ERASED,
            user_id=subject.pseudonym,
            actor_id=actor_id,
            resource_type="user",
            resource_id=subject.pseudonym,
            action="erased",
        )
    store.pseudonymize_user(subject)
    return subject.pseudonym


def _subject(user: User) -> Subject:
    # A scrubbed account's email is a pseudonym: events never named it.
    return Subject(str(user.pk), "" if user_is_erased(user) else user.email)


def _account_scrub(user: User, subject: Subject, actor_id: object) -> None:
    User.objects.select_for_update().filter(pk=user.pk).first()
    # Their tokens die with the sessions, and relying parties are told (after commit).
    session_end_all(user=user, reason="operator", actor_id=actor_id)
    LoginSession.objects.filter(user=user).update(
        ip_address=None, user_agent="", device_id="", context={}
    )
    Consent.objects.filter(user=user).delete()
    for membership in (OrganizationMembership, WorkspaceMembership, GroupMembership):
        membership.objects.filter(user=user).delete()
    Client.objects.filter(user=user).update(user=None)
    # The admin's history of changes to the account names it by its email (User.__str__).
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(User), object_id=str(user.pk)
    ).update(object_repr=subject.pseudonym)
    user.groups.clear()
    user.user_permissions.clear()
    user.email = f"{subject.pseudonym.removeprefix('anon:')}@{ERASED_DOMAIN}"
    user.name = ""
    user.set_unusable_password()
    user.is_active = user.is_staff = user.is_superuser = False
    user.last_login = None
    user.save()


def _document(user: User, events: Iterable[list[AuditEvent]]) -> Iterator[str]:
    head = {
        "format": EXPORT_FORMAT,
        "generated_at": timezone.now(),
        "account": {
            "id": user.pk,
            "email": user.email,
            "name": user.name,
            "is_active": user.is_active,
            "is_staff": user.is_staff,
            "date_joined": user.date_joined,
            "last_login": user.last_login,
        },
    }
    yield _json(head)[:-1]  # the object stays open for the sections
    sections: dict[str, Iterable[dict[str, Any]]] = {
        "organizations": _organizations(user),
        "workspaces": _workspaces(user),
        "groups": _groups(user),
        "sessions": _sessions(user),
        "consents": _consents(user),
        "clients": _clients(user),
        "events": (event.as_record() for chunk in events for event in chunk),
    }
    for name, records in sections.items():
        yield f', "{name}": ['
        for index, record in enumerate(records):
            yield (", " if index else "") + _json(record)
        yield "]"
    yield "}\n"


def _json(value: object) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)


def _organizations(user: User) -> Iterator[dict[str, Any]]:
    memberships = OrganizationMembership.objects.filter(user=user)
    for m in memberships.select_related("organization", "role"):
        yield {
            "organization": m.organization.name,
            "slug": m.organization.slug,
            "role": m.role.name,
            "since": m.created_at,
        }


def _workspaces(user: User) -> Iterator[dict[str, Any]]:
    memberships = WorkspaceMembership.objects.filter(user=user)
    for m in memberships.select_related("workspace__organization", "role"):
        yield {
            "organization": m.workspace.organization.name,
            "workspace": m.workspace.name,
            "role": m.role.name,
            "since": m.created_at,
        }


def _groups(user: User) -> Iterator[dict[str, Any]]:
    memberships = GroupMembership.objects.filter(user=user)
    for m in memberships.select_related("group__workspace__organization"):
        yield {
            "organization": m.group.workspace.organization.name,
            "workspace": m.group.workspace.name,
            "group": m.group.name,
            "since": m.created_at,
        }


def _sessions(user: User) -> Iterator[dict[str, Any]]:
    sessions = LoginSession.objects.filter(user=user).order_by("-created_at")
    for s in sessions.prefetch_related("clients").iterator(chunk_size=500):
        yield {
            "id": s.pk,
            "provider": s.provider,
            "acr": s.acr,
            "amr": s.amr,
            "device_id": s.device_id,
            "ip_address": s.ip_address,
            "user_agent": s.user_agent,
            "context": s.context,
            "created_at": s.created_at,
            "last_active_at": s.last_active_at,
            "expires_at": s.expires_at,
            "ended_at": s.ended_at,
            "end_reason": s.end_reason,
            "clients": [client.client_id for client in s.clients.all()],
        }


def _consents(user: User) -> Iterator[dict[str, Any]]:
    for consent in Consent.objects.filter(user=user).select_related("client"):
        yield {
            "client_id": consent.client.client_id,
            "client_name": consent.client.name,
            "scopes": consent.scopes.split(),
            "granted_at": consent.created_at,
            "updated_at": consent.updated_at,
        }


def _clients(user: User) -> Iterator[dict[str, Any]]:
    """The clients that received tokens in their sessions or hold their consent."""
    in_sessions = SessionClient.objects.filter(session__user=user).values("client_id")
    used = Client.objects.filter(Q(client_id__in=in_sessions) | Q(consent__user=user))
    for client in used.distinct().order_by("name"):
        yield {"client_id": client.client_id, "name": client.name}
