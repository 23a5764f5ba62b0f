"""Typed reads of the process environment.

Every malformed value stops startup with an ImproperlyConfigured error that names the variable
and the form it expects, so an operator never has to read a traceback to find a typo.

Every variable NAME read here may instead be given as NAME_FILE, the path of a file that holds
the value (its trailing newlines dropped): Compose and Kubernetes secrets, systemd's
LoadCredential= (`Environment=IDP_SECRET_KEY_FILE=%d/idp_secret_key`) and a bare host's
root-only files all hand secrets over that way, so the value never sits in the environment.
Setting both is refused; an error about a value read from a file names the file, never what
it holds (it is usually a secret).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

FILE_SUFFIX = "_FILE"
# Larger than any setting's value: a path to something else (a log, /dev/zero) stops here.
MAX_FILE_BYTES = 1 << 20


class FileSettingError(ImproperlyConfigured):
    """NAME_FILE cannot give a value (unreadable, empty, or NAME set as well): never a
    malformed value, so a caller that rewords those errors lets this one through."""


def _given(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _read_value_file(file_name: str, location: str) -> str:
    """The content of the file NAME_FILE names, trailing newlines dropped. Every failure names
    the variable and the path, never the content."""
    try:
        with open(location, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise FileSettingError(
            f"{file_name}={location!r}: the file cannot be read ({reason})."
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise FileSettingError(
            f"{file_name}={location!r}: the file is larger than {MAX_FILE_BYTES} bytes; "
            "it should hold one value."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileSettingError(f"{file_name}={location!r}: the file is not UTF-8 text.") from None
    value = text.rstrip("\r\n")
    if value.strip() == "":
        raise FileSettingError(f"{file_name}={location!r}: the file is empty.")
    return value


def _raw(name: str) -> str | None:
    """NAME's value, from the environment or from the file NAME_FILE names; None when unset."""
    file_name = name + FILE_SUFFIX
    location = _given(file_name)
    if location is None:
        return _given(name)
    if _given(name) is not None:
        raise FileSettingError(f"{name} and {file_name} are both set: set one of them.")
    # Surrounding blanks dropped as from a variable's value: either way gives the same setting.
    return _read_value_file(file_name, location).strip()


def _bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    location = _given(name + FILE_SUFFIX)
    if location is not None:  # the value came from a file: name the file, not the secret
        shown = f"{name} (read from {name}{FILE_SUFFIX}={location!r})"
        return ImproperlyConfigured(f"{shown} is not valid: expected {expected}.")
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


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback IP address (127.0.0.0/8, ::1); a name is not."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def emails(name: str) -> list[str]:
    """A comma-separated list of e-mail addresses (none when unset)."""
    value = _raw(name)
    if value is None:
        return []
    items = [item.strip() for item in value.split(",") if item.strip()]
    if any(not re.fullmatch(r"[^@\s,<>\"]+@[^@\s,<>\"]+\.[^@\s,<>\"]+", item) for item in items):
        raise _bad(name, value, "a comma-separated list of e-mail addresses")
    return items


def hosts(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    items = [h.strip() for h in value.split(",") if h.strip()]
    if not items or any(" " in h or "/" in h for h in items):
        raise _bad(name, value, "a comma-separated list of host names such as idp.example.com")
    return items


def words(name: str) -> list[str]:
    """A comma-separated list of words or phrases (none when unset), each 1 to 100 characters."""
    value = _raw(name)
    if value is None:
        return []
    items = [item.strip() for item in value.split(",") if item.strip()]
    if any(len(item) > 100 or not item.isprintable() for item in items):
        raise _bad(name, value, "a comma-separated list of words, each at most 100 characters")
    return items


def existing_file(name: str, *, resolve: bool = True) -> Path | None:
    """An optional path that must name a readable file when given; `resolve=False` keeps it
    as given (absolute, symlinks not followed), for a file whose link may be turned."""
    value = _raw(name)
    if value is None:
        return None
    given = Path(value).expanduser()
    file = given.resolve() if resolve else given.absolute()
    if not file.is_file():
        raise _bad(name, value, "the path of an existing file")
    return file


def path(name: str, default: Path) -> Path:
    value = _raw(name)
    return Path(value).expanduser().resolve() if value else default.resolve()


_PERIOD_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_BACKOFFS = ("none", "linear", "exponential")


def _seconds(text: str) -> float:
    """`10`, `10s`, `1m`, `2h`, `1d` → seconds (a bare number is seconds)."""
    unit = _PERIOD_UNITS.get(text[-1:].lower())
    number = float(text[:-1] if unit else text)
    if not 0 < number <= 10**7:
        raise ValueError(text)
    return number * (unit or 1)


def rate(name: str, default: str) -> dict[str, object] | None:
    """A rate-limit rule (apps/ratelimit): `LIMIT/PERIOD` (period 10s, 1m, 1h, 1d or seconds)
    then optional words `burst=N` (requests accepted at once; default LIMIT),
    `backoff=none|linear|exponential`, `base=SECONDS` (first penalty; default PERIOD/LIMIT),
    `multiplier=X` (exponential growth, default 2) and `cap=SECONDS` (longest penalty, default
    3600). `off` disables the rule (None)."""
    value = _raw(name) or default
    if value.lower() == "off":
        return None
    expected = (
        "off, or LIMIT/PERIOD such as 30/1m, optionally followed by burst=N, "
        "backoff=none|linear|exponential, base=SECONDS, multiplier=X, cap=SECONDS"
    )
    words = value.split()
    try:
        limit_text, _, period_text = words[0].partition("/")
        limit, period = int(limit_text), _seconds(period_text)
        if not 1 <= limit <= 10**7:
            raise ValueError(limit_text)
        spec: dict[str, object] = {
            "limit": limit, "period": period, "burst": limit, "backoff": "none",
            "base": period / limit, "multiplier": 2.0, "cap": 3600.0,
        }  # fmt: skip
        for word in words[1:]:
            key, equals, raw = word.partition("=")
            if not equals or key not in ("burst", "backoff", "base", "multiplier", "cap"):
                raise ValueError(word)
            if key == "burst":
                spec[key] = int(raw)
                if not 1 <= int(raw) <= 10**7:
                    raise ValueError(word)
            elif key == "backoff":
                if raw not in _BACKOFFS:
                    raise ValueError(word)
                spec[key] = raw
            elif key == "multiplier":
                spec[key] = float(raw)
                if not 1 <= float(raw) <= 100:
                    raise ValueError(word)
            else:
                spec[key] = _seconds(raw)
    except (ValueError, IndexError):
        raise _bad(name, value, expected) from None
    return spec


# RFC 9110 §5.1: a field name is a token; §5.5: a value is visible ASCII, spaces and tabs
# (no CR or LF: a value with one would split the response).
_FIELD_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_FIELD_VALUE = re.compile(r"^[\x20-\x7e\t]*$")


def headers(name: str, *, reserved: frozenset[str]) -> dict[str, str]:
    """A JSON object of response header names to values; names in `reserved` (lowercase:
    headers the server sets itself) are refused, so an extra header never weakens one."""
    value = _raw(name)
    if value is None:
        return {}
    expected = 'a JSON object of header names to values, e.g. {"X-Robots-Tag": "noindex"}'
    try:
        parsed = json.loads(value)
    except ValueError:
        raise _bad(name, value, expected) from None
    if not isinstance(parsed, dict):
        raise _bad(name, value, expected)
    found: dict[str, str] = {}
    for field, text in parsed.items():
        if not _FIELD_NAME.match(field) or not isinstance(text, str):
            raise _bad(name, value, f"{expected}; {field!r} is not a header name with a string")
        if not _FIELD_VALUE.match(text):
            raise _bad(name, value, f"{expected}; the value of {field} has a control character")
        if field.lower() in reserved:
            raise _bad(name, value, f"{expected}; {field} is set by Tessera itself")
        found[field] = text
    return found
