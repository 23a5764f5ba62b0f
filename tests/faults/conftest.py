"""What the fault tests share: the production web server with its log kept, a Redis of the
test's own (to kill without disturbing the suite's), a Celery worker on a broker of the test's
own (to kill, or to cut off, without disturbing the suite's worker), and a person signing in
through the web server as a browser does."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from celery import Celery
from django.conf import settings
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from tests.rp import REDIRECT_URI, Browser, RegisteredClient
from tests.servers import (
    ROOT,
    Redis,
    TestServers,
    _die_with_parent,
    _healthz_answers,
    free_port,
    wait_for,
)
from tests.tokens.conftest import authorize_params, new_pkce, query_of


@contextlib.contextmanager
def web_server(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """tests.servers.production_web_server, with its output kept in `log` (what the fault
    tests read for errors) and its issuer its own URL: (process, base URL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "idp.web"],
            cwd=ROOT, env={"IDP_ISSUER": url, **env, "PORT": str(port)},
            stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )  # fmt: skip
    try:
        wait_for(
            lambda: process.poll() is not None or _healthz_answers(url),
            90,
            f"{url} did not start",
        )
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        yield process, url
    finally:
        process.terminate()
        process.wait(60)


@pytest.fixture
def test_database_env(servers: TestServers) -> dict[str, str]:
    """The suite's environment, on the test database (where this test's committed rows are:
    tests using it are `django_db(transaction=True)`)."""
    name = settings.DATABASES["default"]["NAME"]
    return {**os.environ, "DATABASE_URL": servers.postgres.url(name)}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Redis]:
    """A Redis of this test's own, started; killed afterwards."""
    server = Redis(tmp_path)
    server.start()
    yield server
    server.stop(signal.SIGKILL)


def broker_app(url: str) -> Celery:
    """A Celery client of a broker the test owns: sends tasks there, reads their results
    there (Tessera's result backend is its broker), pings the workers on it."""
    app = Celery("faults", broker=url, backend=url)
    app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")
    return app


class Worker:
    """A real `celery worker` process (the suite's command line, tests/conftest.py
    WorkerProcess) whose broker is `broker_url`: killing it leaves the suite's worker alone."""

    def __init__(self, env: dict[str, str], log: Path, broker_url: str) -> None:
        self.env = {**env, "CELERY_BROKER_URL": broker_url}
        self.log, self.app = log, broker_app(broker_url)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        hostname = f"faults-{uuid.uuid4().hex[:8]}@localhost"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "idp", "worker", "--pool", "solo",
                 "--without-mingle", "--without-gossip", "--loglevel", "INFO", "-n", hostname],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )  # fmt: skip

        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited:\n{self.log.read_text()[-2000:]}")
            try:
                return bool(self.app.control.ping(destination=[hostname], timeout=0.5))
            except (RedisError, KombuOperationalError):
                return False

        wait_for(answers, 90, "the Celery worker did not answer a ping")
        return self

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task, as in a crash or an OOM kill."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    """Workers a test starts (append them); each stopped afterwards."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


@dataclass
class SignedIn:
    """A person signed in through the web server: their browser and the client's tokens."""

    browser: Browser
    tokens: dict[str, Any]


def sign_in_through(url: str, rp: RegisteredClient, *, email: str, password: str) -> SignedIn:
    """The hosted sign-in page (password form with its CSRF token), then the code exchange
    by the client, all over HTTP against the web server at `url`."""
    browser = Browser(url)
    pkce = new_pkce()
    query = urlencode(authorize_params(rp.client_id, pkce))
    answer = browser.visit(f"{url}/oauth/authorize?{query}", email=email, password=password)
    assert answer.is_redirect, (answer.status_code, answer.text[:500])
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI), location
    code = query_of(location)["code"]
    tokens = requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
              "code_verifier": pkce.verifier},
        auth=(rp.client_id, rp.client_secret or ""), timeout=30,
    )  # fmt: skip
    assert tokens.status_code == 200, tokens.text
    return SignedIn(browser, tokens.json())
