"""What binds a login session to the browser that opened it: a device id, the network and the
browser family.

The device id comes from a long-lived, signed, HttpOnly device cookie plus the user-agent
family and the platform client hints, never from the IP address (mobile networks change it
all the time). A cookie copied to another browser family, or a forged one, does not match.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse

from apps.core.secret_keys import unsign

DEVICE_COOKIE = "tessera_device"
_SALT = "tessera.sessions.device"
DEVICE_COOKIE_AGE = 2 * 365 * 86400  # seconds; renewed at every login


class TamperedDeviceCookie(Exception):
    """The device cookie is present but its signature does not verify."""


def device_cookie(request: HttpRequest) -> str | None:
    """The browser's device cookie id, None without one; raises TamperedDeviceCookie for a
    cookie we did not sign (OWASP ASVS 3.2: session tokens are not forgeable)."""
    return device_cookie_read(request)[0]


def device_cookie_read(request: HttpRequest) -> tuple[str | None, bool]:
    """device_cookie(), and whether a fallback of IDP_SECRET_KEY signed it: then the cookie
    is set again under the current key (LoginSessionMiddleware), with the same id, so the
    device stays the same and the old key can be dropped before the cookie's two years."""
    value = request.COOKIES.get(DEVICE_COOKIE)
    if value is None:
        return None, False
    try:
        cookie_id, stale = unsign(value, salt=_SALT)
    except signing.BadSignature as error:
        raise TamperedDeviceCookie from error
    if not isinstance(cookie_id, str):
        raise TamperedDeviceCookie
    return cookie_id, stale


def new_device_cookie() -> str:
    return secrets.token_urlsafe(24)


def set_device_cookie(response: HttpResponse, cookie_id: str) -> None:
    response.set_cookie(
        DEVICE_COOKIE,
        signing.dumps(cookie_id, salt=_SALT),
        max_age=DEVICE_COOKIE_AGE,
        httponly=True,  # OWASP ASVS 3.4.2
        secure=settings.ISSUER.startswith("https://"),  # ASVS 3.4.1
        samesite="Lax",  # ASVS 3.4.3: sent on top-level navigations from relying parties
    )


@dataclass(frozen=True)
class Device:
    browser: str  # browser_family: "Firefox on Linux"
    platform: str  # "Linux", "Android", ...
    mobile: bool


def device(request: HttpRequest) -> Device:
    """What a request says of its browser and device: the browser family, and the platform
    and mobile client hints. Chromium leaves the hints off some requests (a download link,
    for one), so a missing hint is read from the User-Agent instead: the same browser says the
    same with or without them."""
    user_agent = request.headers.get("User-Agent", "")
    platform = request.headers.get("Sec-CH-UA-Platform", "").strip('"') or _system(user_agent)
    mobile_hint = request.headers.get("Sec-CH-UA-Mobile", "")
    mobile = mobile_hint == "?1" if mobile_hint else "Mobile" in user_agent
    return Device(browser_family(user_agent), platform, mobile)


def device_id(cookie_id: str, request: HttpRequest) -> str:
    """A stable id of this browser on this device: the device cookie and what the request
    says of its browser and device (device())."""
    seen = device(request)
    hints = (cookie_id, seen.browser, seen.platform, "mobile" if seen.mobile else "desktop")
    return hashlib.sha256("\x1f".join(hints).encode()).hexdigest()[:32]


# (family, pattern), first match wins: Edge and Opera announce Chrome too, Chrome Safari.
_BROWSERS = (
    ("Edge", re.compile(r"\bEdg(e|A|iOS)?/")),
    ("Opera", re.compile(r"\bOPR/")),
    ("Firefox", re.compile(r"\b(Firefox|FxiOS)/")),
    ("Chrome", re.compile(r"\b(HeadlessChrome|Chrome|Chromium|CriOS)/")),
    ("Safari", re.compile(r"\bSafari/")),
)
_SYSTEMS = (
    ("Android", re.compile(r"\bAndroid\b")),
    ("iOS", re.compile(r"\b(iPhone|iPad|iPod)\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("macOS", re.compile(r"\bMac OS X\b")),
    ("Linux", re.compile(r"\bLinux\b")),
)


def browser_family(user_agent: str) -> str:
    """ "Firefox on Linux", "Chrome on Android", "Other on Other": coarse on purpose, so a
    browser update does not change it."""
    browser = next((name for name, rx in _BROWSERS if rx.search(user_agent)), "Other")
    return f"{browser} on {_system(user_agent)}"


def _system(user_agent: str) -> str:
    return next((name for name, rx in _SYSTEMS if rx.search(user_agent)), "Other")


def same_network(first: str | None, second: str | None) -> bool:
    """Both addresses in one network of the configured prefix length."""
    if first == second:
        return True
    if first is None or second is None:
        return False
    try:
        return ipaddress.ip_address(second) in _network(ipaddress.ip_address(first))
    except ValueError:
        return False


def network(address: str | None) -> str:
    """The address's network at the configured prefix length, for the login context."""
    return str(_network(ipaddress.ip_address(address))) if address else ""


def _network(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    prefix = (
        settings.LOGIN_SESSION_IPV4_PREFIX
        if ip.version == 4
        else settings.LOGIN_SESSION_IPV6_PREFIX
    )
    return ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
