"""Logout propagation: a login session ended (apps.sessions.signals), so its relying parties
are told over the back channel (OpenID Connect Back-Channel Logout 1.0)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from apps.sessions.models import LoginSession
from apps.sessions.signals import session_ended
from apps.tokens.logout_propagation import backchannel_deliveries_create
from apps.tokens.models import Client
from apps.tokens.services import client_tokens_revoke
from apps.tokens.tasks import deliver_backchannel_logout


@receiver(pre_delete, sender=Client, dispatch_uid="tessera.tokens.client_deleted")
def revoke_tokens_of_deleted_client(sender: Any, instance: Client, **kwargs: Any) -> None:
    client_tokens_revoke(client=instance)


@receiver(session_ended, dispatch_uid="tessera.tokens.backchannel_logout")
def tell_relying_parties(sender: Any, session: LoginSession, reason: str, **kwargs: Any) -> None:
    """The deliveries are written in the transaction that ends the session, so a crash after
    its commit leaves them pending, where the stalled-delivery sweep finds them. One task per
    client (§2.7), so one slow relying party delays no other, queued after commit. robust: a
    broker outage must not fail the logout itself; the sweep queues the delivery later."""
    if reason == "account_deleted":
        return  # the account's deletion cascades to its sessions and their deliveries
    for delivery in backchannel_deliveries_create(session=session):
        transaction.on_commit(partial(deliver_backchannel_logout.delay, delivery.pk), robust=True)
