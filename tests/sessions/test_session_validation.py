"""Login sessions bound to device, network and browser, checked on every browser request
(OWASP ASVS V3), through the real middleware stack and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import SESSION_KEY as AUTH_USER_KEY
from django.core import signing
from django.test import Client as HttpClient
from django.utils import timezone

from apps.core.models import SecurityEvent
from apps.sessions import binding
from apps.sessions.models import LoginSession
from apps.sessions.services import session_mark_compromised
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
HOME_IP = "198.51.100.7"


def browser(ip: str = HOME_IP, user_agent: str = FIREFOX) -> HttpClient:
    return HttpClient(REMOTE_ADDR=ip, HTTP_USER_AGENT=user_agent)


def sign_in(http: HttpClient, person) -> LoginSession:
    """The hosted login page, as a browser uses it: GET (device cookie), then POST."""
    page = http.get("/login")
    assert binding.DEVICE_COOKIE in page.cookies
    response = http.post("/login", {"email": person.email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:300]
    return LoginSession.objects.get(pk=http.session["tessera_sid"])


def signed_in(http: HttpClient, **environ: str) -> bool:
    http.get("/", **environ)
    return AUTH_USER_KEY in http.session


def flags(session: LoginSession) -> list[dict]:
    events = SecurityEvent.objects.filter(event_type="session.flagged", session_id=session.pk)
    return [event.metadata for event in events.order_by("occurred_at")]


def test_device_cookie_is_signed_httponly_and_long_lived(person) -> None:
    # OWASP ASVS 3.4.2 (HttpOnly), 3.4.3 (SameSite); a device id, not a session token
    cookie = browser().get("/login").cookies[binding.DEVICE_COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert int(cookie["max-age"]) >= 365 * 86400
    assert signing.loads(cookie.value, salt="tessera.sessions.device")


def test_login_binds_the_session_to_device_network_and_browser(person) -> None:
    http = browser()
    session = sign_in(http, person)
    assert len(session.device_id) == 32
    assert session.ip_address == HOME_IP
    # Firefox sends no client hints: platform and mobile are read from its User-Agent, as
    # for the device id.
    assert session.context["device"] == {
        "browser": "Firefox on Linux",
        "platform": "Linux",
        "mobile": False,
    }
    assert session.context["network"] == "198.51.100.0/24"
    assert signed_in(http)
    assert flags(session) == []


def test_a_tampered_device_cookie_is_rejected_and_flagged(person) -> None:
    http = browser()
    session = sign_in(http, person)
    value = http.cookies[binding.DEVICE_COOKIE].value
    http.cookies[binding.DEVICE_COOKIE] = value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    assert not signed_in(http)
    session.refresh_from_db()
    assert session.end_reason == "device_mismatch"
    assert flags(session) == [{"check": "device_cookie_tampered"}]


def test_a_session_cookie_replayed_from_another_device_is_rejected(person) -> None:
    # The stolen Django session cookie, in a browser with its own (valid) device cookie.
    victim = browser()
    session = sign_in(victim, person)
    thief = browser()
    thief.get("/login")  # its own device cookie
    thief.cookies["sessionid"] = victim.cookies["sessionid"].value
    assert not signed_in(thief)
    session.refresh_from_db()
    assert session.end_reason == "device_mismatch"
    assert flags(session)[0]["check"] == "device_mismatch"
    assert not signed_in(victim)  # the session is over for everyone: it leaked


def test_idle_timeout_slides_with_use_and_ends_an_idle_session(person, settings) -> None:
    # OWASP ASVS 3.3.2
    settings.LOGIN_SESSION_IDLE_TIMEOUT = 600
    http = browser()
    session = sign_in(http, person)
    LoginSession.objects.filter(pk=session.pk).update(
        last_active_at=timezone.now() - timedelta(seconds=500)
    )
    assert signed_in(http)  # used within the timeout: slides
    session.refresh_from_db()
    assert timezone.now() - session.last_active_at < timedelta(seconds=5)
    LoginSession.objects.filter(pk=session.pk).update(
        last_active_at=timezone.now() - timedelta(seconds=601)
    )
    assert not signed_in(http)
    session.refresh_from_db()
    assert session.end_reason == "idle_timeout"
    assert SecurityEvent.objects.filter(event_type="session.expired", session_id=session.pk)


def test_absolute_lifetime_ends_a_session_in_use(person) -> None:
    # OWASP ASVS 3.3.1: however active, a session ends at its absolute lifetime
    http = browser()
    session = sign_in(http, person)
    LoginSession.objects.filter(pk=session.pk).update(expires_at=timezone.now())
    assert not signed_in(http)
    session.refresh_from_db()
    assert session.end_reason == "expired"


def test_ip_change_within_the_network_is_ordinary(person) -> None:
    http = browser()
    session = sign_in(http, person)
    assert signed_in(http, REMOTE_ADDR="198.51.100.200")
    assert flags(session) == []


@pytest.mark.parametrize("policy", ["flag", "reject", "allow"])
def test_ip_change_to_another_network_follows_the_policy(person, settings, policy: str) -> None:
    settings.LOGIN_SESSION_IP_CHANGE = policy
    http = browser()
    session = sign_in(http, person)
    still_in = signed_in(http, REMOTE_ADDR="203.0.113.9")
    session.refresh_from_db()
    if policy == "allow":
        assert still_in
        assert flags(session) == []
        return
    assert flags(session) == [{"check": "ip_change", "value": "203.0.113.9"}]
    assert still_in is (policy == "flag")
    assert session.end_reason == ("ip_change" if policy == "reject" else "")
    if policy == "flag":
        assert signed_in(http, REMOTE_ADDR="203.0.113.9")
        assert len(flags(session)) == 1  # flagged once, not on every page


def test_browser_family_change_is_flagged(person) -> None:
    http = browser()
    session = sign_in(http, person)
    assert signed_in(http, HTTP_USER_AGENT=FIREFOX.replace("128.0", "129.0"))  # an update
    assert flags(session) == []
    # The device id includes the browser family, so the device check rejects the request
    # first; the browser check still records what changed.
    assert not signed_in(http, HTTP_USER_AGENT=CHROME)
    checks = [flag["check"] for flag in flags(session)]
    assert checks == ["device_mismatch"]


def test_a_compromised_session_is_refused(person) -> None:
    http = browser()
    session = sign_in(http, person)
    session_mark_compromised(session=session, actor_id="operator-1")
    assert not signed_in(http)
    session.refresh_from_db()
    assert session.compromised
    assert session.end_reason == "compromised"


def test_a_login_without_device_cookie_is_not_device_bound(person) -> None:
    # An API-driven login (no page seen first) has no device to bind to; the context says so.
    http = browser()
    http.post("/login", {"email": person.email, "password": PASSWORD})
    session = LoginSession.objects.get(pk=http.session["tessera_sid"])
    assert session.device_id == ""
    assert "device_unbound" in session.context["flags"]
    assert signed_in(http)


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [("10.0.0.1", "10.0.0.254", True), ("10.0.0.1", "10.0.1.1", False),
     ("2001:db8::1", "2001:db8::ffff", True), ("2001:db8::1", "2001:db8:0:1::1", False),
     ("10.0.0.1", "2001:db8::1", False), ("10.0.0.1", None, False), (None, None, True),
     ("10.0.0.1", "not-an-ip", False)],
)  # fmt: skip
def test_same_network(first, second, same: bool) -> None:
    assert binding.same_network(first, second) is same


@pytest.mark.parametrize(
    ("user_agent", "family"),
    [(FIREFOX, "Firefox on Linux"), (CHROME, "Chrome on Linux"),
     ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"),
     ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
      "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "Safari on iOS"),
     ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "HeadlessChrome/131.0.0.0 Safari/537.36", "Chrome on Linux"),
     ("", "Other on Other"), ("\x00" * 600, "Other on Other")],
)  # fmt: skip
def test_browser_family(user_agent: str, family: str) -> None:
    assert binding.browser_family(user_agent) == family


def test_browser_change_on_an_unbound_session_is_flagged_not_refused(person) -> None:
    http = browser()
    http.post("/login", {"email": person.email, "password": PASSWORD})  # no device cookie
    session = LoginSession.objects.get(pk=http.session["tessera_sid"])
    assert signed_in(http, HTTP_USER_AGENT=CHROME)
    assert flags(session) == [{"check": "browser_change", "value": "Chrome on Linux"}]


@pytest.mark.django_db(transaction=True)
def test_deactivating_or_deleting_an_account_ends_its_sessions(person, redis_client) -> None:
    # OWASP ASVS 3.3.3: the account's tokens stop working now, not when they expire
    http = browser()
    session = sign_in(http, person)
    person.is_active = False
    person.save()
    session.refresh_from_db()
    assert session.end_reason == "account_disabled"
    assert redis_client.exists(f"tessera:revoked:sid:{session.pk}")

    person.is_active = True
    person.save()
    again = sign_in(browser(), person)
    person.delete()
    assert redis_client.exists(f"tessera:revoked:sid:{again.pk}")
    assert SecurityEvent.objects.filter(
        event_type="session.revoked", session_id=str(again.pk), metadata__reason="account_deleted"
    ).exists()


def test_client_hints_left_off_a_request_do_not_change_the_device(person) -> None:
    # Chromium sends no Sec-CH-UA-* with a download link: the User-Agent says the same.
    http = browser(user_agent=CHROME)
    http.get("/login", HTTP_SEC_CH_UA_PLATFORM='"Linux"', HTTP_SEC_CH_UA_MOBILE="?0")
    http.post(
        "/login", {"email": person.email, "password": PASSWORD},
        HTTP_SEC_CH_UA_PLATFORM='"Linux"', HTTP_SEC_CH_UA_MOBILE="?0",
    )  # fmt: skip
    assert signed_in(http)  # no hints on this request
    assert signed_in(http, HTTP_SEC_CH_UA_PLATFORM='"Windows"') is False  # another platform
