"""A login's location from a MaxMind database, when one is configured (a real .mmdb file,
written with mmdb-writer in MaxMind's format and read with the maxminddb reader)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from apps.sessions import geo
from apps.sessions.models import LoginSession
from tests.rp import PASSWORD
from tests.sessions.test_session_validation import browser

pytestmark = pytest.mark.django_db


@pytest.fixture
def city_database(tmp_path: Path, settings) -> Iterator[Path]:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    writer.insert_network(
        IPSet(["203.0.113.0/24"]),
        {"country": {"iso_code": "NZ"}, "city": {"names": {"en": "Wellington"}}},
    )
    path = tmp_path / "city.mmdb"
    writer.to_db_file(str(path))
    settings.GEOIP_DATABASE = path
    geo.geo_cache_clear()
    yield path
    geo.geo_cache_clear()


def test_a_login_records_where_it_came_from(city_database, person) -> None:
    http = browser(ip="203.0.113.20")
    http.get("/login")
    http.post("/login", {"email": person.email, "password": PASSWORD})
    session = LoginSession.objects.get(pk=http.session["tessera_sid"])
    assert session.context["location"] == {"country": "NZ", "city": "Wellington"}


@pytest.mark.parametrize("ip", ["198.51.100.1", None, "", "not-an-ip", "2001:db8::1"])
def test_an_address_without_a_record_has_no_location(city_database, ip) -> None:
    assert geo.location(ip) is None


def test_without_a_database_there_is_no_location(settings) -> None:
    settings.GEOIP_DATABASE = None
    geo.geo_cache_clear()
    assert geo.location("203.0.113.20") is None
