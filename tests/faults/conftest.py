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
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
import pytest
import requests
from celery import Celery
from celery.result import AsyncResult
from django.conf import settings
from django.utils import timezone

from apps.accounts.services import user_create
from apps.keys import keys
from apps.tokens.logout_propagation import STALLED_AFTER
from apps.tokens.models import BackchannelLogoutDelivery
from apps.tokens.services import client_create
from tests.conftest import WorkerProcess
from tests.rp import PASSWORD, REDIRECT_URI, Browser, RegisteredClient
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


class Broker:
    """A Celery client of a broker the test owns: sends tasks there, reads their results
    there (Tessera's result backend is its broker), pings the workers on it. Its read and
    write URLs name that broker: Celery prefers CELERY_BROKER_URL in the environment (the
    suite's broker) to an app's own broker_url, but not to these."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Not the current app: it would stay current after the test, and every later task of
        # the suite would go to this broker, stopped by then (tests/redis_ha had this too).
        self.app = Celery("faults", backend=url, set_as_current=False)
        self.app.conf.update(
            broker_read_url=url, broker_write_url=url, task_serializer="json",
            accept_content=["json"], result_serializer="json",
        )  # fmt: skip

    def send(self, name: str, *args: Any) -> AsyncResult[Any]:
        return self.app.send_task(name, args=args, ignore_result=False)  # its answer is read

    def ping(self, hostname: str) -> bool:
        return bool(self.app.control.ping(destination=[hostname], timeout=0.5))


class Worker(WorkerProcess):
    """The suite's worker process (tests/conftest.py) on a broker of its own, `broker_url`:
    killing it leaves the suite's worker alone."""

    def __init__(self, env: dict[str, str], log: Path, broker_url: str) -> None:
        self.broker = Broker(broker_url)
        super().__init__(
            {**env, "CELERY_BROKER_URL": broker_url}, log,
            name=f"faults-{uuid.uuid4().hex[:8]}", ping=self.broker.ping,
        )  # fmt: skip

    def start(self) -> Worker:
        super().start()
        return self


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    """Workers a test starts (append them); each stopped afterwards."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def relying_party(*, grant_types: list[str], backchannel_logout_uri: str = "") -> RegisteredClient:
    """A first-party client (no consent page) and Ada, who signs in to it with PASSWORD."""
    client, secret = client_create(
        name="RP", redirect_uris=[REDIRECT_URI], grant_types=grant_types,
        skip_consent=True, backchannel_logout_uri=backchannel_logout_uri,
    )  # fmt: skip
    user_create(email="ada@example.com", password=PASSWORD)
    return RegisteredClient(client.client_id, secret)


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


class LogoutReceiver:
    """A relying party's back-channel logout endpoint (Back-Channel Logout 1.0 §2.5): keeps
    every logout_token POSTed to it, in order, and answers 200 — at once, or, while `hold` is
    set, only once it is cleared (a relying party slow to answer)."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.received = threading.Condition()
        self.hold = threading.Event()
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.received:
                    receiver.tokens.append(parse_qs(body.decode())["logout_token"][0])
                    receiver.received.notify_all()
                if receiver.hold.is_set():
                    receiver.released.wait(60)
                with contextlib.suppress(OSError):  # the sender may be dead by now
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/backchannel-logout"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for_tokens(self, count: int, timeout: float = 60) -> list[str]:
        with self.received:
            if not self.received.wait_for(lambda: len(self.tokens) >= count, timeout):
                raise AssertionError(f"{len(self.tokens)} logout tokens, not {count}")
            return list(self.tokens)

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def logout_receiver() -> Iterator[LogoutReceiver]:
    receiver = LogoutReceiver()
    yield receiver
    receiver.close()


def logout_claims(token: str) -> dict[str, Any]:
    """A Logout Token's claims, verified as a relying party does (§2.6) against the keys in
    the database the web server signs with."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "logout+jwt"
    keys.keys_cache_clear()  # the web server may have made them since this process looked
    key = keys.verification_key(header["kid"])
    assert key is not None
    claims: dict[str, Any] = jwt.decode(
        token, key.public_key, algorithms=[key.alg], options={"verify_aud": False,
        "verify_iss": False, "require": ["iss", "aud", "iat", "exp", "jti", "events", "sid"]},
    )  # fmt: skip
    return claims


SWEEP = "apps.tokens.tasks.redeliver_stalled_backchannel_logouts"


def log_out(url: str, signed: SignedIn) -> float:
    """RP-Initiated Logout 1.0 §2 with the id_token_hint of this very session (no confirmation
    page); returns how long the signed-out page took."""
    started = time.monotonic()
    answer = signed.browser.http.get(
        f"{url}/oauth/logout", params={"id_token_hint": signed.tokens["id_token"]}, timeout=60
    )
    elapsed = time.monotonic() - started
    assert answer.status_code == 200, answer.text[:500]
    return elapsed


def session_id(signed: SignedIn) -> str:
    """The login session the tokens were issued in (the ID token's `sid`)."""
    return str(jwt.decode(signed.tokens["id_token"], options={"verify_signature": False})["sid"])


def delivery_of(sid: str) -> BackchannelLogoutDelivery:
    return BackchannelLogoutDelivery.objects.get(session_id=sid)


def ten_minutes_pass() -> int:
    """What beat's sweep finds once STALLED_AFTER has passed: every pending delivery last
    touched that long ago (returns how many)."""
    stalled_at = timezone.now() - STALLED_AFTER - timedelta(seconds=1)
    pending = BackchannelLogoutDelivery.objects.filter(
        status=BackchannelLogoutDelivery.Status.PENDING
    )
    return pending.update(updated_at=stalled_at)
