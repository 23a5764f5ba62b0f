"""The embedded default (SQLite, no DATABASE_URL) under 16 clients writing at once (issue 20,
"Faults"): sign-ins through the hosted page (password form with its CSRF token), code
exchanges and refreshes for about 20 seconds against `python -m idp.web` with two worker
processes. What must hold: no 5xx, and no "database is locked" anywhere in the server's log
(idp/settings.py `_database`: WAL, a 20 s busy timeout, and BEGIN IMMEDIATE so that writers
queue for the lock instead of failing when one upgrades a read transaction).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import requests
from django.conf import settings

from tests.faults.conftest import web_server
from tests.rp import PASSWORD, REDIRECT_URI, Browser
from tests.servers import ROOT, Redis
from tests.tokens.conftest import authorize_params, new_pkce, query_of

CLIENTS = 16
SECONDS = 20.0
SETUP = f"""
import json
from apps.accounts.services import user_create
from apps.threat.models import ThreatRule
from apps.tokens.services import client_create
# Sixteen accounts signing in from one address look like a password spray, and the rules
# rightly ask each for a second factor (tests/threat); here only the writes are measured.
ThreatRule.objects.update(enabled=False)
client, secret = client_create(
    name="RP", redirect_uris=["{REDIRECT_URI}"],
    grant_types=["authorization_code", "refresh_token"], skip_consent=True,
)
for n in range({CLIENTS}):
    user_create(email=f"person{{n}}@example.com", password="{PASSWORD}")
print(json.dumps({{"client_id": client.client_id, "secret": secret}}))
"""


def _embedded_env(data_dir: Path, redis: Redis) -> dict[str, str]:
    """The suite's settings removed (as tests/e2e/test_embedded_run.py does): no DATABASE_URL,
    so SQLite in IDP_DATA_DIR. A Redis of the test's own stands in for the bundled one."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IDP_", "DATABASE_URL", "REDIS_URL", "CELERY_", "CLICKHOUSE_URL"))
    }
    return {
        **env,
        "IDP_DATA_DIR": str(data_dir),
        "REDIS_URL": redis.url(0),
        "CELERY_BROKER_URL": redis.url(1),
        "IDP_WEB_WORKERS": "2",  # two processes writing to one file, as `make run` starts
        # Every client is on loopback: the limits would answer 429 long before SQLite is
        # tried (they are what tests/ratelimit proves).
        "IDP_RATELIMIT_ALLOW": "127.0.0.0/8",
        "IDP_LOGIN_SESSION_LIMIT": "1000",
        # The pages' static files as the suite collected them (tests/conftest.py), where
        # `make run` would collect them into IDP_DATA_DIR itself.
        "IDP_STATIC_ROOT": str(settings.STATIC_ROOT),
    }


class Traffic:
    """One thread per client: sign in, exchange the code, refresh twice; again until the time
    is up. Counts every answer by step and status."""

    def __init__(self, url: str, client_id: str, secret: str) -> None:
        self.url, self.client = url, (client_id, secret)
        self.seen: Counter[tuple[str, int]] = Counter()
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + SECONDS
        self.stopped_on: list[str] = []  # pages a sign-in stopped on, for the failure message

    def count(self, step: str, status: int) -> int:
        with self.lock:
            self.seen[(step, status)] += 1
        return status

    def run(self, n: int) -> None:
        while time.monotonic() < self.deadline:
            browser = Browser(self.url)
            pkce = new_pkce()
            query = urlencode(authorize_params(self.client[0], pkce))
            answer = browser.visit(
                f"{self.url}/oauth/authorize?{query}", email=f"person{n}@example.com"
            )
            browser.http.close()
            if self.count("sign-in", answer.status_code) != 302:
                self.stopped_on.append(f"{answer.url} {answer.status_code} {answer.text[:3000]}")
                continue
            code = query_of(answer.headers["Location"])["code"]
            tokens = requests.post(
                f"{self.url}/oauth/token",
                data={"grant_type": "authorization_code", "code": code,
                      "redirect_uri": REDIRECT_URI, "code_verifier": pkce.verifier},
                auth=self.client, timeout=60,
            )  # fmt: skip
            if self.count("code", tokens.status_code) != 200:
                continue
            refresh = tokens.json()["refresh_token"]
            for _ in range(2):
                renewed = requests.post(
                    f"{self.url}/oauth/token",
                    data={"grant_type": "refresh_token", "refresh_token": refresh},
                    auth=self.client, timeout=60,
                )  # fmt: skip
                if self.count("refresh", renewed.status_code) != 200:
                    break
                refresh = renewed.json()["refresh_token"]


def test_sixteen_clients_writing_at_once_get_no_5xx_and_no_database_is_locked(
    own_redis: Redis, tmp_path: Path
) -> None:
    env = _embedded_env(tmp_path / "var", own_redis)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True)
    made = subprocess.run(
        [*manage, "shell", "-c", SETUP], cwd=ROOT, env=env, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    client = json.loads(made.stdout.strip().splitlines()[-1])
    log = tmp_path / "web.log"
    with web_server(env, log) as (process, url):
        traffic = Traffic(url, client["client_id"], client["secret"])
        threads = [threading.Thread(target=traffic.run, args=(n,)) for n in range(CLIENTS)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(SECONDS + 120)
        elapsed = time.monotonic() - started
        assert process.poll() is None
    seen = dict(sorted(traffic.seen.items()))
    print(f"embedded_writers={CLIENTS} seconds={elapsed:.1f} answers={seen}")
    assert traffic.stopped_on == [], traffic.stopped_on[:1]
    assert not any(thread.is_alive() for thread in threads)
    assert [key for key in seen if key[1] >= 500] == [], seen
    text = log.read_text(errors="replace")
    assert "database is locked" not in text
    assert "Traceback" not in text
    # every step ran, and each succeeded as the protocol says
    assert {step for step, status in seen if status in (200, 302)} == {
        "sign-in",
        "code",
        "refresh",
    }
    assert {key for key in seen if key[1] not in (200, 302)} == set(), seen
