"""The signals a sign-in attempt is judged by: the names rule conditions may use
(apps/threat/rules.py), what apps/threat/features.py computes for each attempt, and what the
console's rule editor lists. A closed catalog, like the events': a condition naming anything
else is refused when it is saved.

Windows are sliding, counted from the attempt's own time; "person" is the account the address
names, "IP" the client address (behind trusted proxies), "network" its /24 (IPv4) or /48
(IPv6) prefix.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Signal:
    kind: type  # bool, int, float or str
    doc: str


SIGNALS: dict[str, Signal] = {
    # The attempt itself
    "success": Signal(bool, "The first factor (password or passkey) was proven."),
    "activity": Signal(
        bool,
        "Session activity after sign-in (a refresh, a code exchange, a userinfo call), judged "
        "later by a worker; false for a sign-in attempt.",
    ),
    "public_client": Signal(
        bool, "The activity is a public client's (its refresh token is a bearer credential)."
    ),
    "user_exists": Signal(bool, "The address names an account."),
    "known_person": Signal(
        bool, "The person has signed in successfully before (a baseline exists)."
    ),
    "score": Signal(int, "The attempt's risk score, 0-100 (apps/threat/scoring.py)."),
    # Login frequency
    "failures_user_1h": Signal(int, "Failed attempts on this person in the last hour."),
    "failures_user_24h": Signal(int, "Failed attempts on this person in the last 24 hours."),
    "failures_user_7d": Signal(int, "Failed attempts on this person in the last 7 days."),
    "attempts_ip_1h": Signal(int, "Attempts from this IP in the last hour."),
    "failures_ip_1h": Signal(int, "Failed attempts from this IP in the last hour."),
    "failures_ip_24h": Signal(int, "Failed attempts from this IP in the last 24 hours."),
    "failures_network_1h": Signal(int, "Failed attempts from this network in the last hour."),
    "accounts_ip_1h": Signal(int, "Distinct addresses tried from this IP in the last hour."),
    "accounts_network_1h": Signal(
        int, "Distinct addresses tried from this network in the last hour."
    ),
    "ips_user_1h": Signal(int, "Distinct IPs that tried this person in the last hour."),
    "spray_accounts_1h": Signal(
        int, "Distinct addresses the same password was tried against in the last hour."
    ),
    # Scripted clients
    "no_device_cookie": Signal(bool, "The client sent no device cookie (scripts keep none)."),
    "headless_ua": Signal(
        bool, "The user agent is a headless browser, an HTTP library or missing."
    ),
    # Geography
    "country": Signal(str, "ISO country code of the IP (GeoIP), or empty."),
    "new_country": Signal(bool, "A country this person never signed in from."),
    "distance_km": Signal(float, "Distance from the person's previous successful sign-in."),
    "travel_kmh": Signal(float, "Speed needed to have travelled from the previous sign-in."),
    "impossible_travel": Signal(
        bool,
        "The speed needed exceeds an airliner's (IDP_THREAT_TRAVEL_KMH) beyond a tolerance for "
        "VPNs and city-level inaccuracy (IDP_THREAT_TRAVEL_TOLERANCE_KM).",
    ),
    # Device consistency
    "new_device": Signal(bool, "A device cookie this person never signed in with."),
    "new_browser": Signal(bool, "A browser family this person never used."),
    "new_os": Signal(bool, "An operating system this person never used."),
    # Network
    "asn": Signal(int, "Autonomous system number of the IP (GeoIP ASN database), or 0."),
    "new_asn": Signal(bool, "A network operator (ASN) this person never signed in from."),
    "new_network": Signal(bool, "A network prefix this person never signed in from."),
    "ip_listed": Signal(bool, "The IP is on one of the operator's reputation lists."),
    "ip_list": Signal(str, "The name of the first reputation list the IP is on, or empty."),
    # Time of day
    "unusual_hour": Signal(
        bool, "An hour of the day (in the person's usual time zone) they rarely sign in at."
    ),
    "hour_share": Signal(
        float, "Share of the person's past sign-ins in this hour of the day (0-1)."
    ),
}

BOOLEAN_SIGNALS: tuple[str, ...] = tuple(n for n, s in SIGNALS.items() if s.kind is bool)
