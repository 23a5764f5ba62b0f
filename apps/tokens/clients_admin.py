"""Operators' work on OAuth clients, for the console and the admin API alike (one road):
find and list them, register, edit, rotate a secret, disable, enable and delete. Registration
and edits go through the rules `createclient` uses (services.client_create and
client_configure); every change records a client.* event with the operator as actor_id
(OWASP ASVS 7.2.2: administrative actions are logged with who did them).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.commit import queue_after_commit
from apps.core.events import EventType, emit
from apps.tokens import mtls
from apps.tokens.logout_propagation import DEPARTED_BATCH, departing_client
from apps.tokens.models import AccessToken, Client, OfflineGrant, RefreshToken
from apps.tokens.services import (
    client_access_tokens_revoke,
    client_configure,
    client_create,
)
from apps.tokens.tasks import deliver_departed_client_logouts

CLIENT_PAGE_SIZE = 50
# What an edit may change, as client_configure names it; the client type and id stay.
EDITABLE = (
    "name",
    "redirect_uris",
    "post_logout_redirect_uris",
    "grant_types",
    "skip_consent",
    "id_token_alg",
    "backchannel_logout_uri",
    "frontchannel_logout_uri",
    "require_pkce",
    "require_mfa",
    "require_par",
    # RFC 8705 client metadata (mtls.registration_set)
    "token_endpoint_auth_method",
    *mtls.IDENTIFIERS,
    "jwks",
    "tls_client_certificate_bound_access_tokens",
    # OWASP ASVS 10.4.11 / 9.2.4 (apps/tokens/scopes.py, resources.py)
    "allowed_scopes",
    "allowed_resources",
)


@dataclass(frozen=True)
class ClientPage:
    clients: list[Client]
    next_cursor: int | None  # pass as `after` for the next page; None on the last


def client_page(
    *, query: str = "", after: int | None = None, size: int = CLIENT_PAGE_SIZE
) -> ClientPage:
    """Clients newest first, a keyset page at a time (by primary key: no OFFSET, no COUNT).
    `query` matches a client id exactly or a name in part; the client table is small (one
    row per relying party), so the partial match scans it."""
    found = Client.objects.all()
    if query:
        found = found.filter(Q(client_id=query) | Q(name__icontains=query))
    if after is not None:
        found = found.filter(pk__lt=after)
    rows = list(found.order_by("-pk")[: size + 1])
    if len(rows) <= size:
        return ClientPage(rows, None)
    return ClientPage(rows[:size], rows[size - 1].pk)


def client_detail(*, client_id: str) -> Client | None:
    """Any client, disabled or not (protocol code uses clients.client_by_id)."""
    found: Client | None = Client.objects.filter(client_id=client_id).first()
    return found


def client_settings(client: Client) -> dict[str, Any]:
    """A client's registration as client_configure takes it (an edit form's initial values)."""
    return {
        "name": client.name,
        "redirect_uris": client.redirect_uris.split(),
        "post_logout_redirect_uris": client.post_logout_redirect_uris.split(),
        "grant_types": client.grant_types.split(),
        "skip_consent": client.skip_authorization,
        "id_token_alg": client.id_token_signed_response_alg,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "frontchannel_logout_uri": client.frontchannel_logout_uri,
        "require_pkce": client.require_pkce,
        "require_mfa": client.require_mfa,
        "require_par": client.require_par,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        **{field: getattr(client, field) for field in mtls.IDENTIFIERS},
        "jwks": client.jwks,
        "tls_client_certificate_bound_access_tokens": (
            client.tls_client_certificate_bound_access_tokens
        ),
        "allowed_scopes": client.allowed_scopes.split(),
        "allowed_resources": client.allowed_resources.split(),
    }


@dataclass(frozen=True)
class TokenCounts:
    """What a client holds now: the figures a disable or delete confirmation states."""

    refresh_tokens: int  # unrevoked refresh tokens (each one a grant that can go on)
    access_tokens: int  # stored access tokens not yet expired (their jti can be listed)
    offline_grants: int  # live offline grants


def client_token_counts(*, client: Client) -> TokenCounts:
    now = timezone.now()
    return TokenCounts(
        refresh_tokens=RefreshToken.objects.filter(
            application=client, revoked__isnull=True
        ).count(),
        access_tokens=AccessToken.objects.filter(application=client, expires__gt=now).count(),
        offline_grants=OfflineGrant.objects.live().filter(client=client).count(),
    )


def client_register(*, actor_id: object, **registration: Any) -> tuple[Client, str | None]:
    """services.client_create with the operator as the event's actor; the secret in clear is
    returned once and stored only as a hash."""
    return client_create(actor_id=actor_id, **registration)


def client_update(*, client: Client, actor_id: object, **changes: Any) -> list[str]:
    """Changes the registration (fields of EDITABLE; the others as they were), checked by the
    rules registration uses; returns the names of the fields that changed (none: no event).
    Redirect URIs are matched exactly at /authorize (RFC 9700 §4.1.3), so what is saved here
    is what a client must send, byte for byte."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "This field cannot be changed."})
    before = client_settings(client)
    after = {**before, **changes}
    with transaction.atomic():
        locked = Client.objects.select_for_update().get(pk=client.pk)
        client_configure(
            locked,
            backchannel_logout_session_required=locked.backchannel_logout_session_required,
            frontchannel_logout_session_required=locked.frontchannel_logout_session_required,
            **after,
        )
        now = client_settings(locked)
        changed = [field for field in EDITABLE if now[field] != before[field]]
        if not changed:
            return []
        if mtls.uses_certificate(locked) and not mtls.uses_certificate(client):
            # RFC 8705 §2: the certificate is its only credential; the old secret would come
            # back to life were the method switched back (a new one is rotated then).
            locked.client_secret = mtls.secret_nobody_knows()
        locked.save()
        emit(
            EventType.CLIENT_CHANGED,
            actor_id=actor_id,
            resource_type="client",
            resource_id=locked.client_id,
            action="updated",
            metadata={
                "changed": changed,
                "before": {field: _shown(field, before[field]) for field in changed},
                "after": {field: _shown(field, now[field]) for field in changed},
            },
        )
    client.refresh_from_db()
    return changed


def _shown(field: str, value: Any) -> Any:
    """A setting as a change event records it: a jwks by its certificates' thumbprints (a set
    of keys is kilobytes and says nothing a thumbprint does not)."""
    return mtls.certificate_summary(value) if field == "jwks" else value


def client_secret_rotate(*, client: Client, actor_id: object) -> str:
    """A new 256-bit secret, returned in clear once and stored as a keyed hash
    (ClientSecretHasher); the old one stops authenticating at once, in every process within
    a second (the clients cache is told on commit). Tokens already issued are untouched."""
    if client.client_type != Client.CLIENT_CONFIDENTIAL:
        raise ValidationError({"client": "A public client has no secret (RFC 6749 §2.1)."})
    if mtls.uses_certificate(client):
        raise ValidationError(
            {"client": "This client authenticates with its certificate (RFC 8705), not a secret."}
        )
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        locked = Client.objects.select_for_update().get(pk=client.pk)
        locked.client_secret = secret  # hashed by DOT's ClientSecretField on save
        locked.save(update_fields=["client_secret", "updated"])
        emit(
            EventType.CLIENT_CHANGED,
            actor_id=actor_id,
            resource_type="client",
            resource_id=locked.client_id,
            action="secret_rotated",
        )
    client.refresh_from_db()
    return secret


def client_disable(*, client: Client, actor_id: object) -> bool:
    """Refuses the client everywhere from now (authorize, token, introspection, revocation:
    it is unknown to them) and puts its stored access tokens on the revocation list. Its
    refresh tokens and consents stay, unusable while it is disabled, so enabling it again
    restores its users' grants. False when it was already disabled."""
    with transaction.atomic():
        locked = Client.objects.select_for_update().get(pk=client.pk)
        if locked.disabled_at is not None:
            return False
        locked.disabled_at = timezone.now()
        locked.save(update_fields=["disabled_at", "updated"])
        client_access_tokens_revoke(client=locked)
        emit(
            EventType.CLIENT_CHANGED,
            actor_id=actor_id,
            resource_type="client",
            resource_id=locked.client_id,
            action="disabled",
        )
    client.refresh_from_db()
    return True


def client_enable(*, client: Client, actor_id: object) -> bool:
    """Undoes client_disable (its revoked access tokens stay revoked). False when it was
    not disabled."""
    with transaction.atomic():
        locked = Client.objects.select_for_update().get(pk=client.pk)
        if locked.disabled_at is None:
            return False
        locked.disabled_at = None
        locked.save(update_fields=["disabled_at", "updated"])
        emit(
            EventType.CLIENT_CHANGED,
            actor_id=actor_id,
            resource_type="client",
            resource_id=locked.client_id,
            action="enabled",
        )
    client.refresh_from_db()
    return True


@dataclass(frozen=True)
class ClientDeleted:
    client_id: str
    refresh_tokens_revoked: int
    access_tokens_revoked: int
    offline_grants_ended: int
    sessions_told: int  # live sessions whose back-channel Logout Token is queued


def client_delete(*, client: Client, actor_id: object) -> ClientDeleted:
    """Deletes the client and everything issued to it:

    - its refresh tokens are revoked and then deleted with it: the token endpoint refuses
      them (invalid_grant);
    - its stored access tokens' jtis go on the revocation list (RFC 7009 §2: they die now,
      not at expiry). client_credentials tokens are not stored and run out on their own
      (ACCESS_TOKEN_LIFETIME at most);
    - its offline grants end, its consents and unused codes go with the row;
    - with a backchannel_logout_uri, the relying party gets a Logout Token for every live
      session it held tokens in (Back-Channel Logout 1.0 §2.5), queued to the worker once
      the deletion commits, so it ends the sessions it keeps for those people.
    """
    with transaction.atomic():
        locked = Client.objects.select_for_update().get(pk=client.pk)
        counts = client_token_counts(client=locked)
        departed = departing_client(client=locked)
        client_id = locked.client_id
        locked.delete()  # its pre_delete receiver revokes every token (tokens.receivers)
        result = ClientDeleted(
            client_id=client_id,
            refresh_tokens_revoked=counts.refresh_tokens,
            access_tokens_revoked=counts.access_tokens,
            offline_grants_ended=counts.offline_grants,
            sessions_told=len(departed.sessions) if departed else 0,
        )
        emit(
            EventType.CLIENT_DELETED,
            actor_id=actor_id,
            resource_type="client",
            resource_id=client_id,
            metadata={
                "name": client.name,
                "refresh_tokens_revoked": result.refresh_tokens_revoked,
                "access_tokens_revoked": result.access_tokens_revoked,
                "offline_grants_ended": result.offline_grants_ended,
                "sessions_told": result.sessions_told,
            },
        )
        if departed is not None:
            for start in range(0, len(departed.sessions), DEPARTED_BATCH):
                batch = [list(s) for s in departed.sessions[start : start + DEPARTED_BATCH]]
                # robust: a broker outage must not undo the deletion (as at logout)
                queue_after_commit(
                    deliver_departed_client_logouts,
                    departed.client_id,
                    departed.uri,
                    departed.alg,
                    batch,
                )
    return result
