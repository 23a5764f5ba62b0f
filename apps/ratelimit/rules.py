"""Rules and keys: what is limited, by which key, how fast.

A rule is read from settings.RATELIMIT_RULES (idp/env.py `rate`: "LIMIT/PERIOD burst=…
backoff=…"). A key is the rule's name and one normalized, length-bounded value: a client IP
(IPv6 by its /64, RATELIMIT_IPV6_PREFIX), an identifier (email, NFKC-normalized and
lower-cased, existing or not), a client id, or nothing (endpoint and global rules). A value
that is longer than MAX_VALUE is replaced by its SHA-256, so no key grows with its input.
"""

from __future__ import annotations

import hashlib
import ipaddress
import unicodedata
from dataclasses import dataclass
from functools import cache

from django.conf import settings

from apps.core.redis import key_prefix

PREFIX = key_prefix("rl")  # Lua scripts touch several of these keys at once
MAX_VALUE = 128  # characters of a key's value before it is hashed
# The sorted set of keys refused lately, scored by when each lets a request through again
# (evaluate.lua keeps it; services.blocks_current reads it). No rule is named "refusing".
REFUSING_KEY = f"{PREFIX}refusing"

BACKOFF_CODES = {"none": 0, "linear": 1, "exponential": 2}
# The endpoints whose limits matter for credentials: with Redis unreachable they fall back to
# the per-process limiter instead of passing (issue 12).
CREDENTIAL_GROUPS = frozenset(
    {
        "login",
        "token",
        "par",
        "introspect",
        "revoke",
        "forgot",
        "verify",
        "link",
        "register",
        "passkey",
        "reauth",
        "federation",
    }
)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # e.g. "token.ip": "<endpoint group>.<key kind>", or "global"
    limit: int
    period: float  # seconds
    burst: int
    backoff: str
    base: float  # seconds: the first penalty
    multiplier: float
    cap: float  # seconds: the longest penalty

    @property
    def group(self) -> str:
        return self.name.partition(".")[0]

    @property
    def credential(self) -> bool:
        return self.group in CREDENTIAL_GROUPS

    @property
    def policy(self) -> str:
        """The rule's RateLimit-Policy item (draft-ietf-httpapi-ratelimit-headers-10):
        quota q over window w seconds."""
        return f'"{self.name}";q={self.limit};w={max(1, round(self.period))}'

    @property
    def args(self) -> str:
        """The rule as the Lua script reads it, one comma-separated argument (milliseconds):
        interval, burst, backoff code, base, multiplier, cap, period. One string rather than
        seven numbers: encoding the arguments was a measurable part of a call."""
        return _packed(self)


@cache
def _packed(rule: Rule) -> str:
    numbers = [
        rule.period * 1000 / rule.limit,  # emission interval
        rule.burst,
        BACKOFF_CODES[rule.backoff],
        rule.base * 1000,
        rule.multiplier,
        rule.cap * 1000,
        rule.period * 1000,  # a violation is forgotten per period; one event per period
    ]
    return ",".join(repr(float(n)) for n in numbers)


@cache
def rules() -> dict[str, Rule]:
    """The configured rules by name (a rule set to "off" is absent)."""
    return {
        name: Rule(name=name, **spec)  # type: ignore[arg-type]
        for name, spec in settings.RATELIMIT_RULES.items()
        if spec is not None
    }


def rules_reload() -> None:
    """Read settings.RATELIMIT_RULES again (tests that change it)."""
    rules.cache_clear()


@dataclass(frozen=True, slots=True)
class Key:
    rule: Rule
    value: str  # normalized and bounded; "" for endpoint and global rules

    @property
    def redis_key(self) -> str:
        return f"{PREFIX}{self.rule.name}:{self.value}"


def bounded(value: str) -> str:
    """The value itself when short and printable, else a digest: keys have a fixed bound."""
    if len(value) <= MAX_VALUE and value.isprintable() and ":" not in value:
        return value
    return "sha256-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def ip_value(ip: str | None) -> str:
    """A client IP as a key: IPv4 as is, IPv6 by its network (RATELIMIT_IPV6_PREFIX, /64: one
    subscriber gets a whole /64, so keying by address would let one client rotate freely).
    An unparsable or missing address (not possible from the request context, which parses
    REMOTE_ADDR) is keyed "unknown", shared by all such requests."""
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, settings.RATELIMIT_IPV6_PREFIX), strict=False)
        return str(network).replace(":", "_")  # ":" separates key parts
    return str(address)


def identifier_value(identifier: str) -> str:
    """An identifier as typed, normalized the way accounts compare emails (NFKC, trimmed,
    case-folded), so Alice@Example.com and alice@example.com share a counter."""
    return bounded(unicodedata.normalize("NFKC", identifier).strip().casefold())


def client_value(client_id: str) -> str:
    return bounded(client_id.strip())
