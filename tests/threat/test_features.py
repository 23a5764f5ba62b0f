"""Signals of one attempt (apps/threat/features.py), the score (scoring.py), reputation lists
(reputation.py) and the GeoIP lookup with coordinates and ASN (apps/sessions/geo.py)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from apps.core.risk import LoginContext, password_digest
from apps.sessions import geo
from apps.threat import features, reputation
from apps.threat.history import View
from apps.threat.scoring import WEIGHTS, score_of
from apps.threat.signals import SIGNALS

AT = dt.datetime(2026, 11, 2, 8, 14, 3, tzinfo=dt.UTC)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
TOKYO, LYON = (35.68, 139.69), (45.76, 4.84)


def context(**changes: object) -> LoginContext:
    base = LoginContext(
        at=AT,
        email="alice@example.com",
        ip="203.0.113.7",
        user_agent=FIREFOX,
        success=True,
        user_id=uuid.uuid4(),
        device_id="dev-1",
        country="FR",
        asn=3215,
        lat=LYON[0],
        lon=LYON[1],
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def known(**changes: object) -> View:
    """A person seen before with everything of `context()`."""
    base = View(
        successes=20,
        known_country=True,
        known_asn=True,
        known_network=True,
        known_device=True,
        known_browser=True,
        known_os=True,
        hours=tuple(10 if h in (7, 8, 9) else 0 for h in range(24)),
        last_at_ms=int((AT - dt.timedelta(days=1)).timestamp() * 1000),
        last_lat=LYON[0],
        last_lon=LYON[1],
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_every_signal_but_the_score_is_computed_with_its_kind() -> None:
    signals = features.compute(context(), known())
    assert set(signals) == set(SIGNALS) - {"score"}
    for name, value in signals.items():
        assert type(value) is SIGNALS[name].kind, name


def test_a_usual_sign_in_flags_nothing_and_scores_zero() -> None:
    signals = features.compute(context(), known())
    assert score_of(signals) == (0, ())
    assert signals["known_person"] is True
    assert signals["hour_share"] == pytest.approx(10 / 30, abs=1e-3)


def test_a_first_sign_in_is_not_new_everything() -> None:
    signals = features.compute(context(), View())
    assert not any(signals[n] for n in ("new_country", "new_device", "new_asn", "new_network"))
    assert signals["known_person"] is False


@pytest.mark.parametrize(
    ("view", "flag"),
    [
        (known(known_country=False), "new_country"),
        (known(known_device=False), "new_device"),
        (known(known_browser=False), "new_browser"),
        (known(known_os=False), "new_os"),
        (known(known_asn=False), "new_asn"),
        (known(known_network=False), "new_network"),
    ],
)
def test_each_new_thing_is_flagged(view: View, flag: str) -> None:
    signals = features.compute(context(), view)
    assert [
        n
        for n in ("new_country", "new_device", "new_browser", "new_os", "new_asn", "new_network")
        if signals[n]
    ] == [flag]
    score, reasons = score_of(signals)
    assert [r.signal for r in reasons] == [flag]
    assert score == WEIGHTS[flag].points  # type: ignore[union-attr]


def test_impossible_travel_tokyo_to_lyon_in_two_hours() -> None:
    earlier = int((AT - dt.timedelta(hours=2)).timestamp() * 1000)
    signals = features.compute(
        context(), known(last_at_ms=earlier, last_lat=TOKYO[0], last_lon=TOKYO[1])
    )
    assert 9800 < signals["distance_km"] < 10000  # type: ignore[operator]
    assert signals["impossible_travel"] is True
    assert signals["travel_kmh"] == pytest.approx((signals["distance_km"] - 300) / 2, abs=0.2)
    _, reasons = score_of(signals)
    assert reasons[0].signal == "impossible_travel"
    assert "km/h" in reasons[0].detail


def test_travel_within_the_tolerance_or_slow_enough_is_possible() -> None:
    paris = (48.86, 2.35)  # ~390 km from Lyon
    five_minutes = int((AT - dt.timedelta(minutes=5)).timestamp() * 1000)
    near = features.compute(
        context(), known(last_at_ms=five_minutes, last_lat=paris[0], last_lon=paris[1])
    )
    assert near["impossible_travel"] is True  # 92 km beyond the tolerance in 5 minutes
    a_day = int((AT - dt.timedelta(hours=11)).timestamp() * 1000)
    slow = features.compute(
        context(), known(last_at_ms=a_day, last_lat=TOKYO[0], last_lon=TOKYO[1])
    )
    assert slow["impossible_travel"] is False  # a long-haul flight
    vpn = features.compute(
        context(lat=45.19, lon=5.72),  # Grenoble, 95 km: inside the tolerance
        known(last_at_ms=five_minutes),
    )
    assert vpn["impossible_travel"] is False
    assert vpn["travel_kmh"] == 0.0


def test_unusual_hour_from_the_persons_own_histogram() -> None:
    at_night = features.compute(context(at=AT.replace(hour=3)), known())
    assert at_night["unusual_hour"] is True
    assert at_night["hour_share"] == 0.0
    next_to_usual = features.compute(context(at=AT.replace(hour=10)), known())
    assert next_to_usual["unusual_hour"] is False  # 9 is usual: an hour off is not unusual
    few = features.compute(context(at=AT.replace(hour=3)), known(hours=(1,) + (0,) * 23))
    assert few["unusual_hour"] is False  # too little history to judge


@pytest.mark.parametrize(
    "user_agent",
    [
        "",
        "python-requests/2.31",
        "curl/8.5.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36",
    ],
)
def test_scripted_clients_are_headless(user_agent: str) -> None:
    assert features.compute(context(user_agent=user_agent), known())["headless_ua"] is True


def test_no_device_cookie() -> None:
    assert features.compute(context(device_id=""), known())["no_device_cookie"] is True


def test_counts_add_points_above_their_threshold_up_to_a_ceiling() -> None:
    signals = features.compute(context(), known(failures_user_1h=4, spray_accounts_1h=50))
    score, reasons = score_of(signals)
    points = {r.signal: r.points for r in reasons}
    assert points == {"failures_user_1h": 10, "spray_accounts_1h": 30}
    assert score == 40


def test_the_score_is_capped_at_100() -> None:
    signals = features.compute(
        context(user_agent="curl/8", device_id=""),
        known(
            known_country=False,
            known_asn=False,
            known_network=False,
            accounts_ip_1h=40,
            spray_accounts_1h=40,
            ips_user_1h=40,
        ),
    )
    assert score_of(signals)[0] == 100


def test_password_digest_is_keyed_and_never_the_password() -> None:
    digest = password_digest("correct horse")
    assert digest == password_digest("correct horse") != password_digest("correct horse!")
    assert "horse" not in digest
    assert len(digest) == 32
    assert password_digest("") == ""


# --- reputation lists ----------------------------------------------------------------------


def test_reputation_lists_name_the_first_list_holding_an_address(tmp_path: Path, settings) -> None:
    (tmp_path / "tor.txt").write_text("# Tor exits\n198.51.100.7\n\n2001:db8:dead::/48  # v6\n")
    (tmp_path / "hosting.txt").write_text("198.51.100.0/24\n192.0.2.0/25\n")
    settings.THREAT_IP_LISTS = f"tor={tmp_path / 'tor.txt'}, hosting={tmp_path / 'hosting.txt'}"
    reputation.configured.cache_clear()
    try:
        assert reputation.listed("198.51.100.7") == "tor"
        assert reputation.listed("198.51.100.8") == "hosting"
        assert reputation.listed("2001:db8:dead:1::9") == "tor"
        assert reputation.listed("192.0.2.127") == "hosting"
        assert reputation.listed("192.0.2.128") == ""
        assert reputation.listed("not an ip") == reputation.listed(None) == ""
        signals = features.compute(context(ip="198.51.100.7"), known())
        assert (signals["ip_listed"], signals["ip_list"]) == (True, "tor")
    finally:
        reputation.configured.cache_clear()


def test_a_bad_line_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("10.0.0.0/8\n# fine\n10.0.0.300/24\n")
    with pytest.raises(reputation.ReputationListError, match=rf"{bad}:3: '10.0.0.300/24'"):
        reputation.load_list("bad", bad)
    with pytest.raises(reputation.ReputationListError, match="cannot read"):
        reputation.load_list("gone", tmp_path / "missing.txt")
    with pytest.raises(reputation.ReputationListError, match="not name=path"):
        reputation.parse_setting("tor")


def test_reputation_lookup_is_fast(tmp_path: Path) -> None:
    rng = random.Random(7)  # noqa: S311 - reproducible networks, not a secret
    lines = [
        f"{ipaddress.IPv4Address(rng.getrandbits(32))}/{rng.randrange(24, 33)}"
        for _ in range(200_000)
    ]
    path = tmp_path / "big.txt"
    path.write_text("\n".join(lines))
    started = time.perf_counter()
    big = reputation.load_list("big", path)
    load = time.perf_counter() - started
    probes = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(20_000)]
    started = time.perf_counter()
    for ip in probes:
        reputation.listed(ip, (big,))
    per_lookup = (time.perf_counter() - started) / len(probes)
    assert reputation.listed(lines[0].split("/")[0], (big,)) == "big"
    # Generous bounds for a loaded 2-core machine (measured: 1.5 s and 6.5 µs).
    assert load < 10
    assert per_lookup < 50e-6


# --- GeoIP: coordinates and ASN ---------------------------------------------------------------


def test_lookup_gives_country_city_coordinates_and_asn(tmp_path: Path, settings) -> None:
    city = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    city.insert_network(
        IPSet(["203.0.113.0/24"]),
        {
            "country": {"iso_code": "JP"},
            "city": {"names": {"en": "Tokyo"}},
            "location": {"latitude": 35.68, "longitude": 139.69},
        },
    )
    city.to_db_file(str(tmp_path / "city.mmdb"))
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    asn.insert_network(
        IPSet(["203.0.113.0/24"]),
        {"autonomous_system_number": 2516, "autonomous_system_organization": "KDDI"},
    )
    asn.to_db_file(str(tmp_path / "asn.mmdb"))
    settings.GEOIP_DATABASE = tmp_path / "city.mmdb"
    settings.GEOIP_ASN_DATABASE = tmp_path / "asn.mmdb"
    geo.geo_cache_clear()
    try:
        assert geo.lookup("203.0.113.9") == geo.Geo("JP", "Tokyo", 35.68, 139.69, 2516)
        assert geo.lookup("198.51.100.1") == geo.NOWHERE
        assert geo.lookup("nonsense") == geo.lookup(None) == geo.NOWHERE
    finally:
        geo.geo_cache_clear()


def test_without_databases_lookup_knows_nothing(settings) -> None:
    settings.GEOIP_DATABASE = settings.GEOIP_ASN_DATABASE = None
    geo.geo_cache_clear()
    assert geo.lookup("203.0.113.9") == geo.NOWHERE
