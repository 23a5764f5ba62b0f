from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from apps.accounts.models import User
from apps.tokens import mtls
from apps.tokens.hashers import ALGORITHM, client_secret_key_id
from apps.tokens.models import BackchannelLogoutDelivery, Client, Consent, OfflineGrant


def backchannel_deliveries(
    session_ids: Iterable[UUID | str], *, status: str = ""
) -> list[BackchannelLogoutDelivery]:
    """The back-channel logout deliveries of these login sessions (those in `status`, when
    given), newest first: which relying parties were told, and which were not (status,
    attempts, last error)."""
    deliveries = BackchannelLogoutDelivery.objects.filter(session_id__in=list(session_ids))
    if status:
        deliveries = deliveries.filter(status=status)
    return list(deliveries.order_by("-created_at", "client_id"))


def consent_scopes(*, user_id: Any, client: Client) -> frozenset[str]:
    """The scopes the person has allowed the client (empty when they never did)."""
    consent = Consent.objects.filter(user_id=user_id, client=client).first()
    return frozenset(consent.scopes.split()) if consent else frozenset()


def offline_grants_live(*, user: User) -> list[OfflineGrant]:
    """The person's offline grants still in force, newest first, with their clients."""
    grants = OfflineGrant.objects.live().filter(user=user)
    return list(grants.select_related("client", "user").order_by("-created_at"))


def offline_grant_detail(*, grant_id: UUID) -> OfflineGrant | None:
    found: OfflineGrant | None = (
        OfflineGrant.objects.filter(pk=grant_id).select_related("client", "user").first()
    )
    return found


def client_names(client_ids: Iterable[str]) -> dict[str, str]:
    """The names of the clients with these client ids, by id (one indexed query)."""
    wanted = set(client_ids)
    rows = Client.objects.filter(client_id__in=wanted).values_list("client_id", "name")
    return dict(rows) if wanted else {}


def client_secrets_by_key() -> dict[str | None, int]:
    """How many confidential clients' secret hashes each IDP_SECRET_KEY made, by key id
    (apps.core.secret_keys.key_id; None: hashed before hashes named their key). A hash moves
    to the current key when its client next authenticates. Clients that authenticate by
    certificate are left out: nobody knows their secret, an old key's hash of it harms none."""
    counts: dict[str | None, int] = {}
    stored = (
        Client.objects.filter(client_type=Client.CLIENT_CONFIDENTIAL)
        .exclude(client_secret="")
        .exclude(token_endpoint_auth_method__in=mtls.CERTIFICATE_METHODS)
        .values_list("client_secret", flat=True)
    )
    for encoded in stored.iterator():
        if encoded.startswith(f"{ALGORITHM}$"):
            kid = client_secret_key_id(encoded)
            counts[kid] = counts.get(kid, 0) + 1
    return counts
