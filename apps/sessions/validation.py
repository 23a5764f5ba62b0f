"""Validation of a login session on each browser request that uses it: an ordered list of small
checks (OWASP ASVS V3: session management). A check may flag the request (a security event,
once per distinct value) and may end the session; the first check that ends it decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from apps.core.events import EventType, emit
from apps.sessions import binding
from apps.sessions.models import LoginSession


@dataclass(frozen=True)
class Seen:
    """What this request shows about the browser using the session."""

    user_id: str  # the Django login's user
    ip: str | None
    user_agent: str
    device_id: str | None  # None: no device cookie, or a forged one
    device_cookie_tampered: bool
    now: datetime


@dataclass(frozen=True)
class Finding:
    end: str = ""  # the session ends for this reason (an END_REASONS key); "" keeps it
    flag: str = ""  # the SESSION_FLAGGED check name; "" flags nothing
    detail: str = ""  # the value flagged: one event per distinct (flag, detail)


Check = Callable[[LoginSession, Seen], Finding | None]


def _user_matches(session: LoginSession, seen: Seen) -> Finding | None:
    return None if str(session.user_id) == seen.user_id else Finding(end="user_mismatch")


def _not_compromised(session: LoginSession, seen: Seen) -> Finding | None:
    return Finding(end="compromised") if session.compromised else None


def _within_lifetime(session: LoginSession, seen: Seen) -> Finding | None:
    # ASVS 3.3.1 absolute lifetime; 3.3.2 idle timeout, sliding with use.
    if session.expires_at <= seen.now:
        return Finding(end="expired")
    idle = timedelta(seconds=settings.LOGIN_SESSION_IDLE_TIMEOUT)
    if session.last_active_at + idle <= seen.now:
        return Finding(end="idle_timeout")
    return None


def _same_network(session: LoginSession, seen: Seen) -> Finding | None:
    policy = settings.LOGIN_SESSION_IP_CHANGE
    if policy == "allow" or binding.same_network(session.ip_address, seen.ip):
        return None
    return Finding(
        end="ip_change" if policy == "reject" else "", flag="ip_change", detail=seen.ip or ""
    )


def _same_device(session: LoginSession, seen: Seen) -> Finding | None:
    if seen.device_cookie_tampered:
        return Finding(end="device_mismatch", flag="device_cookie_tampered")
    if not session.device_id:
        return None  # opened without a device cookie (an API-driven login): not bound
    if seen.device_id != session.device_id:
        return Finding(end="device_mismatch", flag="device_mismatch", detail=seen.device_id or "")
    return None


def _same_browser(session: LoginSession, seen: Seen) -> Finding | None:
    family = binding.browser_family(seen.user_agent)
    if family == binding.browser_family(session.user_agent):
        return None
    return Finding(flag="browser_change", detail=family)


CHECKS: tuple[Check, ...] = (
    _user_matches,
    _not_compromised,
    _within_lifetime,
    _same_network,
    _same_device,
    _same_browser,
)


def session_validate(session: LoginSession, seen: Seen) -> str:
    """Runs the checks in order; returns the reason the session must end, or ""."""
    for check in CHECKS:
        finding = check(session, seen)
        if finding is None:
            continue
        if finding.flag:
            _flag(session, finding)
        if finding.end:
            return finding.end
    return ""


def _flag(session: LoginSession, finding: Finding) -> None:
    key = f"{finding.flag}:{finding.detail}"
    flags: list[str] = session.context.setdefault("flags", [])
    if key in flags:
        return  # already said: a browser on a new network must not raise an event per page
    flags.append(key)
    LoginSession.objects.filter(pk=session.pk).update(context=session.context)
    metadata: dict[str, Any] = {"check": finding.flag}
    if finding.detail:
        metadata["value"] = finding.detail
    emit(
        EventType.SESSION_FLAGGED,
        user_id=session.user_id,
        session_id=session.pk,
        resource_type="session",
        resource_id=session.pk,
        success=False,
        metadata=metadata,
    )
