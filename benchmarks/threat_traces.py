"""A labelled synthetic sign-in trace for threat_replay (issue 16, "Backtesting").

    .venv/bin/python -m benchmarks.threat_traces --output var/threat/trace.jsonl
    .venv/bin/python -m benchmarks.threat_traces --people 3000 --days 45 --seed 1 ...

Writes two files:

- the trace (`--output`): one sign-in attempt a line, in time order, in the replay's input
  format: `{"ts", "user", "ip", "user_agent", "device_id" (absent for scripts), "country",
  "city", "lat", "lon", "asn", "success"}`, plus `"password_digest"` (a hex digest of the
  password tried, the field LoginContext.password_digest carries: what spraying is counted
  by; `--no-password-digest` leaves it out) and, on a line whose address names no account,
  `"user_exists": false` (both optional fields of the replay's input);
- the labels (`--labels`, default: the trace's name with `.labels.jsonl`): one line per trace
  line, same order, `{"line": N, "kind": "normal" | <attack kind>, "episode": "kind-K" | null}`
  with N counted from 1; a normal line also says what it is, `"behaviour"`: home, work,
  mobile, trip, roaming, vpn, new_phone (its first sign-ins), cleared_cookies or typo (a
  mistyped password): where false positives come from.

Same arguments, same bytes: everything is drawn from one `random.Random(seed)` and sorted with
a stable tie-break.

People: a home city (weighted towards Europe and North America), a home ISP (its ASN and a
stable address, renewed now and then), a mobile carrier of their country (a new address from
its pool at almost every use), often a workplace network, one to three devices (a laptop or
desktop browser, a phone browser, sometimes a tablet), each with its device cookie, and usual
hours in their own time zone. Normal behaviour: sign-ins at those hours, mistyped passwords
(and now and then a forgotten one), trips (by train or car under 600 km, by air beyond, at
plausible speeds, hotel Wi-Fi and roaming through the home carrier at the destination), new
phones, cleared cookies and private windows, commercial VPN exits at a low rate.

Attacks (labelled by episode):

- `credential_stuffing`: a leaked list of address/password pairs tried fast from a few
  hosting addresses, scripted user agents, no device cookie; real and unknown addresses;
  about 1-2 % succeed (reused passwords).
- `password_spraying`: a few common passwords, each tried once against many accounts, slowly,
  each address used for a handful of attempts (rotating residential proxies).
- `brute_force`: one account, one or two addresses, hundreds of passwords fast.
- `distributed_brute_force`: one account, a new proxy address for every one to three attempts.
- `account_takeover`: a phished password: one to three failures, then success from another
  country's network, a new device and browser.
- `impossible_travel`: a stolen password used within hours of the person's own sign-in from a
  city thousands of kilometres away, first time right.
- `low_and_slow`: one to four guesses a day on one account over two to five weeks, from a new
  address each time, a browser-like user agent, no device cookie.

Addresses: every network gets a synthetic block: consumer and mobile networks in 10.0.0.0/8
(one /16 per ASN), hosting and VPN networks in 198.18.0.0/15 (RFC 2544's benchmarking range)
and the RFC 5737 documentation ranges; nothing here is anyone's real address. Coordinates are
the cities' public ones; ASNs are those of the real operators of each country.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ATTACK_KINDS: tuple[str, ...] = (
    "credential_stuffing",
    "password_spraying",
    "brute_force",
    "distributed_brute_force",
    "account_takeover",
    "impossible_travel",
    "low_and_slow",
)
NORMAL = "normal"

# name, country, lat, lon, UTC offset (hours, standard time), weight as a home
CITIES: tuple[tuple[str, str, float, float, float, float], ...] = (
    ("Paris", "FR", 48.8566, 2.3522, 1, 8),
    ("Lyon", "FR", 45.7640, 4.8357, 1, 4),
    ("Marseille", "FR", 43.2965, 5.3698, 1, 2),
    ("London", "GB", 51.5074, -0.1278, 0, 8),
    ("Manchester", "GB", 53.4808, -2.2426, 0, 3),
    ("Dublin", "IE", 53.3498, -6.2603, 0, 2),
    ("Berlin", "DE", 52.5200, 13.4050, 1, 6),
    ("Munich", "DE", 48.1351, 11.5820, 1, 3),
    ("Frankfurt", "DE", 50.1109, 8.6821, 1, 2),
    ("Amsterdam", "NL", 52.3676, 4.9041, 1, 4),
    ("Brussels", "BE", 50.8503, 4.3517, 1, 2),
    ("Madrid", "ES", 40.4168, -3.7038, 1, 3),
    ("Barcelona", "ES", 41.3874, 2.1686, 1, 2),
    ("Rome", "IT", 41.9028, 12.4964, 1, 2),
    ("Milan", "IT", 45.4642, 9.1900, 1, 2),
    ("Zurich", "CH", 47.3769, 8.5417, 1, 2),
    ("Stockholm", "SE", 59.3293, 18.0686, 1, 2),
    ("Warsaw", "PL", 52.2297, 21.0122, 1, 2),
    ("Kyiv", "UA", 50.4501, 30.5234, 2, 1),
    ("New York", "US", 40.7128, -74.0060, -5, 8),
    ("Boston", "US", 42.3601, -71.0589, -5, 3),
    ("Chicago", "US", 41.8781, -87.6298, -6, 4),
    ("Dallas", "US", 32.7767, -96.7970, -6, 2),
    ("Denver", "US", 39.7392, -104.9903, -7, 2),
    ("San Francisco", "US", 37.7749, -122.4194, -8, 5),
    ("Seattle", "US", 47.6062, -122.3321, -8, 3),
    ("Los Angeles", "US", 34.0522, -118.2437, -8, 3),
    ("Toronto", "CA", 43.6532, -79.3832, -5, 3),
    ("Montreal", "CA", 45.5017, -73.5673, -5, 2),
    ("Mexico City", "MX", 19.4326, -99.1332, -6, 1),
    ("Sao Paulo", "BR", -23.5505, -46.6333, -3, 2),
    ("Buenos Aires", "AR", -34.6037, -58.3816, -3, 1),
    ("Tokyo", "JP", 35.6762, 139.6503, 9, 3),
    ("Seoul", "KR", 37.5665, 126.9780, 9, 1),
    ("Singapore", "SG", 1.3521, 103.8198, 8, 2),
    ("Hong Kong", "HK", 22.3193, 114.1694, 8, 1),
    ("Sydney", "AU", -33.8688, 151.2093, 11, 2),
    ("Mumbai", "IN", 19.0760, 72.8777, 5.5, 2),
    ("Bangalore", "IN", 12.9716, 77.5946, 5.5, 2),
    ("Dubai", "AE", 25.2048, 55.2708, 4, 1),
    ("Istanbul", "TR", 41.0082, 28.9784, 3, 1),
    ("Johannesburg", "ZA", -26.2041, 28.0473, 2, 1),
    ("Lagos", "NG", 6.5244, 3.3792, 1, 0),
    ("Moscow", "RU", 55.7558, 37.6173, 3, 0),
    ("Jakarta", "ID", -6.2088, 106.8456, 7, 0),
    ("Ho Chi Minh City", "VN", 10.8231, 106.6297, 7, 0),
)

# Consumer fixed-line and mobile operators per country (their real ASNs).
FIXED_ASNS: dict[str, tuple[int, ...]] = {
    "FR": (3215, 12322, 5410, 15557),
    "GB": (2856, 5089, 5607),
    "IE": (5466, 6830),
    "DE": (3320, 6830, 8881),
    "NL": (1136, 33915),
    "BE": (5432, 6848),
    "ES": (3352, 12479),
    "IT": (3269, 30722),
    "CH": (3303, 6730),
    "SE": (3301, 2119),
    "PL": (5617, 12741),
    "UA": (15895, 6849),
    "US": (7922, 701, 7018, 20115, 22773),
    "CA": (812, 577),
    "MX": (8151,),
    "BR": (28573, 18881),
    "AR": (7303,),
    "JP": (2516, 4713, 17676),
    "KR": (4766, 3786),
    "SG": (7473, 4657),
    "HK": (4760, 9269),
    "AU": (1221, 4804),
    "IN": (55836, 24560),
    "AE": (5384,),
    "TR": (9121,),
    "ZA": (37457,),
    "NG": (29465,),
    "RU": (12389, 8402),
    "ID": (7713,),
    "VN": (7552,),
}
MOBILE_ASNS: dict[str, tuple[int, ...]] = {
    "FR": (51207, 3215, 5410),
    "GB": (12576, 206067, 25135),
    "IE": (15502,),
    "DE": (3320, 3209, 6805),
    "NL": (1136, 31615),
    "BE": (5432,),
    "ES": (3352, 12430),
    "IT": (3269, 30722),
    "CH": (3303,),
    "SE": (3301,),
    "PL": (5617,),
    "UA": (15895,),
    "US": (21928, 6167, 20057),
    "CA": (812, 577),
    "MX": (28403,),
    "BR": (26599,),
    "AR": (7303,),
    "JP": (9605, 2516, 17676),
    "KR": (9644,),
    "SG": (4773,),
    "HK": (9231,),
    "AU": (1221,),
    "IN": (55836, 45609),
    "AE": (5384,),
    "TR": (16135,),
    "ZA": (37457,),
    "NG": (29465,),
    "RU": (8359,),
    "ID": (23693,),
    "VN": (7552,),
}
# Cloud and hosting providers (where scripts run) and commercial VPN exits.
HOSTING_ASNS: tuple[int, ...] = (16509, 14061, 24940, 16276, 63949, 20473, 396982, 8075)
VPN_ASNS: tuple[int, ...] = (9009, 60068, 212238, 136787)
# Where stolen credentials are used from (new country for the victims).
ATTACKER_CITIES: tuple[str, ...] = (
    "Moscow",
    "Lagos",
    "Jakarta",
    "Ho Chi Minh City",
    "Sao Paulo",
    "Kyiv",
    "Istanbul",
    "Singapore",
    "Frankfurt",
    "Amsterdam",
    "Dallas",
    "Mumbai",
)
VPN_CITIES: tuple[str, ...] = (
    "Amsterdam",
    "Frankfurt",
    "London",
    "New York",
    "Zurich",
    "Stockholm",
    "Singapore",
    "Los Angeles",
)

_FIRST = (
    "alice bob carol dave erin frank grace heidi ivan judy mallory nina oscar peggy quentin "
    "rupert sybil trent ursula victor walter xena yann zoe amir beatriz chen dmitri emeka "
    "fatima gustavo hana ingrid jun kofi lena mateo noor olga pablo priya ravi sofia tariq "
    "uma vera wei ximena yusuf"
)
_LAST = (
    "martin smith muller garcia rossi tanaka kim nguyen silva kowalski johansson dubois "
    "brown wilson lopez novak ivanova patel khan singh okafor mensah cohen schmidt weber "
    "moreau bernard leroy fischer meyer sato suzuki park lee chen wang ali hassan perez "
    "fernandez costa"
)
FIRST, LAST = _FIRST.split(), _LAST.split()
DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "corp.example")

BROWSER_UAS: dict[str, tuple[str, ...]] = {
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{v}.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Chrome/{v}.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/18.{m} Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{f}.0) Gecko/20100101 Firefox/{f}.0",
        "Mozilla/5.0 (X11; Linux x86_64; rv:{f}.0) Gecko/20100101 Firefox/{f}.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0",
    ),
    "phone": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_{m} like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.{m} Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{v}.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/26.0 Chrome/{v}.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; M2101K6G) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{v}.0.0.0 Mobile Safari/537.36",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 18_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/18.{m} Mobile/15E148 Safari/604.1",
    ),
}
SCRIPT_UAS: tuple[str, ...] = (
    "python-requests/2.32.3",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.6099.109 Safari/537.36",
    "okhttp/4.12.0",
    "",
)

_CITY = {c[0]: c for c in CITIES}


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


class Networks:
    """Synthetic address blocks: each ASN its own block, handed out in a fixed order."""

    def __init__(self) -> None:
        self._consumer: dict[int, int] = {}
        self._hosting: dict[int, int] = {}

    def consumer(self, asn: int, rng: random.Random) -> str:
        block = self._consumer.setdefault(asn, len(self._consumer) + 1)
        return f"10.{block}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def hosting(self, asn: int, rng: random.Random) -> str:
        # 198.18.0.0/15: 512 /24s; each hosting or VPN ASN gets 32 of them.
        block = self._hosting.setdefault(asn, len(self._hosting))
        third = (block * 32 + rng.randrange(32)) % 512
        return f"198.{18 + third // 256}.{third % 256}.{rng.randrange(1, 255)}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Device:
    id: str
    kind: str  # desktop | phone | tablet
    ua_template: str
    version_base: int

    def user_agent(self, day: int) -> str:
        # Browsers update every few weeks: the version moves, the family and OS do not.
        bump = day // 28
        return self.ua_template.format(
            v=self.version_base + bump, m=min(6, 1 + bump), f=self.version_base + 2 + bump
        )


@dataclass
class Person:
    email: str
    city: tuple[str, str, float, float, float, float]
    home_asn: int
    home_ip: str
    mobile_asn: int
    work_asn: int | None
    work_ip: str | None
    devices: list[Device]
    password: str
    hours: list[float]  # weights of the 24 local hours
    rate: float  # sign-ins per day
    vpn_share: float
    events: list[tuple[float, dict[str, object]]] = field(default_factory=list)


@dataclass
class Trace:
    lines: list[dict[str, object]]
    labels: list[dict[str, object]]
    episodes: dict[str, str]  # episode id -> kind

    def counts(self) -> Counter[str]:
        return Counter(str(label["kind"]) for label in self.labels)


class Generator:
    def __init__(self, *, people: int, days: int, seed: int, start: dt.datetime) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible trace, not a secret
        self.days = days
        self.start = start
        self.net = Networks()
        # (seconds from start, sequence, line, kind, episode, what a normal line is)
        self.records: list[tuple[float, int, dict[str, object], str, str | None, str]] = []
        self.people = [self._person(i) for i in range(people)]
        self.episodes: dict[str, str] = {}
        self._own_successes: list[tuple[float, int, dict[str, object], str, str | None, str]] = []
        self._passwords: dict[str, str] = {}

    # -- people ---------------------------------------------------------------------------

    def _device(self, kind: str) -> Device:
        rng = self.rng
        return Device(
            id=f"{rng.getrandbits(128):032x}",
            kind=kind,
            ua_template=rng.choice(BROWSER_UAS[kind]),
            version_base=rng.randint(128, 131),
        )

    def _person(self, i: int) -> Person:
        rng = self.rng
        city = rng.choices(CITIES, weights=[c[5] for c in CITIES])[0]
        country = city[1]
        home_asn = rng.choice(FIXED_ASNS[country])
        works = rng.random() < 0.55
        work_asn = rng.choice(FIXED_ASNS[country]) if works else None
        devices = [self._device(rng.choice(("desktop", "desktop", "phone")))]
        if rng.random() < 0.7:
            devices.append(self._device("phone"))
        if rng.random() < 0.15:
            devices.append(self._device("tablet"))
        # Usual hours: a morning peak, a working-day spread, an evening peak, in local time.
        morning, evening = rng.gauss(8.5, 1.0), rng.gauss(20.5, 1.2)
        hours = [
            0.02
            + math.exp(-((h - morning) ** 2) / 2.0)
            + (0.5 if 9 <= h <= 17 and works else 0.1)
            + 0.8 * math.exp(-((h - evening) ** 2) / 3.0)
            for h in range(24)
        ]
        name = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{i}@{rng.choice(DOMAINS)}"
        return Person(
            email=name,
            city=city,
            home_asn=home_asn,
            home_ip=self.net.consumer(home_asn, rng),
            mobile_asn=rng.choice(MOBILE_ASNS[country]),
            work_asn=work_asn,
            work_ip=self.net.consumer(work_asn, rng) if work_asn else None,
            devices=devices,
            password=f"{rng.getrandbits(64):016x}",
            hours=hours,
            rate=rng.lognormvariate(-0.3, 0.7),
            vpn_share=rng.choice((0.0,) * 9 + (rng.uniform(0.05, 0.3),)),
        )

    # -- records ----------------------------------------------------------------------------

    def _emit(
        self,
        at: float,
        *,
        user: str,
        ip: str,
        ua: str,
        device: str | None,
        place: tuple[str, str, float, float, float, float],
        asn: int,
        success: bool,
        password: str,
        kind: str = NORMAL,
        episode: str | None = None,
        exists: bool = True,
        behaviour: str = "",
    ) -> None:
        rng = self.rng
        # City-level GeoIP is a few kilometres off; the trace says where the database would.
        record: dict[str, object] = {
            "ts": (self.start + dt.timedelta(seconds=at)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user": user,
            "ip": ip,
            "user_agent": ua,
        }
        if device is not None:
            record["device_id"] = device
        if not exists:
            record["user_exists"] = False
        record.update(
            country=place[1],
            city=place[0],
            lat=round(place[2] + rng.uniform(-0.05, 0.05), 4),
            lon=round(place[3] + rng.uniform(-0.05, 0.05), 4),
            asn=asn,
            success=success,
            password_digest=_digest(password),
        )
        self.records.append((at, len(self.records), record, kind, episode, behaviour))

    def _local_time(self, person: Person, day: int, offset: float | None = None) -> float:
        hour = self.rng.choices(range(24), weights=person.hours)[0]
        local = day * 86400 + hour * 3600 + self.rng.randrange(3600)
        return local - (person.city[4] if offset is None else offset) * 3600

    def _sign_in(
        self,
        person: Person,
        at: float,
        *,
        device: Device,
        ip: str,
        asn: int,
        place: tuple[str, str, float, float, float, float],
        behaviour: str,
    ) -> None:
        rng = self.rng
        day = int(at // 86400)
        ua = device.user_agent(day)
        # Mistyped passwords: a failure or two seconds before; now and then a forgotten one.
        roll = rng.random()
        typos = 1 if roll < 0.05 else 2 if roll < 0.065 else 4 if roll < 0.068 else 0
        t = at - typos * rng.uniform(5, 25)
        for n in range(typos):
            self._emit(
                t,
                user=person.email,
                ip=ip,
                ua=ua,
                device=device.id,
                place=place,
                asn=asn,
                success=False,
                password=f"{person.password}~{day}~{n}",
                behaviour="typo",
            )
            t += rng.uniform(5, 25)
        self._emit(
            at,
            user=person.email,
            ip=ip,
            ua=ua,
            device=device.id,
            place=place,
            asn=asn,
            success=True,
            password=person.password,
            behaviour=behaviour,
        )

    def _normal(self, person: Person) -> None:
        rng = self.rng
        home = person.city
        # A trip or two: where, when, how long, how one gets there.
        trips: list[tuple[float, float, tuple[str, str, float, float, float, float]]] = []
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
            dest = rng.choice([c for c in CITIES if c[5] > 0 and c[0] != home[0]])
            dist = haversine_km(home[2], home[3], dest[2], dest[3])
            kmh = rng.uniform(70, 250) if dist < 600 else 800
            overhead = 1.0 if dist < 600 else rng.uniform(2.5, 4.0)  # stations, airports
            travel_s = (dist / kmh + overhead) * 3600
            leave = rng.uniform(2, self.days - 6) * 86400
            stay = rng.uniform(2, 8) * 86400
            trips.append((leave, leave + travel_s, dest))
            trips.append((leave + stay, leave + stay + travel_s, home))
        trips.sort(key=lambda t: t[0])
        hotel_ip: dict[str, tuple[str, int]] = {}
        new_phone_day = rng.uniform(0, self.days) if rng.random() < 0.08 else None
        for day in range(self.days):
            for _ in range(_poisson(rng, person.rate)):
                at = self._local_time(person, day)
                here = _where(trips, at, home)
                if here is not None and here is not home:
                    # Away: the same local hour in the destination's time zone.
                    at += (home[4] - here[4]) * 3600
                    here = _where(trips, at, home)
                if here is None:
                    continue  # on the train or in the air: no sign-in
                devices = list(person.devices)
                has_new = any(d.kind == "phone" and d.id.endswith("n") for d in devices)
                if new_phone_day is not None and day >= new_phone_day and not has_new:
                    # A new phone: a new device cookie, maybe another browser; the old one goes.
                    phone = self._device("phone")
                    phone.id = phone.id[:-1] + "n"
                    person.devices = [d for d in devices if d.kind != "phone"] + [phone]
                    devices = list(person.devices)
                device = rng.choice(devices)
                behaviour = "new_phone" if device.id.endswith("n") else ""
                if rng.random() < 0.01:  # cleared cookies, a private window
                    behaviour = "cleared_cookies"
                    device = Device(
                        f"{rng.getrandbits(128):032x}",
                        device.kind,
                        device.ua_template,
                        device.version_base,
                    )
                if person.vpn_share and rng.random() < person.vpn_share:
                    vpn_asn = rng.choice(VPN_ASNS)
                    exit_city = _CITY[rng.choice(VPN_CITIES)]
                    ip, asn, place = self.net.hosting(vpn_asn, rng), vpn_asn, exit_city
                    behaviour = behaviour or "vpn"
                elif here is not home:
                    if device.kind == "phone" and rng.random() < 0.5:
                        # Roaming: data goes home through the home carrier.
                        asn = person.mobile_asn
                        ip, place = self.net.consumer(asn, rng), home
                        behaviour = behaviour or "roaming"
                    else:
                        behaviour = behaviour or "trip"
                        key = f"{here[0]}"
                        if key not in hotel_ip:
                            hasn = rng.choice(FIXED_ASNS[here[1]])
                            hotel_ip[key] = (self.net.consumer(hasn, rng), hasn)
                        (ip, asn), place = hotel_ip[key], here
                elif device.kind == "phone" and rng.random() < 0.6:
                    asn = person.mobile_asn
                    ip, place = self.net.consumer(asn, rng), home
                    behaviour = behaviour or "mobile"
                elif person.work_ip and person.work_asn and rng.random() < 0.35:
                    ip, asn, place = person.work_ip, person.work_asn, home
                    behaviour = behaviour or "work"
                else:
                    behaviour = behaviour or "home"
                    if rng.random() < 0.01:  # the ISP hands out a new address
                        person.home_ip = self.net.consumer(person.home_asn, rng)
                    ip, asn, place = person.home_ip, person.home_asn, home
                self._sign_in(
                    person, at, device=device, ip=ip, asn=asn, place=place, behaviour=behaviour
                )

    # -- attacks ----------------------------------------------------------------------------

    def _episode(self, kind: str) -> str:
        n = sum(1 for k in self.episodes.values() if k == kind)
        name = f"{kind}-{n + 1}"
        self.episodes[name] = kind
        return name

    def _when(self) -> float:
        # After the first week (the people have baselines), before the last day.
        return self.rng.uniform(7, self.days - 1.5) * 86400

    def _bot(self) -> tuple[str, int, tuple[str, str, float, float, float, float]]:
        asn = self.rng.choice(HOSTING_ASNS)
        return self.net.hosting(asn, self.rng), asn, _CITY[self.rng.choice(ATTACKER_CITIES)]

    def _proxy(self) -> tuple[str, int, tuple[str, str, float, float, float, float]]:
        # Residential proxies: consumer networks anywhere.
        place = self.rng.choices(CITIES, weights=[c[5] + 1 for c in CITIES])[0]
        asn = self.rng.choice(FIXED_ASNS[place[1]] + MOBILE_ASNS[place[1]])
        return self.net.consumer(asn, self.rng), asn, place

    def _unknown_email(self) -> str:
        rng = self.rng
        return f"{rng.choice(FIRST)}{rng.randrange(10, 9999)}@{rng.choice(DOMAINS)}"

    def credential_stuffing(self) -> None:
        rng, ep = self.rng, self._episode("credential_stuffing")
        bots = [self._bot() for _ in range(rng.randint(2, 8))]
        ua = rng.choice(SCRIPT_UAS)
        t = self._when()
        for _ in range(rng.randint(300, 900)):
            t += rng.expovariate(1.5)
            ip, asn, place = rng.choice(bots)
            if rng.random() < 0.6:
                victim = rng.choice(self.people)
                reused = rng.random() < 0.025
                user, pw = victim.email, victim.password if reused else f"leak{rng.random()}"
            else:
                user, pw, reused = self._unknown_email(), f"leak{rng.random()}", False
            known = user in self._passwords
            self._emit(
                t,
                user=user,
                ip=ip,
                ua=ua,
                device=None,
                place=place,
                asn=asn,
                success=reused,
                password=pw,
                kind="credential_stuffing",
                episode=ep,
                exists=known,
            )

    def password_spraying(self) -> None:
        rng, ep = self.rng, self._episode("password_spraying")
        t = self._when()
        ua = rng.choice(BROWSER_UAS["desktop"]).format(v=124, m=2, f=125)
        targets = rng.sample(self.people, min(len(self.people), rng.randint(80, 250)))
        for word in rng.sample(
            ("Winter2026!", "Welcome1", "Password1!", "Autumn2026", "Qwerty123"), 2
        ):
            proxy, used = self._proxy(), 0
            for victim in targets:
                t += rng.uniform(20, 150)
                if used >= rng.randint(2, 6):
                    proxy, used = self._proxy(), 0
                used += 1
                ip, asn, place = proxy
                hit = rng.random() < 0.006
                self._emit(
                    t,
                    user=victim.email,
                    ip=ip,
                    ua=ua,
                    device=None,
                    place=place,
                    asn=asn,
                    success=hit,
                    password=word,  # a hit: the sprayed word was this person's password
                    kind="password_spraying",
                    episode=ep,
                )
            t += rng.uniform(1800, 7200)  # waits out the lockout window before the next word

    def brute_force(self) -> None:
        rng, ep = self.rng, self._episode("brute_force")
        victim = rng.choice(self.people)
        bots = [self._bot() for _ in range(rng.randint(1, 2))]
        ua = rng.choice(SCRIPT_UAS)
        t = self._when()
        tries = rng.randint(60, 400)
        cracked = rng.random() < 0.1
        for n in range(tries):
            t += rng.uniform(0.5, 4)
            ip, asn, place = rng.choice(bots)
            hit = cracked and n == tries - 1
            self._emit(
                t,
                user=victim.email,
                ip=ip,
                ua=ua,
                device=None,
                place=place,
                asn=asn,
                success=hit,
                password=victim.password if hit else f"guess{n}",
                kind="brute_force",
                episode=ep,
            )

    def distributed_brute_force(self) -> None:
        rng, ep = self.rng, self._episode("distributed_brute_force")
        victim = rng.choice(self.people)
        ua = rng.choice(BROWSER_UAS["desktop"]).format(v=125, m=3, f=126)
        t = self._when()
        proxy, used, n = self._proxy(), 0, 0
        for n in range(rng.randint(40, 200)):
            t += rng.uniform(10, 90)
            if used >= rng.randint(1, 3):
                proxy, used = self._proxy(), 0
            used += 1
            ip, asn, place = proxy
            self._emit(
                t,
                user=victim.email,
                ip=ip,
                ua=ua,
                device=None,
                place=place,
                asn=asn,
                success=False,
                password=f"dist{n}",
                kind="distributed_brute_force",
                episode=ep,
            )

    def account_takeover(self) -> None:
        rng, ep = self.rng, self._episode("account_takeover")
        victim = rng.choice(self.people)
        place = _CITY[rng.choice([c for c in ATTACKER_CITIES if _CITY[c][1] != victim.city[1]])]
        asn = rng.choice(FIXED_ASNS[place[1]] + HOSTING_ASNS[:3])
        ip = self.net.consumer(asn, rng) if asn < 10000 else self.net.hosting(asn, rng)
        device = self._device("desktop")
        t = self._when()
        for n in range(rng.randint(1, 3)):
            self._emit(
                t,
                user=victim.email,
                ip=ip,
                ua=device.user_agent(0),
                device=device.id,
                place=place,
                asn=asn,
                success=False,
                password=f"{victim.password}-old{n}",
                kind="account_takeover",
                episode=ep,
            )
            t += rng.uniform(8, 60)
        self._emit(
            t,
            user=victim.email,
            ip=ip,
            ua=device.user_agent(0),
            device=device.id,
            place=place,
            asn=asn,
            success=True,
            password=victim.password,
            kind="account_takeover",
            episode=ep,
        )

    def impossible_travel(self) -> None:
        rng = self.rng
        # Within hours of one of the victim's own sign-ins, from far away.
        own = self._own_successes
        if not own:
            return
        ep = self._episode("impossible_travel")
        at, _, record, _, _, _ = rng.choice(own)
        victim_lat, victim_lon = float(str(record["lat"])), float(str(record["lon"]))
        far = [c for c in CITIES if haversine_km(victim_lat, victim_lon, c[2], c[3]) > 3000]
        place = rng.choice(far)
        asn = rng.choice(FIXED_ASNS[place[1]])
        device = self._device(rng.choice(("desktop", "phone")))
        victim = str(record["user"])
        password = self._passwords[victim]
        self._emit(
            at + rng.uniform(600, 3 * 3600),
            user=victim,
            ip=self.net.consumer(asn, rng),
            ua=device.user_agent(0),
            device=device.id,
            place=place,
            asn=asn,
            success=True,
            password=password,
            kind="impossible_travel",
            episode=ep,
        )

    def low_and_slow(self) -> None:
        rng, ep = self.rng, self._episode("low_and_slow")
        victim = rng.choice(self.people)
        first = rng.uniform(3, max(3.5, self.days - 36)) * 86400
        n = 0
        for day in range(rng.randint(14, 35)):
            for _ in range(rng.randint(1, 4)):
                ip, asn, place = self._proxy()
                at = first + day * 86400 + rng.uniform(0, 86400)
                if at >= self.days * 86400:
                    continue
                ua = rng.choice(BROWSER_UAS["desktop"]).format(v=126, m=4, f=127)
                self._emit(
                    at,
                    user=victim.email,
                    ip=ip,
                    ua=ua,
                    device=None,
                    place=place,
                    asn=asn,
                    success=False,
                    password=f"slow{n}",
                    kind="low_and_slow",
                    episode=ep,
                )
                n += 1

    # -- the whole trace --------------------------------------------------------------------

    def build(self, episodes: dict[str, int]) -> Trace:
        for person in self.people:
            self._normal(person)
        self._own_successes = [
            r
            for r in self.records
            if r[2]["success"] and 7 * 86400 < r[0] < (self.days - 1) * 86400
        ]
        passwords = {p.email: p.password for p in self.people}
        self._passwords = passwords
        for kind in ATTACK_KINDS:
            for _ in range(episodes.get(kind, 0)):
                getattr(self, kind)()
        end = self.days * 86400
        kept = sorted((r for r in self.records if 0 <= r[0] < end), key=lambda r: (r[0], r[1]))
        lines = [r[2] for r in kept]
        labels: list[dict[str, object]] = [
            {"line": n, "kind": r[3], "episode": r[4]} | ({"behaviour": r[5]} if r[5] else {})
            for n, r in enumerate(kept, start=1)
        ]
        present = {r[4] for r in kept if r[4]}
        return Trace(lines, labels, {e: k for e, k in self.episodes.items() if e in present})


def _where(
    trips: list[tuple[float, float, tuple[str, str, float, float, float, float]]],
    at: float,
    home: tuple[str, str, float, float, float, float],
) -> tuple[str, str, float, float, float, float] | None:
    """Where a person is at `at`, given their trips (leave, arrive, destination); None while
    travelling."""
    here = home
    for leave, arrive, dest in trips:
        if at >= leave:
            if at < arrive:
                return None
            here = dest
    return here


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the small means of sign-ins per day.
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


# Episodes per kind for the default 3,000 people; scaled with the population.
DEFAULT_EPISODES: dict[str, int] = {
    "credential_stuffing": 6,
    "password_spraying": 6,
    "brute_force": 20,
    "distributed_brute_force": 10,
    "account_takeover": 40,
    "impossible_travel": 40,
    "low_and_slow": 12,
}


def generate(
    *,
    people: int = 3000,
    days: int = 45,
    seed: int = 1,
    start: dt.datetime = dt.datetime(2026, 10, 20, tzinfo=dt.UTC),
    episodes: dict[str, int] | None = None,
    password_digest: bool = True,
) -> Trace:
    if people < 10 or days < 10:
        raise ValueError("a trace needs at least 10 people and 10 days")
    if episodes is None:
        scale = people / 3000
        episodes = {k: max(1, round(n * scale)) for k, n in DEFAULT_EPISODES.items()}
    trace = Generator(people=people, days=days, seed=seed, start=start).build(episodes)
    if not password_digest:
        for line in trace.lines:
            line.pop("password_digest", None)
    return trace


def dumps(record: dict[str, object]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def write(trace: Trace, output: Path, labels: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    labels.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as out:
        out.writelines(dumps(line) + "\n" for line in trace.lines)
    with labels.open("w", encoding="utf-8") as out:
        out.writelines(dumps(label) + "\n" for label in trace.labels)


def read_labels(path: Path) -> Iterator[dict[str, object]]:
    with path.open(encoding="utf-8") as lines:
        for text in lines:
            if text.strip():
                yield json.loads(text)


def labels_path(output: Path) -> Path:
    name = output.name.removesuffix(".jsonl")
    return output.with_name(f"{name}.labels.jsonl")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", default="2026-10-20", help="first day (UTC), YYYY-MM-DD")
    parser.add_argument("--output", type=Path, default=Path("var/threat/trace.jsonl"))
    parser.add_argument("--labels", type=Path, help="default: OUTPUT with .labels.jsonl")
    parser.add_argument("--no-password-digest", action="store_true")
    args = parser.parse_args(argv)
    try:
        start = dt.datetime.strptime(args.start, "%Y-%m-%d").replace(tzinfo=dt.UTC)
        trace = generate(
            people=args.people,
            days=args.days,
            seed=args.seed,
            start=start,
            password_digest=not args.no_password_digest,
        )
    except ValueError as exc:
        parser.error(str(exc))
    write(trace, args.output, args.labels or labels_path(args.output))
    counts = trace.counts()
    episodes = Counter(trace.episodes.values())
    print(
        f"trace people={args.people} days={args.days} seed={args.seed} "
        f"lines={len(trace.lines)} normal={counts[NORMAL]} output={args.output}"
    )
    for kind in ATTACK_KINDS:
        print(f"kind={kind} episodes={episodes[kind]} lines={counts[kind]}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
