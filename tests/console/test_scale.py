"""The console and the admin API over 100,000 login sessions: the first page, a deep page
reached with the keyset cursor and every filter each answer within a bound, in a few
queries, and no query scans the sessions table."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.core.cursors import KeysetCursor
from apps.sessions.models import LoginSession

pytestmark = pytest.mark.django_db

USERS = 1_000
SESSIONS = 100_000
BOUND_SECONDS = 1.0  # generous: measured figures are printed, a few tens of ms each
MAX_QUERIES = 19  # browser session, user, login session (middleware), sessions, clients,
# offline grants (the user page), the operator.viewed_user event's INSERT (the outbox
# writes through psycopg directly, and logs the statement as Django's cursor would), the
# person's memberships (organizations, workspaces, groups) and claims preview (one UNION),
# and their second factors (apps.mfa.selectors.factors_of: TOTP devices, WebAuthn
# credentials, the recovery-code set with its unused count; the organizations requiring MFA
# come from the memberships already loaded), and the person's newest threat assessments (the
# risk timeline, one read of the audit store: issue 16), and their linked identities with
# their providers (issue 17: one more, a join on federation_identity_user_idx)

# One statement: 100 sessions per user, an IP shared by 20 sessions, a device by 5, a
# quarter ended, the newest ~900 live and the rest past their lifetime.
INSERT_SESSIONS = """
WITH people AS (
    SELECT array_agg(id ORDER BY email) AS ids FROM accounts_user WHERE email LIKE 'load%%'
)
INSERT INTO login_sessions_loginsession (
    id, user_id, provider, acr, amr, device_id, ip_address, user_agent, context,
    security_level, threat_score, compromised, created_at, last_active_at, expires_at,
    ended_at, end_reason
)
SELECT
    gen_random_uuid(), people.ids[1 + g %% %(users)s], 'local', 'urn:tessera:acr:pwd', '["pwd"]',
    'device-' || g %% 20000, ('10.0.' || (g %% 5000) / 256 || '.' || g %% 256)::inet,
    'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
    '{"device": {"browser": "Firefox on Linux"}, "flags": []}', 1, g %% 100, false,
    now() - g * interval '37 seconds', now() - g * interval '30 seconds',
    now() - g * interval '37 seconds' + interval '12 hours',
    CASE WHEN g %% 4 = 0 THEN now() - g * interval '29 seconds' END,
    CASE WHEN g %% 4 = 0 THEN 'logout' ELSE '' END
FROM generate_series(1, %(sessions)s) AS g, people
"""


@pytest.fixture
def many_sessions(operator, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    User.objects.bulk_create(
        User(email=f"load{n:04d}@example.com", password="!") for n in range(USERS)
    )
    with connection.cursor() as cursor:
        cursor.execute(INSERT_SESSIONS, {"users": USERS, "sessions": SESSIONS})
        cursor.execute("ANALYZE accounts_user")
        cursor.execute("ANALYZE login_sessions_loginsession")
    assert LoginSession.objects.filter(user__email__startswith="load").count() == SESSIONS
    with capsys.disabled():
        print(
            f"\nconsole-scale: {SESSIONS} sessions created in {time.perf_counter() - started:.2f} s"
        )


@pytest.fixture
def deep_cursor(many_sessions) -> str:
    """The cursor of the 90,000th session, most recently active first."""
    at, sid = LoginSession.objects.order_by("-last_active_at", "-id").values_list(
        "last_active_at", "id"
    )[90_000]
    return str(KeysetCursor(at, sid))


@pytest.fixture
def timed(
    capsys: pytest.CaptureFixture[str], django_assert_max_num_queries: Callable[..., object]
) -> Iterator[Callable[..., object]]:
    """Requests one page: timed, its queries counted and each sessions query EXPLAINed."""
    figures: list[str] = []

    def request(label: str, http: HttpClient, path: str, query: dict[str, str]) -> object:
        http.get(path, query)  # warm: templates compiled, connections open
        with django_assert_max_num_queries(MAX_QUERIES), CaptureQueriesContext(connection) as q:
            started = time.perf_counter()
            response = http.get(path, query)
            elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.content[:300]
        listings = [
            query["sql"]
            for query in q.captured_queries
            if 'FROM "login_sessions_loginsession"' in query["sql"] and "LIMIT 51" in query["sql"]
        ]
        assert len(listings) == 1, q.captured_queries
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {listings[0]}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Seq Scan on login_sessions_loginsession" not in plan, plan
        figures.append(f"console-scale: {label:<28} {elapsed * 1000:7.1f} ms {len(q)} queries")
        assert elapsed < BOUND_SECONDS, f"{label} took {elapsed:.3f}s"
        return response

    yield request
    with capsys.disabled():
        print("\n" + "\n".join(figures))


FILTERS = {
    "page 1": {},
    "email": {"email": "load0500@example.com"},
    "ip address": {"ip_address": "10.0.3.7"},
    "device id": {"device_id": "device-777"},
    "live only": {"live_only": "on"},
    "email, live only": {"email": "load0007@example.com", "live_only": "on"},
}


def test_console_pages_stay_fast(staff, many_sessions, deep_cursor, timed) -> None:
    for label, query in FILTERS.items():
        response = timed(f"console {label}", staff, "/console/sessions/", query)
        assert response.context["page"].sessions, label
    deep = timed("console page 1,801 (cursor)", staff, "/console/sessions/", {"after": deep_cursor})
    assert len(deep.context["page"].sessions) == 50
    person = User.objects.get(email="load0500@example.com")
    timed("console user page", staff, f"/console/users/{person.pk}/", {})


def test_api_pages_stay_fast(staff, many_sessions, deep_cursor, timed) -> None:
    for label, query in FILTERS.items():
        response = timed(f"api {label}", staff, "/api/v1/sessions", query)
        assert response.json()["results"], label
    deep = timed("api page 1,801 (cursor)", staff, "/api/v1/sessions", {"after": deep_cursor})
    assert len(deep.json()["results"]) == 50
    assert deep.json()["next"]
