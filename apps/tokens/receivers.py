"""What tokens does when something it does not own changes:

- a login session ended (apps.sessions.signals): its relying parties are told over the back
  channel (OpenID Connect Back-Channel Logout 1.0); a session ended as compromised also takes
  the offline grants given in it (a stolen sign-in must not leave a refresh token behind);
- an account was deactivated or deleted, or its password changed (apps.accounts.signals):
  every session and offline grant ends (user_access_revoke_all);
- a client is deleted: its tokens are revoked first;
- a client is created, changed or deleted, by any road (services, `createclient`, DOT's admin,
  a cascade from its owner's deletion): once it commits, every process drops its cached copy
  (apps.core.cache). Model signals rather than a service, because DOT's admin and cascades
  save and delete clients without our services; only a queryset .update() would bypass them,
  and the one that touches clients (a secret's hash re-keyed, apps.tokens.clients) publishes
  itself.

Ending a session for any other reason leaves offline grants alone (OIDC Core §11).
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from apps.accounts.models import User
from apps.accounts.signals import password_changed
from apps.core.cache import publish_on_commit
from apps.core.commit import queue_after_commit
from apps.sessions.models import LoginSession
from apps.sessions.signals import session_ended
from apps.tokens import clients
from apps.tokens.logout_propagation import backchannel_deliveries_create
from apps.tokens.models import Client
from apps.tokens.services import (
    client_tokens_revoke,
    offline_grants_revoke_all,
    user_access_revoke_all,
)
from apps.tokens.tasks import deliver_backchannel_logout


@receiver(pre_save, sender=Client, dispatch_uid="tessera.tokens.client_renaming")
def forget_renamed_client(sender: Any, instance: Client, raw: bool = False, **kwargs: Any) -> None:
    """A client whose client_id changes: its old id must stop authenticating everywhere."""
    if raw or instance.pk is None:
        return
    before = Client.objects.filter(pk=instance.pk).values_list("client_id", flat=True).first()
    if before is not None and before != instance.client_id:
        publish_on_commit(clients.CACHE, before)


@receiver(post_save, sender=Client, dispatch_uid="tessera.tokens.client_saved")
@receiver(post_delete, sender=Client, dispatch_uid="tessera.tokens.client_removed")
def forget_changed_client(sender: Any, instance: Client, **kwargs: Any) -> None:
    publish_on_commit(clients.CACHE, instance.client_id)


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
        queue_after_commit(deliver_backchannel_logout, delivery.pk)


@receiver(session_ended, dispatch_uid="tessera.tokens.compromised_session")
def end_offline_grants_of_compromised_session(
    sender: Any, session: LoginSession, reason: str, **kwargs: Any
) -> None:
    if reason == "compromised":
        offline_grants_revoke_all(user=session.user, reason=reason, session=session)


@receiver(post_save, sender=User, dispatch_uid="tessera.tokens.deactivated")
def revoke_everything_of_deactivated(sender: Any, instance: User, **kwargs: Any) -> None:
    """A deactivated account keeps no session and no offline access: its tokens stop working
    everywhere now, not when they expire (OWASP ASVS 3.3.3)."""
    if not instance.is_active:
        user_access_revoke_all(user=instance, reason="account_disabled")


@receiver(pre_delete, sender=User, dispatch_uid="tessera.tokens.deleted")
def revoke_everything_of_deleted(sender: Any, instance: User, **kwargs: Any) -> None:
    """Before the cascade removes the rows: the sids and jtis go on the revocation list, or
    the tokens would stay valid until they expire. Relying parties get no back-channel
    notice: the deliveries would go with the sessions' rows."""
    user_access_revoke_all(user=instance, reason="account_deleted")


@receiver(password_changed, dispatch_uid="tessera.tokens.password_changed")
def revoke_everything_on_password_change(sender: Any, user: User, **kwargs: Any) -> None:
    """A new password ends every session and offline grant (OWASP ASVS 3.3.3): whoever
    knew the old one keeps nothing it opened."""
    user_access_revoke_all(user=user, reason="password_changed")
