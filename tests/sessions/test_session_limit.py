"""The per-user session limit holds under concurrent logins (OWASP ASVS 3.3.4): 20 browsers
sign in as one user at the same moment through the live server and real PostgreSQL."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from apps.core.models import SecurityEvent
from apps.sessions.models import LoginSession
from tests.events import recorded
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

LOGINS = 20
LIMIT = 3


def _parallel_logins(base: str, email: str) -> list[int]:
    ready = threading.Barrier(LOGINS, timeout=30)

    def login(_: int) -> int:
        with requests.Session() as http:
            page = http.get(f"{base}/login", timeout=30)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert token
            ready.wait()  # every POST leaves together
            response = http.post(
                f"{base}/login",
                data={"csrfmiddlewaretoken": token.group(1), "email": email, "password": PASSWORD},
                headers={"Referer": f"{base}/login"},
                allow_redirects=False,
                timeout=60,
            )
            return response.status_code

    with ThreadPoolExecutor(LOGINS) as pool:
        return list(pool.map(login, range(LOGINS)))


def test_evict_oldest_leaves_at_most_the_limit_live(live_server, person, settings) -> None:
    settings.LOGIN_SESSION_LIMIT = LIMIT
    settings.LOGIN_SESSION_LIMIT_POLICY = "evict_oldest"
    statuses = _parallel_logins(live_server.url, person.email)
    assert statuses == [302] * LOGINS
    live = LoginSession.objects.filter(user=person, ended_at__isnull=True)
    assert live.count() == LIMIT
    assert LoginSession.objects.filter(user=person, end_reason="session_limit").count() == (
        LOGINS - LIMIT
    )
    # the survivors are the newest logins
    newest = LoginSession.objects.filter(user=person).order_by("-created_at")[:LIMIT]
    assert set(live) == set(newest)
    # each login past the limit records the policy acting once
    evictions = SecurityEvent.objects.filter(event_type="session.limit_reached", success=True)
    assert evictions.count() == LOGINS - LIMIT
    assert {e.metadata["evicted"] for e in evictions} == {1}


def test_refuse_lets_exactly_the_limit_in(live_server, person, settings) -> None:
    settings.LOGIN_SESSION_LIMIT = LIMIT
    settings.LOGIN_SESSION_LIMIT_POLICY = "refuse"
    statuses = _parallel_logins(live_server.url, person.email)
    assert sorted(statuses) == [302] * LIMIT + [403] * (LOGINS - LIMIT)
    assert LoginSession.objects.filter(user=person, ended_at__isnull=True).count() == LIMIT
    # each refusal is one failed login, not also a limit event
    refused = SecurityEvent.objects.filter(event_type="login.failed", error_code="session_limit")
    assert refused.count() == LOGINS - LIMIT
    assert not SecurityEvent.objects.filter(event_type="session.limit_reached").exists()


def test_a_refused_login_says_what_to_do(client, person, settings) -> None:
    settings.LOGIN_SESSION_LIMIT = 1
    settings.LOGIN_SESSION_LIMIT_POLICY = "refuse"
    client.post("/login", {"email": person.email, "password": PASSWORD})
    client.logout()  # the Django login ends; the login session lives on
    with recorded() as events:
        response = client.post("/login", {"email": person.email, "password": PASSWORD})
    assert response.status_code == 403
    assert b"Sign out on one of them" in response.content
    assert "_auth_user_id" not in client.session
    # One failed login: no limit event, no logout (threat scoring's threat.assessed aside).
    [refused] = [event for event in events if event.event_type != "threat.assessed"]
    assert (refused.event_type, refused.user_id) == ("login.failed", str(person.pk))
    assert (refused.success, refused.severity) == (False, "low")
    assert refused.error_code == "session_limit"
    assert "Sign out on one of them" in refused.error_message
    assert refused.metadata == {"provider": "local", "limit": 1}


def test_the_admin_site_signs_in_on_the_hosted_page(client, person, settings) -> None:
    # One password form, one set of checks (issue 12): the Django admin's own login form,
    # which knew neither the session limit nor the sign-in pipeline, is not served.
    for method in (client.get, client.post):
        response = method("/admin/login/?next=/admin/")
        assert response.status_code == 302
        assert response["Location"] == "/login?next=/admin/"
    assert "_auth_user_id" not in client.session
