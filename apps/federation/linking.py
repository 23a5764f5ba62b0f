"""Who an upstream identity is here (issue 17), never decided by e-mail alone.

- Linked before: the person its (provider, subject) was linked to.
- Not linked, and an account holds the same address, which the provider says it verified:
  a *pending link*. The person must prove they own that account (sign in to it with its own
  password or passkey, and its second factor) before the identity is linked to it: else
  whoever controls an upstream account with that address — or made one before the real
  owner (pre-account takeover, Sudhodanan & Paverd 2022) — would walk in.
- Not linked, no account holds the address: a new account when the provider allows
  just-in-time provisioning and the address is verified upstream; otherwise refused.
An unverified upstream address never links and never creates an account. (OIDC Core §5.7:
only `iss` with `sub` identifies a person; `email` is not a stable or unique identifier.)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.core.events import EventType, emit
from apps.federation.models import FederatedIdentity, Provider
from apps.federation.selectors import identity_of
from apps.federation.upstream import UpstreamIdentity

PENDING_KEY = "tessera_federation_link"
PENDING_SECONDS = 600  # the proof must follow within this


@dataclass(frozen=True)
class Refused:
    code: str  # federation.failed error_code
    message: str  # for the person


@dataclass(frozen=True)
class PendingLink:
    """An upstream identity waiting for its person to prove the account is theirs (kept in
    the browser's server-side session)."""

    provider_id: str
    provider_slug: str
    provider_name: str
    subject: str
    email: str
    display: str
    user_id: str  # the account that holds the address
    next_url: str
    started: float

    @property
    def expired(self) -> bool:
        return not 0 <= time.time() - self.started <= PENDING_SECONDS


def resolve(
    *, provider: Provider, identity: UpstreamIdentity, next_url: str
) -> User | PendingLink | Refused:
    linked = identity_of(provider=provider, subject=identity.subject)
    if linked is not None:
        if not linked.user.is_active:
            return Refused("inactive", "This account is deactivated. Contact your administrator.")
        _seen(linked, identity)
        return linked.user
    verified = bool(identity.email and identity.email_verified)
    existing = User.objects.filter(email__iexact=identity.email).first() if verified else None
    if existing is not None:
        return PendingLink(
            provider_id=str(provider.pk),
            provider_slug=provider.slug,
            provider_name=provider.name,
            subject=identity.subject,
            email=existing.email,
            display=identity.display,
            user_id=str(existing.pk),
            next_url=next_url,
            started=time.time(),
        )
    if not provider.jit_provisioning:
        return Refused(
            "not_linked",
            f"No account here is linked to this {provider.name} account. Sign in another way "
            f"and link {provider.name} on your security page, or ask your administrator.",
        )
    if not verified:
        return Refused(
            "unverified_email",
            f"{provider.name} has not confirmed an e-mail address for this account, so no "
            f"account can be made for it here. Confirm your address at {provider.name} and try "
            "again.",
        )
    return _provision(provider, identity)


def _provision(provider: Provider, identity: UpstreamIdentity) -> User | Refused:
    """A new account for a verified upstream address (just-in-time provisioning): no
    password (it signs in through the provider, or sets one by a reset link), the address
    verified, and the identity linked, in one transaction."""
    try:
        with transaction.atomic():
            user = user_create(
                email=identity.email,
                name=identity.name[:200],
                email_verified=True,
                metadata={"source": "federation", "provider": provider.slug},
            )
            link(user=user, provider=provider, identity=identity, method="provisioned")
    except (ValidationError, IntegrityError):  # the address was taken meanwhile: no account
        return Refused(
            "conflict",
            "An account with this e-mail address was just created. Sign in again.",
        )
    return user


def link(
    *,
    user: User,
    provider: Provider,
    identity: UpstreamIdentity | PendingLink,
    method: str,
    actor_id: object = None,
) -> FederatedIdentity:
    """Links (provider, subject) to `user` and records federation.linked. Raises
    IntegrityError when the identity is linked already (to anyone)."""
    email = identity.email
    verified = identity.email_verified if isinstance(identity, UpstreamIdentity) else True
    with transaction.atomic():
        row = FederatedIdentity.objects.create(
            user=user,
            provider=provider,
            subject=identity.subject,
            email=email[:254],
            email_verified=verified,
            display=identity.display[:200],
            last_used_at=timezone.now(),
        )
        emit(
            EventType.FEDERATION_LINKED,
            user_id=user.pk,
            actor_id=actor_id if actor_id is not None else user.pk,
            resource_type="federated_identity",
            resource_id=row.pk,
            metadata={"provider": provider.slug, "subject": identity.subject, "method": method},
        )
    return row


def _seen(linked: FederatedIdentity, identity: UpstreamIdentity) -> None:
    """What the provider says now, for the pages (one UPDATE)."""
    FederatedIdentity.objects.filter(pk=linked.pk).update(
        email=identity.email[:254],
        email_verified=identity.email_verified,
        display=identity.display[:200],
        last_used_at=timezone.now(),
    )


def pending_save(request: HttpRequest, pending: PendingLink) -> None:
    request.session[PENDING_KEY] = asdict(pending)


def pending_current(request: HttpRequest) -> PendingLink | None:
    raw = request.session.get(PENDING_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        pending = PendingLink(**raw)
    except TypeError:
        pending_end(request)
        return None
    if pending.expired:
        pending_end(request)
        return None
    return pending


def pending_end(request: HttpRequest) -> None:
    request.session.pop(PENDING_KEY, None)


def pending_confirm(
    request: HttpRequest, *, pending: PendingLink, user: User, signed_in_at: Any
) -> FederatedIdentity | Refused:
    """The person proved the account of `pending` is theirs: they signed in to it (its login
    session began after the pending link did). Then the identity is linked to it."""
    if str(user.pk) != pending.user_id:
        return Refused(
            "wrong_account",
            f"You signed in to another account than the one with {pending.email}. Sign in to "
            "that one to link it.",
        )
    if signed_in_at is None or signed_in_at.timestamp() < pending.started:
        return Refused("not_proven", "Sign in to your account first, then confirm the link.")
    provider = Provider.objects.filter(pk=pending.provider_id, enabled=True).first()
    if provider is None:
        return Refused("provider_disabled", f"{pending.provider_name} is no longer available.")
    try:
        row = link(user=user, provider=provider, identity=pending, method="proven")
    except IntegrityError:
        return Refused(
            "already_linked",
            f"This {pending.provider_name} account is linked to an account here already.",
        )
    pending_end(request)
    return row
