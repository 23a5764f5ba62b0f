"""The signals of one attempt (apps/threat/signals.py, every name but `score`), from the
attempt itself (apps.core.risk.LoginContext) and what its history says (history.View).

Choices, documented in docs/threat.md ("Signals and scores"):
- The `new_*` signals hold only for a known person (a baseline with a success): on the very
  first sign-in everything is new and says nothing.
- Impossible travel: the great-circle (haversine) distance from the last successful sign-in,
  less IDP_THREAT_TRAVEL_TOLERANCE_KM (VPN exits, city-level GeoIP inaccuracy), over the hours
  between them, above IDP_THREAT_TRAVEL_KMH. Needs coordinates for both.
- Unusual hour: the histogram is kept in UTC hours. A person's time zone only rotates their
  histogram, so a test of the share of their sign-ins near this hour needs no time zone: the
  hour is unusual when the person has MIN_SUCCESSES_FOR_HOURS successes and fewer than
  UNUSUAL_SHARE of them fell within an hour of this one (this hour and its two neighbours,
  round the clock).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from django.conf import settings

from apps.core.risk import LoginContext
from apps.core.risk import password_digest as password_digest
from apps.sessions.binding import browser_family
from apps.threat import reputation
from apps.threat.history import View

EARTH_RADIUS_KM = 6371.0
MIN_SUCCESSES_FOR_HOURS = 10
UNUSUAL_SHARE = 0.05
# Headless browsers, HTTP libraries and command-line tools; an empty UA counts too.
HEADLESS = re.compile(
    r"HeadlessChrome|PhantomJS|Puppeteer|Playwright|Selenium|webdriver|python-requests|"
    r"python-urllib|aiohttp|httpx|Go-http-client|curl/|Wget/|libwww-perl|okhttp|Java/|"
    r"node-fetch|axios/|Scrapy|HeadlessShell|bot\b|spider|crawler",
    re.IGNORECASE,
)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@lru_cache(maxsize=4096)  # a few user agents make most sign-ins; the parser is regexes
def browser_and_os(user_agent: str) -> tuple[str, str]:
    """("Firefox", "Linux") from the coarse parser login sessions use (apps.sessions.binding)."""
    browser, _, system = browser_family(user_agent).partition(" on ")
    return browser, system


@lru_cache(maxsize=4096)
def headless(user_agent: str) -> bool:
    return not user_agent.strip() or HEADLESS.search(user_agent) is not None


def travel(context: LoginContext, view: View) -> tuple[float, float, bool]:
    """(distance_km, travel_kmh, impossible) from the last successful sign-in."""
    if (
        context.lat is None
        or context.lon is None
        or view.last_lat is None
        or view.last_lon is None
        or view.last_at_ms is None
    ):
        return 0.0, 0.0, False
    distance = haversine_km(view.last_lat, view.last_lon, context.lat, context.lon)
    beyond = max(0.0, distance - settings.THREAT_TRAVEL_TOLERANCE_KM)
    hours = max(context.at.timestamp() * 1000 - view.last_at_ms, 0) / 3_600_000
    # A trip in no time at all is as fast as one in a second: a finite number for JSON.
    kmh = beyond / max(hours, 1 / 3600)
    return round(distance, 1), round(kmh, 1), beyond > 0 and kmh > settings.THREAT_TRAVEL_KMH


def hour_of(context: LoginContext) -> int:
    return int(context.at.timestamp() // 3600 % 24)


def hours_signals(hour: int, view: View) -> tuple[bool, float]:
    """(unusual_hour, hour_share)."""
    total = sum(view.hours)
    if not total:
        return False, 0.0
    near = sum(view.hours[(hour + d) % 24] for d in (-1, 0, 1))
    unusual = total >= MIN_SUCCESSES_FOR_HOURS and near / total < UNUSUAL_SHARE
    return unusual, round(view.hours[hour] / total, 3)


def compute(context: LoginContext, view: View) -> dict[str, object]:
    """Every signal of SIGNALS but `score`, for this attempt and its view."""
    known = view.successes > 0
    distance, kmh, impossible = travel(context, view)
    unusual, share = hours_signals(hour_of(context), view)
    ip_list = reputation.listed(context.ip)
    return {
        "success": context.success,
        "activity": False,  # a sign-in attempt, not session activity
        "public_client": False,
        "user_exists": context.user_id is not None,
        "known_person": known,
        "failures_user_1h": view.failures_user_1h,
        "failures_user_24h": view.failures_user_24h,
        "failures_user_7d": view.failures_user_7d,
        "attempts_ip_1h": view.attempts_ip_1h,
        "failures_ip_1h": view.failures_ip_1h,
        "failures_ip_24h": view.failures_ip_24h,
        "failures_network_1h": view.failures_network_1h,
        "accounts_ip_1h": view.accounts_ip_1h,
        "accounts_network_1h": view.accounts_network_1h,
        "ips_user_1h": view.ips_user_1h,
        "spray_accounts_1h": view.spray_accounts_1h,
        "no_device_cookie": not context.device_id,
        "headless_ua": headless(context.user_agent),
        "country": context.country or "",
        "new_country": known and bool(context.country) and not view.known_country,
        "distance_km": distance,
        "travel_kmh": kmh,
        "impossible_travel": impossible,
        "new_device": known and bool(context.device_id) and not view.known_device,
        "new_browser": known and not view.known_browser,
        "new_os": known and not view.known_os,
        "asn": context.asn or 0,
        "new_asn": known and bool(context.asn) and not view.known_asn,
        "new_network": known and bool(context.ip) and not view.known_network,
        "ip_listed": bool(ip_list),
        "ip_list": ip_list,
        "unusual_hour": unusual,
        "hour_share": share,
    }
