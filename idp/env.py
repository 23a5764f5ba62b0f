"""Typed reads of the process environment.

Every malformed value stops startup with an ImproperlyConfigured error that names the variable
and the form it expects, so an operator never has to read a traceback to find a typo.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: expected {expected}.")


def string(name: str, default: str) -> str:
    return _raw(name) or default


def optional_string(name: str) -> str | None:
    return _raw(name)


def boolean(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise _bad(name, value, "one of true/false, yes/no, on/off, 1/0")


def integer(name: str, default: int, *, minimum: int, maximum: int) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, f"an integer from {minimum} to {maximum}") from None
    if not minimum <= number <= maximum:
        raise _bad(name, value, f"an integer from {minimum} to {maximum}")
    return number


def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, matched without regard to case and returned as spelled there."""
    value = _raw(name)
    if value is None:
        return default
    for option in choices:
        if option.lower() == value.lower():
            return option
    raise _bad(name, value, "one of " + ", ".join(choices))


def url(name: str, default: str | None, *, schemes: tuple[str, ...]) -> str | None:
    value = _raw(name)
    if value is None:
        return default
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise _bad(name, value, "a URL starting with " + " or ".join(f"{s}://" for s in schemes))
    return value


def networks(name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    value = _raw(name)
    if value is None:
        return ()
    result = []
    for item in value.split(","):
        try:
            result.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise _bad(
                name, value, "a comma-separated list of IP addresses or CIDR networks"
            ) from None
    return tuple(result)


def hosts(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    items = [h.strip() for h in value.split(",") if h.strip()]
    if not items or any(" " in h or "/" in h for h in items):
        raise _bad(name, value, "a comma-separated list of host names such as idp.example.com")
    return items


def existing_file(name: str) -> Path | None:
    """An optional path that must name a readable file when given."""
    value = _raw(name)
    if value is None:
        return None
    file = Path(value).expanduser().resolve()
    if not file.is_file():
        raise _bad(name, value, "the path of an existing file")
    return file


def path(name: str, default: Path) -> Path:
    value = _raw(name)
    return Path(value).expanduser().resolve() if value else default.resolve()
