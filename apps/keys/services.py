"""Signing keys as an operator sees them (the console and the admin API alike): each
algorithm's key chain with each key's state and dates, and "rotate now". The lifecycle itself
is apps.keys.keys (keys_rotate is the only writer of SigningKey rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from apps.keys.keys import (
    ALGORITHMS,
    _signer,
    jwks,
    keys_rotate,
    publish_ahead,
    retired_publication,
)
from apps.keys.models import SigningKey


@dataclass(frozen=True)
class KeyState:
    """One key: `state` is next (published, signs from activates_at), active (signs now) or
    retired (signs no more; published until its last token has expired)."""

    kid: str
    alg: str
    generation: int
    state: str
    created_at: datetime  # in the JWKS from this moment
    activates_at: datetime
    retired_at: datetime | None  # when it stopped (or will stop) signing
    published_until: datetime | None  # leaves the JWKS (and the table) then


@dataclass(frozen=True)
class KeyChain:
    alg: str
    keys: list[KeyState]  # newest first


def key_chains(*, now: datetime | None = None) -> list[KeyChain]:
    """Every algorithm's published keys, newest first, with their state at `now`. On a fresh
    install the first keys are created here, as the first token signed would (keys.jwks()
    bootstraps missing chains)."""
    jwks()
    now = now or timezone.now()
    rows = list(SigningKey.objects.order_by("alg", "-generation"))
    chains = []
    for alg in ALGORITHMS:
        chain = [key for key in rows if key.alg == alg]
        signer = _signer(chain, now)  # the signing path's own rule, on the rows read above
        successors = sorted((k.activates_at for k in chain if k.activates_at <= now), reverse=True)
        states = []
        for key in chain:
            retired_at = key.retired_at
            if key == signer:
                state = "active"
            elif key.activates_at > now and key.retired_at is None:
                state = "next"
            else:
                state = "retired"
                if retired_at is None:  # superseded; the next scheduled run records it
                    retired_at = min(
                        (at for at in successors if at > key.activates_at), default=None
                    )
            published_until = retired_at + retired_publication() if retired_at else None
            states.append(
                KeyState(
                    kid=key.kid,
                    alg=key.alg,
                    generation=key.generation,
                    state=state,
                    created_at=key.created_at,
                    activates_at=key.activates_at,
                    retired_at=retired_at,
                    published_until=published_until,
                )
            )
        chains.append(KeyChain(alg, states))
    return chains


@dataclass(frozen=True)
class RotationTerms:
    """What "rotate now" does, in figures for its confirmation."""

    algorithms: tuple[str, ...]
    retired_published_for_seconds: int  # old keys stay in the JWKS this long
    jwks_max_age: int  # relying parties may cache the JWKS this long
    rotation_days: int  # the scheduled rotation period
    publish_ahead_seconds: int  # how far ahead a scheduled next key is published

    @property
    def retired_published_for(self) -> str:
        return _span(self.retired_published_for_seconds)

    @property
    def publish_ahead(self) -> str:
        return _span(self.publish_ahead_seconds)


def _span(seconds: int) -> str:
    """A duration as a person reads it: "1 day", "65 minutes", "30 seconds"."""
    if seconds >= 86400 and seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day{'s' * (days != 1)}"
    if seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def rotation_terms() -> RotationTerms:
    return RotationTerms(
        algorithms=ALGORITHMS,
        retired_published_for_seconds=int(retired_publication().total_seconds()),
        jwks_max_age=settings.JWKS_MAX_AGE,
        rotation_days=settings.KEY_ROTATION_DAYS,
        publish_ahead_seconds=int(publish_ahead().total_seconds()),
    )


def keys_rotate_now(*, actor_id: object) -> list[KeyState]:
    """Immediate rotation of every algorithm (after a suspected compromise), as
    `manage.py rotate_keys` does: a new key per algorithm is published and signs from now,
    in every process within a second; every other key of its algorithm is retired now and
    stays in the JWKS until the tokens it signed have expired, so they still verify. Each
    step is a key.rotated event with the operator as actor_id. Returns the new keys."""
    now = timezone.now()
    created = keys_rotate(now=now, immediate=True, actor_id=actor_id)
    return [
        KeyState(
            kid=key.kid,
            alg=key.alg,
            generation=key.generation,
            state="active",
            created_at=key.created_at,
            activates_at=key.activates_at,
            retired_at=None,
            published_until=None,
        )
        for key in created
    ]
