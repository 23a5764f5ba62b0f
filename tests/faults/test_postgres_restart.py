"""PostgreSQL restarted under load (issue 20, "Faults"): while the database is down every
request that needs it is answered 503 `temporarily_unavailable` with Retry-After (RFC 9110
§15.6.4, §10.2.3) — not a 500 storm — and once it is back the same server answers again,
without a restart (CONN_HEALTH_CHECKS drops the dead connections: idp/settings.py).

The web server is the production command (`python -m idp.web`) on a PostgreSQL of this test's
own (the suite's is shared by every test), loaded with a pg_dump of the test database.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from django.conf import settings as django_settings
from django.db import OperationalError
from django.http import HttpResponse
from django.test import RequestFactory

from apps.accounts.services import user_create
from apps.core.middleware import UnavailableMiddleware
from apps.core.views import server_error
from apps.tokens.services import client_create
from tests.console.conftest import access_token
from tests.servers import Postgres, production_web_server, wait_for

if TYPE_CHECKING:
    from tests.servers import TestServers

PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def postgres_copy(servers: TestServers, tmp_path: Path) -> Iterator[Callable[[], Postgres]]:
    """Makes a PostgreSQL of this test's own holding a copy of the test database as it is
    when called (rows committed by then); stopped afterwards."""
    started: list[Postgres] = []

    def copy() -> Postgres:
        suite = servers.postgres
        dump = tmp_path / "tessera.dump"
        subprocess.run(
            [str(suite.bindir / "pg_dump"), "-h", "127.0.0.1", "-p", str(suite.port),
             "-U", suite.user, "--format=custom", "--file", str(dump),
             django_settings.DATABASES["default"]["NAME"]],
            check=True, capture_output=True,
        )  # fmt: skip
        # Beside the suite's servers: the postgres user (when run as root) must reach it.
        base = servers.base / f"postgres-copy-{uuid.uuid4().hex[:8]}"
        base.mkdir()
        postgres = Postgres(base)
        postgres.start()
        started.append(postgres)
        connect = ["-h", "127.0.0.1", "-p", str(postgres.port), "-U", postgres.user]
        subprocess.run([str(postgres.bindir / "createdb"), *connect, "tessera"], check=True)
        subprocess.run(
            [str(postgres.bindir / "pg_restore"), *connect, "--no-owner", "--exit-on-error",
             "--dbname", "tessera", str(dump)],
            check=True, capture_output=True,
        )  # fmt: skip
        return postgres

    yield copy
    for postgres in started:
        postgres.stop()


class Load:
    """Threads sending `requests` in a loop until stopped; every answer's status is counted
    by phase, and every 503 must carry Retry-After."""

    def __init__(self, url: str, calls: dict[str, dict[str, object]]) -> None:
        self.url, self.calls = url, calls
        self.phase = "before"
        self.seen: Counter[tuple[str, str, int]] = Counter()
        self.missing_retry_after: list[str] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(name,)) for name in calls]

    def _run(self, name: str) -> None:
        call = self.calls[name]
        session = requests.Session()
        while not self.stopping.is_set():
            try:
                answer = session.request(
                    str(call["method"]), self.url + str(call["path"]), timeout=30,
                    data=call.get("data"), headers=call.get("headers"), allow_redirects=False,
                )  # type: ignore[arg-type]  # fmt: skip
            except requests.RequestException as error:
                with self.lock:
                    self.seen[(self.phase, name, -1)] += 1
                print(f"{name}: {error!r}")
                continue
            with self.lock:
                self.seen[(self.phase, name, answer.status_code)] += 1
            if answer.status_code == 503 and "Retry-After" not in answer.headers:
                self.missing_retry_after.append(name)
            if answer.status_code >= 500 and answer.status_code != 503:
                print(f"{name}: {answer.status_code} {answer.text[:300]}")

    def statuses(self, phase: str, name: str) -> set[int]:
        with self.lock:
            seen = list(self.seen)
        return {status for p, n, status in seen if p == phase and n == name}

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)


@pytest.mark.django_db(transaction=True)
def test_requests_during_a_postgres_restart_get_503_and_service_resumes_without_restart(
    postgres_copy: Callable[[], Postgres],
) -> None:
    client, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    assert secret is not None
    operator = user_create(email="ops@example.com", password=PASSWORD, staff_role="administrator")
    admin = access_token(operator, "openid admin")
    basic = "Basic " + base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    database = postgres_copy()
    env = {
        **os.environ,
        "DATABASE_URL": database.url(),
        "IDP_WEB_WORKERS": "1",
        "IDP_LOG_LEVEL": "warning",
    }
    calls: dict[str, dict[str, object]] = {
        # Each needs the database: a client the process has not cached, a password check,
        # an admin API list.
        "token_unknown_client": {
            "method": "POST", "path": "/oauth/token",
            "data": {"grant_type": "client_credentials", "client_id": "nobody",
                     "client_secret": "x" * 40},
        },
        "token": {
            "method": "POST", "path": "/oauth/token",
            "data": {"grant_type": "client_credentials"}, "headers": {"Authorization": basic},
        },
        "admin_api": {
            "method": "GET", "path": "/api/v1/sessions",
            "headers": {"Authorization": f"Bearer {admin}"},
        },
    }  # fmt: skip
    with production_web_server(env) as (_, url), Load(url, calls) as load:
        wait_for(
            lambda: all(load.statuses("before", name) for name in calls),
            60,
            "every call answered once before the restart",
        )
        load.phase = "down"
        stopped = time.monotonic()
        database.stop()
        wait_for(
            lambda: load.statuses("down", "admin_api") - {200},
            60,
            "the admin API noticed PostgreSQL was down",
        )
        load.phase = "restarting"
        noticed = time.monotonic()
        database.start()
        load.phase = "after"
        started = time.monotonic()
        wait_for(
            lambda: all(load.statuses("after", name) - {503} for name in calls),
            60,
            "every call answered normally again after the restart",
        )
        recovered = time.monotonic()
    print(
        f"down_noticed_after_s={noticed - stopped:.2f} restart_s={started - noticed:.2f} "
        f"recovered_after_s={recovered - started:.2f} answers={dict(load.seen)}"
    )
    for phase, name, status in load.seen:
        assert status != -1, f"{name} lost its connection during {phase}"
        assert status < 500 or status == 503, f"{name} answered {status} during {phase}"
    assert not load.missing_retry_after, "a 503 without Retry-After"
    assert load.statuses("before", "admin_api") == {200}
    assert load.statuses("down", "admin_api") - {200} == {503}
    assert 200 in load.statuses("after", "admin_api")
    assert 200 in load.statuses("after", "token")
    # RFC 6749 §5.2 invalid_client, until the per-IP limit on failed client logins says 429.
    assert load.statuses("after", "token_unknown_client") - {401, 429, 503} == set()


@pytest.mark.parametrize("raised_in", ["view", "middleware"])
def test_a_database_error_is_one_warning_line_and_a_503(caplog, raised_in: str) -> None:
    request = RequestFactory().get("/api/v1/sessions")
    error = OperationalError('connection to server at "127.0.0.1" failed: Connection refused\n…')
    with caplog.at_level(logging.DEBUG):
        if raised_in == "view":
            response = UnavailableMiddleware(lambda request: HttpResponse())
            answer = response.process_exception(request, error)
        else:
            try:
                raise error
            except OperationalError:
                answer = server_error(request)
    assert answer is not None
    assert answer.status_code == 503
    assert answer["Retry-After"] == "5"
    assert json.loads(answer.content)["error"] == "temporarily_unavailable"
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.getMessage() == (
        'GET /api/v1/sessions refused with 503: connection to server at "127.0.0.1" failed: '
        "Connection refused"
    )
