"""What sessions holds about a person, for their GDPR export and erasure (core.privacy): their
login sessions, with the addresses, devices and browsers they signed in from. Erasure ends
the live ones (their tokens die, relying parties are told after commit) and strips every
one of IP address, device and browser."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from apps.accounts.models import User
from apps.core.privacy import Section
from apps.sessions.models import LoginSession
from apps.sessions.services import session_end_all


class SessionData:
    def export(self, user: User) -> dict[str, Section]:
        return {"sessions": _sessions(user)}

    def erase(self, user: User, *, pseudonym: str, actor_id: object) -> None:
        session_end_all(user=user, reason="operator", actor_id=actor_id)
        LoginSession.objects.filter(user=user).update(
            ip_address=None, user_agent="", device_id="", context={}
        )


def _sessions(user: User) -> Iterator[dict[str, Any]]:
    sessions = LoginSession.objects.filter(user=user).order_by("-created_at")
    for s in sessions.prefetch_related("clients").iterator(chunk_size=500):
        yield {
            "id": s.pk,
            "provider": s.provider,
            "acr": s.acr,
            "amr": s.amr,
            "security_level": s.security_level,
            "authenticated_at": s.authenticated_at,
            "device_id": s.device_id,
            "ip_address": s.ip_address,
            "user_agent": s.user_agent,
            "context": s.context,
            "created_at": s.created_at,
            "last_active_at": s.last_active_at,
            "expires_at": s.expires_at,
            "ended_at": s.ended_at,
            "end_reason": s.end_reason,
            "clients": [client.client_id for client in s.clients.all()],
        }
