"""Reads: the enabled providers (kept per process in the one cache, apps.core.cache, and
dropped everywhere when apps.federation.providers changes one), a person's linked identities,
and the login page's port (apps.core.federation.UpstreamDirectory)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from apps.core.cache import ProcessCache
from apps.core.federation import ProviderButton
from apps.federation.models import FederatedIdentity, Provider

CACHE_NAME = "federation"  # apps.federation.providers publishes it on every change
# Every process serves the list at most this long after a change it missed (Redis down).
_cache: ProcessCache[tuple[Provider, ...]] = ProcessCache(
    CACHE_NAME, max_age=30.0, max_entries=1, single_flight=True
)
_ENABLED = "enabled"
MAX_HINT = 254  # characters of an idp_hint or login_hint looked at (RFC 5321 §4.5.3.1.3)


def providers_enabled() -> tuple[Provider, ...]:
    """The enabled providers, by name (one statement per process and change)."""
    return _cache.get(_ENABLED, _load) or ()


def _load(_previous: tuple[Provider, ...] | None) -> tuple[Provider, ...]:
    return tuple(Provider.objects.filter(enabled=True).order_by("name", "slug"))


def provider_enabled(slug: str) -> Provider | None:
    """The enabled provider of that slug, or None (unknown, disabled, or not a slug)."""
    return next((p for p in providers_enabled() if p.slug == slug[:MAX_HINT]), None)


def provider_for_domain(email: str) -> Provider | None:
    """The enabled provider whose login_domains hold the address's domain (home-realm
    discovery), or None. Compared case-insensitively; the first by name wins."""
    _local, at, domain = email[:MAX_HINT].strip().rpartition("@")
    if not at or not domain:
        return None
    domain = domain.casefold()
    return next(
        (
            p
            for p in providers_enabled()
            if domain in {str(d).casefold() for d in p.login_domains or ()}
        ),
        None,
    )


def identities_of(*, user_id: uuid.UUID | str) -> list[FederatedIdentity]:
    """A person's linked identities with their providers, oldest first."""
    return list(FederatedIdentity.objects.filter(user_id=user_id).select_related("provider"))


def identity_of(*, provider: Provider, subject: str) -> FederatedIdentity | None:
    return (
        FederatedIdentity.objects.filter(provider=provider, subject=subject)
        .select_related("user")
        .first()
    )


@dataclass(frozen=True)
class Directory:
    """apps.core.federation.UpstreamDirectory: the login page's buttons and hints."""

    def buttons(self) -> list[ProviderButton]:
        return [ProviderButton(p.slug, p.name, p.kind) for p in providers_enabled()]

    def route(self, *, idp_hint: str, login_hint: str) -> str | None:
        if idp_hint:
            provider = provider_enabled(idp_hint)
            if provider is not None:
                return provider.slug
        if login_hint:
            provider = provider_for_domain(login_hint)
            if provider is not None:
                return provider.slug
        return None
