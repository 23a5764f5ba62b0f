"""What tokens holds about a person, for their GDPR export and erasure (core.privacy): the
consents they gave, their offline grants and the clients they used. Erasure revokes the
offline grants, deletes the consents and unlinks the clients they registered, which stay:
they serve other people. Their other tokens die with their sessions (sessions.privacy)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Q

from apps.accounts.models import User
from apps.core.privacy import Section
from apps.sessions.models import SessionClient
from apps.tokens.models import Client, Consent, OfflineGrant
from apps.tokens.services import offline_grants_revoke_all


class TokenData:
    def export(self, user: User) -> dict[str, Section]:
        return {
            "consents": _consents(user),
            "offline_grants": _offline_grants(user),
            "clients": _clients(user),
        }

    def erase(self, user: User, *, pseudonym: str, actor_id: object) -> None:
        offline_grants_revoke_all(user=user, reason="erased", actor_id=actor_id)
        Consent.objects.filter(user=user).delete()
        Client.objects.filter(user=user).update(user=None)


def _consents(user: User) -> Iterator[dict[str, Any]]:
    for consent in Consent.objects.filter(user=user).select_related("client"):
        yield {
            "client_id": consent.client.client_id,
            "client_name": consent.client.name,
            "scopes": consent.scopes.split(),
            "granted_at": consent.created_at,
            "updated_at": consent.updated_at,
        }


def _offline_grants(user: User) -> Iterator[dict[str, Any]]:
    grants = OfflineGrant.objects.filter(user=user).select_related("client")
    for grant in grants.order_by("-created_at"):
        yield {
            "id": grant.pk,
            "client_id": grant.client.client_id,
            "scopes": grant.scope.split(),
            "session_id": grant.session_id,
            "created_at": grant.created_at,
            "last_used_at": grant.last_used_at,
            "expires_at": grant.expires_at,
            "revoked_at": grant.revoked_at,
            "revoke_reason": grant.revoke_reason,
        }


def _clients(user: User) -> Iterator[dict[str, Any]]:
    """The clients that received tokens in their sessions or hold their consent."""
    in_sessions = SessionClient.objects.filter(session__user=user).values("client_id")
    used = Client.objects.filter(Q(client_id__in=in_sessions) | Q(consent__user=user))
    for client in used.distinct().order_by("name"):
        yield {"client_id": client.client_id, "name": client.name}
