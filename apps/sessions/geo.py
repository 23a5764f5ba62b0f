"""Where a login comes from, when a GeoIP database is configured (settings.GEOIP_DATABASE, a
MaxMind GeoIP2/GeoLite2 City or Country .mmdb file, read with the maxminddb reader), and which
network operator it comes through (settings.GEOIP_ASN_DATABASE, a GeoLite2/GeoIP2 ASN .mmdb,
read the same way). Each file is opened once per process and memory-mapped, so a lookup costs
no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import maxminddb
from django.conf import settings


@cache
def _reader() -> maxminddb.Reader | None:
    path = settings.GEOIP_DATABASE
    return maxminddb.open_database(str(path)) if path else None


@cache
def _asn_reader() -> maxminddb.Reader | None:
    path = settings.GEOIP_ASN_DATABASE
    return maxminddb.open_database(str(path)) if path else None


@dataclass(frozen=True)
class Geo:
    """What the GeoIP databases know of an address: None (or 0 for `asn`) where they do not."""

    country: str | None = None
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    asn: int = 0


NOWHERE = Geo()


def _record(reader: maxminddb.Reader | None, ip: str) -> dict[str, Any]:
    if reader is None:
        return {}
    try:
        record: Any = reader.get(ip)
    except ValueError:  # not an IP address
        return {}
    return record if isinstance(record, dict) else {}


def lookup(ip: str | None) -> Geo:
    """Country (ISO code), city (English name), coordinates and autonomous system number of
    `ip`, as far as the configured databases know them (threat scoring: new country,
    impossible travel, new ASN)."""
    if not ip:
        return NOWHERE
    city = _record(_reader(), ip)
    asn = _record(_asn_reader(), ip).get("autonomous_system_number")
    country = (city.get("country") or {}).get("iso_code")
    name = ((city.get("city") or {}).get("names") or {}).get("en")
    where = city.get("location") or {}
    lat, lon = where.get("latitude"), where.get("longitude")
    coordinates = isinstance(lat, int | float) and isinstance(lon, int | float)
    return Geo(
        country=country if isinstance(country, str) else None,
        city=name if isinstance(name, str) else None,
        lat=float(lat) if coordinates and lat is not None else None,
        lon=float(lon) if coordinates and lon is not None else None,
        asn=asn if isinstance(asn, int) else 0,
    )


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
    _asn_reader.cache_clear()
