"""The applications a person let in, as their own account page shows them (apps.core.people's
PersonApplications port, named by settings.PERSON_APPLICATIONS): their consents and their live
offline grants, and revoking one of them. Every read and revoke is scoped to the person: an id
of someone else's grant or a client they never consented to is "not found", never acted on."""

from __future__ import annotations

import uuid

from apps.core.people import ApplicationAccess
from apps.tokens.models import Client, Consent, OfflineGrant
from apps.tokens.services import consent_revoke, offline_grant_revoke

# A person's consents and grants shown at most (each kind): the page stays bounded.
SHOWN_MAX = 100
# offline_grant_revoke's reason when the person ends the grant themself.
REVOKED_BY_PERSON = "user_revoked"


class PersonApplications:
    def list(self, *, user_id: object) -> list[ApplicationAccess]:
        consents = (
            Consent.objects.filter(user_id=str(user_id))
            .select_related("client")
            .order_by("-updated_at")[:SHOWN_MAX]
        )
        grants = (
            OfflineGrant.objects.live()
            .filter(user_id=str(user_id))
            .select_related("client")
            .order_by("-created_at")[:SHOWN_MAX]
        )
        found = [
            ApplicationAccess(
                kind="consent",
                id=c.client.client_id,
                client_id=c.client.client_id,
                client_name=c.client.name or c.client.client_id,
                scopes=tuple(c.scopes.split()),
                granted_at=c.updated_at,
            )
            for c in consents
        ] + [
            ApplicationAccess(
                kind="offline",
                id=str(g.pk),
                client_id=g.client.client_id,
                client_name=g.client.name or g.client.client_id,
                scopes=tuple(g.scope.split()),
                granted_at=g.created_at,
                last_used_at=g.last_used_at,
                expires_at=g.expires_at,
            )
            for g in grants
        ]
        return sorted(found, key=lambda a: a.granted_at, reverse=True)

    def consent_revoke(self, *, user_id: object, client_id: str) -> bool:
        client = Client.objects.filter(client_id=client_id[:100]).first()
        if client is None:
            return False
        # consent_revoke finds the consent by (user, client): someone else's is not touched.
        return consent_revoke(user_id=user_id, client=client, actor_id=user_id)

    def offline_grant_revoke(self, *, user_id: object, grant_id: str) -> bool:
        try:
            pk = uuid.UUID(grant_id)
        except (ValueError, TypeError):
            return False
        grant = OfflineGrant.objects.live().filter(pk=pk, user_id=str(user_id))
        found = grant.select_related("client").first()
        if found is None:
            return False
        return offline_grant_revoke(grant=found, reason=REVOKED_BY_PERSON, actor_id=user_id)
