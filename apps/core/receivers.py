"""Every change an operator makes in the Django admin becomes one security event.

The admin writes a LogEntry (operator, object, change message) in the same transaction as each
addition, change and deletion it makes (for a deletion, just before the row goes); a receiver of
its post_save records the event beside it: one place, whichever admin page made the change.
Django writes the entries of a bulk delete with bulk_create, which sends no signal, so
CoreConfig.ready disables the site-wide "delete selected" action: rows are deleted one at a
time, each with its event.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models.signals import post_save
from django.dispatch import receiver

from apps.core.events import EventType, emit


class AdminEvents(NamedTuple):
    added: EventType
    changed: EventType
    deleted: EventType


def _always(event_type: EventType) -> AdminEvents:
    return AdminEvents(event_type, event_type, event_type)


# The events an admin change records, by model label; any other model's: admin.changed.
# Organization, workspace and group pages edit their memberships inline.
ADMIN_EVENTS: dict[str, AdminEvents] = {
    "accounts.user": AdminEvents(
        EventType.USER_CREATED, EventType.USER_CHANGED, EventType.USER_DELETED
    ),
    "tokens.client": AdminEvents(
        EventType.CLIENT_CREATED, EventType.CLIENT_CHANGED, EventType.CLIENT_DELETED
    ),
    "accounts.organization": _always(EventType.MEMBERSHIP_CHANGED),
    "accounts.workspace": _always(EventType.MEMBERSHIP_CHANGED),
    "accounts.group": _always(EventType.MEMBERSHIP_CHANGED),
    "accounts.organizationmembership": _always(EventType.MEMBERSHIP_CHANGED),
    "accounts.workspacemembership": _always(EventType.MEMBERSHIP_CHANGED),
    "accounts.groupmembership": _always(EventType.MEMBERSHIP_CHANGED),
    "accounts.role": _always(EventType.PERMISSION_CHANGED),
    "accounts.permission": _always(EventType.PERMISSION_CHANGED),
    "auth.group": _always(EventType.PERMISSION_CHANGED),  # staff permissions in the admin
}
_OTHER = _always(EventType.ADMIN_CHANGED)
# resource_type and the attribute naming the row, where other events already name it.
_RESOURCES = {"accounts.user": ("user", "pk"), "tokens.client": ("client", "client_id")}
_VERBS = {ADDITION: "added", CHANGE: "changed", DELETION: "deleted"}


@receiver(post_save, sender=LogEntry, dispatch_uid="tessera.core.admin_change")
def record_admin_change(sender: Any, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    if not created or kwargs.get("raw"):
        return
    assert instance.content_type is not None  # the admin always names the model
    label = f"{instance.content_type.app_label}.{instance.content_type.model}"
    verb = _VERBS[instance.action_flag]
    changed = instance.get_edited_object()  # still there: a deletion is logged before it
    # The person affected: the account itself, or the one a membership (or token) belongs to.
    person = (
        changed.pk if isinstance(changed, AbstractBaseUser) else getattr(changed, "user_id", None)
    )
    resource_type, attribute = _RESOURCES.get(label, (label, "pk"))
    emit(
        ADMIN_EVENTS.get(label, _OTHER)._asdict()[verb],
        user_id=person,
        actor_id=instance.user_id,
        resource_type=resource_type,
        resource_id=getattr(changed, attribute),
        action=verb,
        metadata={"object": instance.object_repr, "change": instance.get_change_message()},
    )
