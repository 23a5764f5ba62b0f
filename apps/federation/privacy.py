"""What federation holds about a person, for their GDPR export and erasure (core.privacy):
the upstream accounts linked to theirs. Erasure deletes the links: the erased account keeps
its row (scrubbed), and an upstream subject left linked would sign in to it again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from apps.accounts.models import User
from apps.core.privacy import Section
from apps.federation.models import FederatedIdentity
from apps.federation.selectors import identities_of


class FederationData:
    def export(self, user: User) -> dict[str, Section]:
        return {"linked_accounts": _linked(user)}

    def erase(self, user: User, *, pseudonym: str, actor_id: object) -> None:
        FederatedIdentity.objects.filter(user=user).delete()


def _linked(user: User) -> Iterator[dict[str, Any]]:
    for identity in identities_of(user_id=user.pk):
        yield {
            "provider": identity.provider.slug,
            "provider_name": identity.provider.name,
            "subject": identity.subject,
            "email": identity.email,
            "email_verified": identity.email_verified,
            "display": identity.display,
            "linked_at": identity.created_at,
            "last_used_at": identity.last_used_at,
        }
