"""How the console shows a login session's state and recorded context."""

from __future__ import annotations

import json

from django import template

from apps.sessions.models import LoginSession
from apps.sessions.services import session_is_live

register = template.Library()


@register.filter
def session_state(session: LoginSession) -> str:
    """ "live", "expired" (past its lifetime, not ended yet) or "ended"."""
    if session.ended_at is not None:
        return "ended"
    return "live" if session_is_live(session) else "expired"


@register.filter
def place(location: object) -> str:
    """The login's location as the session context records it (GeoIP, when configured)."""
    if isinstance(location, dict):
        parts = (location.get(key) for key in ("city", "region", "country"))
        return ", ".join(str(part) for part in parts if part)
    return str(location) if location else ""


@register.filter
def plain(value: object) -> str:
    """An event's metadata value as JSON writes it (true, ["pwd"]), strings as they are."""
    return value if isinstance(value, str) else json.dumps(value)


@register.filter
def wait(seconds: int) -> str:
    """A lockout's time left: "permanent" (-1: until an operator unlocks), "4 min 10 s",
    "—" when not locked (0)."""
    if seconds < 0:
        return "permanent"
    if seconds == 0:
        return "—"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{secs} s"]
    return " ".join(part for part in parts if part and part != "0 s") or f"{secs} s"


@register.filter
def has_role(user: object, role: str) -> bool:
    """Whether the signed-in staff member's console role is `role` or above, so a page leaves
    out what they may not do instead of answering 403 after the click (the views still
    check: apps.console.permissions)."""
    check = getattr(user, "has_staff_role", None)
    return bool(check and check(role))
