"""Where a login comes from, when a GeoIP database is configured (settings.GEOIP_DATABASE, a
MaxMind GeoIP2/GeoLite2 City or Country .mmdb file, read with the maxminddb reader). The file
is opened once per process and memory-mapped, so a lookup costs no I/O."""

from __future__ import annotations

from functools import cache
from typing import Any

import maxminddb
from django.conf import settings


@cache
def _reader() -> maxminddb.Reader | None:
    path = settings.GEOIP_DATABASE
    return maxminddb.open_database(str(path)) if path else None


def location(ip: str | None) -> dict[str, str] | None:
    """{"country": ISO code, "city": English name} as far as the database knows them, or
    None (no database, no address, an address it has no record of)."""
    reader = _reader()
    if reader is None or not ip:
        return None
    try:
        record: Any = reader.get(ip)
    except ValueError:  # not an IP address
        return None
    if not isinstance(record, dict):
        return None
    found = {
        "country": (record.get("country") or {}).get("iso_code"),
        "city": ((record.get("city") or {}).get("names") or {}).get("en"),
    }
    return {key: value for key, value in found.items() if isinstance(value, str)} or None


def place(found: dict[str, str] | None) -> str:
    """A location (as `location` returns it) as a person reads it: "Lyon, FR", "FR", or ""."""
    found = found or {}
    return ", ".join(v for v in (found.get("city", ""), found.get("country", "")) if v)


def geo_cache_clear() -> None:
    _reader.cache_clear()
