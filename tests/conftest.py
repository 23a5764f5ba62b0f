"""Fixtures over the suite's real servers (started by tests/servers.py)."""

from __future__ import annotations

import email
import email.policy
import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import redis
from clickhouse_driver import Client
from django.conf import settings
from django.core.management.base import CommandError
from django.test import TransactionTestCase
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from apps.audit.clickhouse_schema import PARTITIONED_TABLES
from tests.servers import SERVERS, TestServers, _die_with_parent, wait_for

pytest_plugins = ["tests.rp", "tests.federation.upstream_tessera"]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
# The key the suite's Celery worker signs threat alert webhooks with (IDP_THREAT_WEBHOOK_SECRET).
THREAT_WEBHOOK_SECRET = "test-threat-webhook-secret-0123456789abcdef"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # the suite may run as root (CI); the page is our own
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# SQLSTATE 40P01: PostgreSQL aborted one side of a deadlock.
DEADLOCK_DETECTED = "40P01"


def _flush_retried_after_a_deadlock(teardown: Any) -> Any:
    """A transactional test's flush (one TRUNCATE of every table) can meet a write a server
    process of the test is still making after its answer — the journal's drain thread inserts
    into the outbox and its checkpoint in one statement — and PostgreSQL may pick the TRUNCATE
    as the deadlock's victim (the lock orders differ). The writer then has its rows and the
    flush, run again, empties them: retried a few times, never on any other error."""

    def flush(self: Any) -> None:
        for attempt in range(5):
            try:
                return teardown(self)
            except CommandError as error:
                cause = getattr(error.__cause__, "__cause__", None)
                if getattr(cause, "sqlstate", None) != DEADLOCK_DETECTED or attempt == 4:
                    raise

    return flush


TransactionTestCase._fixture_teardown = _flush_retried_after_a_deadlock(  # type: ignore[method-assign]
    TransactionTestCase._fixture_teardown
)


@pytest.fixture(scope="session")
def servers(request: pytest.FixtureRequest) -> TestServers:
    return request.config.stash[SERVERS]


@pytest.fixture(scope="session", autouse=True)
def _static_files() -> None:
    """Pages render through the hashed-manifest storage, as in production."""
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)


@pytest.fixture(scope="session")
def live_server(servers: TestServers, django_db_setup: None) -> Iterator[object]:
    """pytest-django's live server, minus its finder-based static handler: WhiteNoise in the
    middleware serves the collected, hashed files, exactly as the production server does."""
    from django.db import connections
    from pytest_django.live_server_helper import LiveServer

    # Django's threaded test server parks a thread per kept-alive client connection; with
    # persistent database connections each would hold one open past the test database's
    # teardown. gunicorn has no such threads, so this applies to the live server alone.
    connections.settings["default"]["CONN_MAX_AGE"] = 0
    server = LiveServer(f"localhost:{servers.web_port}", start=False)
    server.thread.static_handler = lambda handler: handler
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's, plus: this process's audit journal is drained and its thread's
    database connection closed before the test database is dropped."""
    from apps.core import journal

    yield
    with django_db_blocker.unblock():
        journal.shutdown()


@pytest.fixture(autouse=True)
def _journal_drained(django_db_blocker: Any) -> Iterator[None]:
    """Events a test journaled outside a transaction (core.journal) reach the outbox before
    its database is flushed, not in the next test's."""
    from apps.core import journal

    yield
    with django_db_blocker.unblock():
        journal.drain_now()


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> Iterator[None]:
    """Signing keys, clients and threat rules are cached per process; a test's rolled-back
    rows must not outlive it."""
    from apps.keys.keys import keys_cache_clear
    from apps.threat.ruleset import ruleset_cache_clear
    from apps.tokens.clients import clients_cache_clear

    keys_cache_clear()
    clients_cache_clear()
    ruleset_cache_clear()
    yield
    keys_cache_clear()
    clients_cache_clear()
    ruleset_cache_clear()


@pytest.fixture
def admin_client(db: None, admin_user: Any) -> Any:
    """pytest-django's, signed in as Tessera signs in: with a login session (its own
    force_login no longer opens one; tests/signin/browser.py)."""
    from django.test import Client

    from tests.signin.browser import force_sign_in

    client = Client()
    force_sign_in(client, admin_user)
    return client


def redis_start_again(servers: TestServers) -> None:
    """Starts the suite's Redis after a test stopped it, and closes this process's connections
    to Celery's result backend on the server that stopped.

    Left open, the pub/sub connection of Celery's result consumer (what AsyncResult.get()
    reads) sends its next SUBSCRIBE into the dead socket without an error; the task goes out,
    and a worker already back on the broker can publish the result before the consumer reads
    the socket, reconnects and subscribes again. That result is lost, and a later test waiting
    for a task's result times out (2 of 40 restarts under CPU load). Closed, the connection is
    opened again by the SUBSCRIBE itself, before the task is sent.
    """
    from idp.celery import app

    servers.redis.start()
    app.backend.client.connection_pool.disconnect()


@pytest.fixture(autouse=True)
def _cache_channel_current() -> Iterator[None]:
    """A test that stopped or swapped Redis leaves this process's cache channel subscribed
    again (apps.core.cache.bus: the revocation mirror and every cache's invalidations) before
    the next test: otherwise a later test meets a revocation status it cannot know, far from
    the cause. Waits for that state (it comes within the channel's 2 s backoff once Redis is
    back); fails the test after which it does not come."""
    from apps.core.cache import bus

    yield
    thread = bus._thread
    if thread is None or not thread.is_alive() or bus.current.is_set():
        return
    wait_for(bus.current.is_set, 30, f"this test left the cache channel down: {bus.problem}")


@pytest.fixture(autouse=True)
def _celery_app_unchanged() -> Iterator[None]:
    """A test that makes its own Celery app (a broker it owns) must not leave it the current
    app: every later test's tasks would go to that broker, stopped by then, and fail far from
    the cause (tests/redis_ha, tests/faults did). Fails the test that did it."""
    from celery import current_app

    from idp.celery import app

    yield
    assert current_app._get_current_object() is app, (
        "this test left its own Celery app current: create it with set_as_current=False"
    )


@pytest.fixture(autouse=True)
def _fresh_redis(servers: TestServers) -> None:
    """Each test starts with an empty application Redis (the broker's database is separate)."""
    if not servers.redis.running:  # a test that stopped Redis and failed before restarting it
        redis_start_again(servers)
    redis.Redis.from_url(servers.redis.url(0)).flushdb()


@pytest.fixture
def redis_client(servers: TestServers) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(servers.redis.url(0))
    yield client
    client.close()


@pytest.fixture
def clickhouse_client(servers: TestServers) -> Iterator[Client]:
    client = Client.from_url(servers.clickhouse.url())
    yield client
    client.disconnect()


@pytest.fixture(scope="session")
def audit_schema(servers: TestServers, django_db_setup: None) -> None:
    """The audit tables in the suite's ClickHouse (manage.py audit_migrate; a no-op when
    they are up to date)."""
    from django.core.management import call_command

    call_command("audit_migrate", stdout=io.StringIO())


@pytest.fixture
def empty_audit_store(
    servers: TestServers, audit_schema: None, clickhouse_client: Client
) -> Client:
    """The audit store pages read (ClickHouse merged with the outbox) holding no other test's
    events: ClickHouse running, its audit tables emptied (the outbox rolls back with each
    test). A test that restarts ClickHouse may see emptied rows again (tests/audit/conftest.py
    says why); the next test empties them anew."""
    if not servers.clickhouse.running:  # a test that stopped it and failed before restarting
        servers.clickhouse.start()
    for table in PARTITIONED_TABLES:
        clickhouse_client.execute(f"TRUNCATE TABLE {table}")
    return clickhouse_client


def _ping_through_the_suites_app(hostname: str) -> bool:
    from idp.celery import app

    return bool(app.control.ping(destination=[hostname], timeout=0.5))


class WorkerProcess:
    """A real `celery worker` process consuming from the suite's broker."""

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        name: str = "tessera-test",
        queue: str = "celery",
        ping: Callable[[str], bool] = _ping_through_the_suites_app,
    ) -> None:
        """`name` and `queue`: a second worker beside the suite's (another configuration,
        tests/audit/test_cluster.py) gets tasks sent to its own queue only. `ping`: how to
        reach it by host name (a worker on another broker: through a client of that broker,
        tests/faults)."""
        self.env, self.log, self.name, self.queue, self.ping = env, log, name, queue, ping
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        hostname = f"{self.name}-{os.getpid()}@localhost"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "idp", "worker", "--pool", "solo",
                 "--without-mingle", "--without-gossip", "--loglevel", "INFO", "-n", hostname,
                 "-Q", self.queue],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )  # fmt: skip

        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited:\n{self.log.read_text()[-2000:]}")
            try:
                return self.ping(hostname)
            except (RedisError, KombuOperationalError):  # a broker just restarted: not yet
                return False

        wait_for(answers, 90, "the Celery worker did not answer a ping")

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task, as in a crash or an OOM kill."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture(scope="session")
def celery_worker(
    servers: TestServers, django_db_setup: None, django_db_blocker: object
) -> Iterator[WorkerProcess]:
    """A worker process on the test database; tests that use it with the database must be
    `transaction=True` so that their rows are committed where the worker can see them."""
    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(settings.DATABASES["default"]["NAME"]),
        # Back-Channel Logout retries at once: a failing delivery ends in well under a second.
        "IDP_BACKCHANNEL_RETRY_BASE_SECONDS": "0",
        # Threat alert webhooks (tests/threat/test_alerts.py) are signed with this key and
        # retried at once.
        "IDP_THREAT_WEBHOOK_SECRET": THREAT_WEBHOOK_SECRET,
        "IDP_THREAT_WEBHOOK_RETRY_BASE_SECONDS": "0",
    }
    worker = WorkerProcess(env, servers.base / "celery-worker.log")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots and other files a person may want to look at after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise pytest.UsageError("chromium not found: run `make test`, which installs it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


class Mailbox:
    """What the suite's SMTP server (tests/smtp_server.py) received since this test began.

    `wait_for` polls the Maildir until a matching message is there and hands each message out
    once, oldest first: two tests, or two steps of one test, that mail the same address each
    get their own. Messages stored before the test began are never matched."""

    def __init__(self, maildir: Path) -> None:
        self.new = maildir / "new"  # the server renames each message into new/ once written
        self.seen = {entry.name for entry in self.new.iterdir()}  # earlier tests' messages
        self.taken: set[str] = set()

    def messages(self) -> list[EmailMessage]:
        """Every message received since the test began, oldest first."""
        return [message for _, message in self._received()]

    def _received(self) -> list[tuple[str, EmailMessage]]:
        received = []
        for entry in self.new.iterdir():
            if entry.name in self.seen:
                continue
            raw = entry.read_bytes()
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            received.append((entry.stat().st_mtime_ns, entry.name, parsed))
        received.sort(key=lambda item: (item[0], item[1]))
        return [(name, message) for _, name, message in received]

    def wait_for(
        self, *, to: str, subject_contains: str | None = None, timeout: float = 30
    ) -> EmailMessage:
        """The oldest message not yet handed out whose envelope recipient is `to` (and whose
        subject holds `subject_contains`), once it has arrived; AssertionError after
        `timeout` seconds naming what did arrive."""
        deadline = time.monotonic() + timeout
        while True:
            for key, message in self._received():
                if key in self.taken or not _addressed_to(message, to):
                    continue
                if subject_contains is not None and subject_contains not in message["Subject"]:
                    continue
                self.taken.add(key)
                return message
            if time.monotonic() > deadline:
                arrived = [(m["X-RcptTo"], m["Subject"]) for m in self.messages()]
                raise AssertionError(
                    f"no message to {to} with {subject_contains!r} in its subject within "
                    f"{timeout}s; arrived since the test began: {arrived}"
                )
            time.sleep(0.05)

    @staticmethod
    def text(message: EmailMessage) -> str:
        part = message.get_body(preferencelist=("plain",))
        assert part is not None, "the message has no text/plain part"
        return str(part.get_content())

    @staticmethod
    def html(message: EmailMessage) -> str:
        part = message.get_body(preferencelist=("html",))
        assert part is not None, "the message has no text/html part"
        return str(part.get_content())

    @classmethod
    def link(cls, message: EmailMessage, path_prefix: str) -> str:
        """The first URL in the text part under our issuer whose path starts with
        `path_prefix`."""
        start = settings.ISSUER + path_prefix
        for found in re.findall(r"https?://[^\s<>\"]+", cls.text(message)):
            url = found.rstrip(".,;:!?)'")  # the sentence's punctuation, not the link's
            if url.startswith(start):
                return str(url)
        raise AssertionError(f"no link starting with {start} in:\n{cls.text(message)}")


def _addressed_to(message: EmailMessage, to: str) -> bool:
    envelope = [a.strip().lower() for a in str(message["X-RcptTo"] or "").split(",")]
    return to.lower() in envelope


@pytest.fixture
def mailbox(servers: TestServers, celery_worker: WorkerProcess) -> Mailbox:
    """The messages the suite's SMTP server receives during the test (class Mailbox); the
    Celery worker that delivers them is running. Tests that send mail must be
    `@pytest.mark.django_db(transaction=True)`: mail is queued when the transaction commits."""
    if not servers.smtp.running:  # a test that stopped it and failed before starting it again
        servers.smtp.start()
    # Messages that tests without a worker queued are delivered when the worker starts: they
    # are taken from the broker's queue before this test's messages count.
    broker = redis.Redis.from_url(servers.redis.url(1))
    try:
        wait_for(lambda: broker.llen("celery") == 0, 60, "the worker did not drain the queue")
    finally:
        broker.close()
    return Mailbox(servers.smtp.maildir)
