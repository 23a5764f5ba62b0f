"""The audit event journal (issue 11, HashiCorp Vault's audit model): an event recorded
outside a transaction is appended before the response, reaches the outbox exactly once —
across drains, shipping, SIGKILL, replays racing each other and fork — and a request whose
event cannot be appended is refused with 503."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from django.test import RequestFactory

from apps.core import journal
from apps.core.errors import AuditUnavailable
from apps.core.events import EventType, emit
from apps.core.middleware import UnavailableMiddleware
from apps.core.models import JournalCheckpoint, SecurityEvent
from apps.tokens.services import client_create
from tests.servers import production_web_server, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _journal_dir() -> Path:
    return Path(django_settings.AUDIT_JOURNAL_DIR)


def _own_files() -> list[Path]:
    return sorted(_journal_dir().glob(f"{os.getpid()}-*{journal.SUFFIX}"))


def _count(event_ids: list[str]) -> Counter[str]:
    rows = SecurityEvent.objects.filter(id__in=event_ids).values_list("id", flat=True)
    return Counter(str(event_id) for event_id in rows)


@pytest.fixture
def child_env(servers) -> dict[str, str]:
    """This suite's settings, on the test database, for a child Django process."""
    name = django_settings.DATABASES["default"]["NAME"]
    return {**os.environ, "DATABASE_URL": servers.postgres.url(name)}


# A child that journals events with no drain thread (its records stay in its file), prints
# their ids, drains the first `drained` of them itself if asked, and waits to be killed.
_CHILD = """
import json, os, sys, time
import django
django.setup()
from apps.core import journal
journal._Journal.start = lambda self: None  # no drain thread: the records stay in the file
from apps.core.events import EventType, emit
total, drained = int(sys.argv[1]), int(sys.argv[2])
ids = []
for i in range(total):
    ids.append(str(emit(EventType.LOGOUT, metadata={"n": i})))
    if i + 1 == drained:
        journal.drain_now()
print(json.dumps({"ids": ids, "journal": journal._live.current.name}), flush=True)
time.sleep(600)
"""


def _killed_child(env: dict[str, str], total: int, drained: int = 0) -> tuple[list[str], str]:
    """A process that journaled `total` events (the first `drained` moved to the outbox) and
    was then SIGKILLed; returns the events' ids and its journal's name."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(total), str(drained)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    line = child.stdout.readline()
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    written = json.loads(line)
    return written["ids"], written["journal"]


@pytest.mark.django_db(transaction=True)
def test_an_event_outside_a_transaction_is_appended_then_drained_within_the_window() -> None:
    appended = time.monotonic()
    event = emit(EventType.LOGOUT, metadata={"test": "drain"})
    event_id = str(event)
    # Appended before emit() returned: the record is in this process's journal file.
    assert any(str(event) in path.read_text() for path in _own_files())
    wait_for(lambda: _count([event_id]), 10, "the drain thread did not move the event")
    elapsed_ms = (time.monotonic() - appended) * 1000
    print(f"journal_drain_latency_ms={elapsed_ms:.1f}")  # ≤ 50 ms on an idle machine
    assert _count([event_id]) == {event_id: 1}
    assert SecurityEvent.objects.get(id=event_id).metadata == {"test": "drain"}


@pytest.mark.django_db
def test_an_event_inside_a_transaction_is_inserted_in_it_not_journaled() -> None:
    live = journal._live
    before = [path.stat().st_size for path in _own_files()]
    event_id = emit(EventType.LOGOUT)  # pytest-django's transaction is open
    assert SecurityEvent.objects.filter(id=event_id).exists()
    assert [path.stat().st_size for path in _own_files()] == before
    assert journal._live is live


@pytest.mark.django_db(transaction=True)
def test_with_the_journal_off_an_event_outside_a_transaction_is_inserted_at_once(
    settings,
) -> None:
    settings.AUDIT_JOURNAL = False  # IDP_AUDIT_JOURNAL=off
    before = [path.stat().st_size for path in _own_files()]
    event_id = emit(EventType.LOGOUT)
    assert SecurityEvent.objects.filter(id=event_id).exists()  # no wait: committed
    assert [path.stat().st_size for path in _own_files()] == before


@pytest.mark.django_db(transaction=True)
def test_a_drained_record_is_never_inserted_again_even_after_shipping_removed_it() -> None:
    event_ids = [str(emit(EventType.LOGOUT, metadata={"n": n})) for n in range(5)]
    journal.drain_now()
    assert _count(event_ids) == dict.fromkeys(event_ids, 1)
    # The shipper moved them to ClickHouse and deleted them from the outbox; then this process
    # lost what it knew it had drained, as when a COMMIT's answer is lost with the connection
    # (a replayer of a process that died after its COMMIT knows nothing either: see the SIGKILL
    # test below): the checkpoint, committed with the rows, still says.
    SecurityEvent.objects.filter(id__in=event_ids).delete()
    live = journal._live
    assert live is not None
    assert live.current is not None
    live.current.drained = 0
    live.uncertain = True  # what a failed drain leaves: ask the checkpoint
    journal.drain_now()
    assert _count(event_ids) == {}
    checkpoint = JournalCheckpoint.objects.get(journal=live.current.name)
    assert checkpoint.drained_bytes == live.current.size


@pytest.mark.django_db(transaction=True)
def test_text_beyond_ascii_arrives_as_given_and_a_lone_surrogate_as_a_replacement() -> None:
    journal.drain_now()
    event = emit(
        EventType.LOGIN_FAILED,
        success=False,
        error_message="mot de passe erroné \u2028 \n\r end",
        metadata={"name": "Zoë 日本", 7: "int key"},
        resource_id="bad \ud800 half",  # what no database takes as text
    )
    journal.drain_now()
    row = SecurityEvent.objects.get(id=event)
    assert row.error_message == "mot de passe erroné \u2028 \n\r end"
    assert row.metadata == {"name": "Zoë 日本", "7": "int key"}
    assert row.resource_id == "bad ? half"


@pytest.mark.django_db(transaction=True)
def test_a_record_the_database_refuses_is_logged_and_the_rest_still_arrive(caplog) -> None:
    journal.drain_now()
    good = str(emit(EventType.LOGOUT))
    refused_event = emit(EventType.LOGOUT, resource_type="x" * 65)  # the column holds 64
    refused = str(refused_event)
    after = str(emit(EventType.LOGOUT))
    with caplog.at_level(logging.ERROR, logger="tessera.audit"):
        journal.drain_now()
    assert _count([good, refused, after]) == {good: 1, after: 1}
    [record] = [r for r in caplog.records if refused in r.getMessage()]
    assert "refused by the database" in record.getMessage()


@pytest.mark.django_db(transaction=True)
def test_a_killed_process_journal_is_replayed_exactly_once_from_its_checkpoint(
    child_env,
) -> None:
    # 10 events journaled, the first 4 moved to the outbox (and then shipped away), SIGKILL.
    event_ids, name = _killed_child(child_env, 10, drained=4)
    assert _count(event_ids[:4]) == dict.fromkeys(event_ids[:4], 1)
    SecurityEvent.objects.filter(id__in=event_ids[:4]).delete()  # shipped

    journal.replay_dead()  # (or this process's drain thread did it first: the same end state)

    wait_for(lambda: not (_journal_dir() / name).exists(), 30, "the dead journal stayed")
    assert _count(event_ids) == dict.fromkeys(event_ids[4:], 1)
    assert not JournalCheckpoint.objects.filter(journal=name).exists()
    assert journal.replay_dead() == 0  # nothing left for a second replayer


# Replays the directory's dead journals when the file `go` appears; prints how many it did.
_REPLAYER = """
import os, sys, time
import django
django.setup()
from apps.core import journal
from django.db import connection
connection.ensure_connection()
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
print(journal.replay_dead(), flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_two_replayers_racing_on_dead_journals_move_each_event_once(child_env, tmp_path) -> None:
    dead = [_killed_child(child_env, 20) for _ in range(4)]
    event_ids = [event_id for ids, _ in dead for event_id in ids]
    go = tmp_path / "go"
    replayers = [
        subprocess.Popen(
            [sys.executable, "-c", _REPLAYER, str(go)],
            cwd=ROOT,
            env=child_env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for replayer in replayers:  # both set up and connected: the race starts at the same line
        assert replayer.stdout is not None
        assert replayer.stdout.readline().strip() == "ready"
    go.touch()
    replayed = sum(int(p.communicate(timeout=60)[0]) for p in replayers)

    wait_for(
        lambda: not any((_journal_dir() / name).exists() for _, name in dead),
        30,
        "dead journals stayed",
    )
    assert replayed <= len(dead)  # the rest, if any, this process's drain thread took
    assert _count(event_ids) == dict.fromkeys(event_ids, 1)


@pytest.mark.django_db(transaction=True)
def test_a_forked_child_journals_into_its_own_file_not_its_parents() -> None:
    parent = emit(EventType.LOGOUT)
    parent_event = str(parent)
    live = journal._live
    assert live is not None
    assert live.current is not None
    parent_file = live.current.path
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: journal one event, report, die without draining
        try:
            os.close(reader)
            journal._Journal.start = lambda self: None  # type: ignore[method-assign]
            event_id = str(emit(EventType.LOGOUT))
            child = journal._live
            assert child is not None
            assert child.current is not None
            os.write(writer, json.dumps([event_id, str(child.current.path)]).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        child_event, child_file = json.loads(pipe.read())
    os.waitpid(pid, 0)

    assert Path(child_file) != parent_file
    assert Path(child_file).name.startswith(f"{pid}-")
    assert child_event not in parent_file.read_text()
    assert str(parent) in parent_file.read_text()
    journal.replay_dead()  # the child died: its journal is replayed (by this or the thread)
    wait_for(lambda: not Path(child_file).exists(), 30, "the child's journal stayed")
    journal.drain_now()
    child_id = str(uuid.UUID(child_event))
    assert _count([parent_event, child_id]) == {parent_event: 1, child_id: 1}


@pytest.fixture
def unwritable_journal(settings, tmp_path) -> Iterator[None]:
    """The journal directory cannot be created (its path is a file): no append can succeed."""
    journal.shutdown()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.AUDIT_JOURNAL_DIR = blocker / "journal"
    yield
    journal.shutdown()


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.mark.django_db(transaction=True)
def test_a_token_whose_event_cannot_be_appended_is_refused_with_503(
    client, unwritable_journal, caplog
) -> None:
    job, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    with caplog.at_level(logging.ERROR):
        response = client.post(
            "/oauth/token",
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=_basic(job.client_id, secret),
        )
    # RFC 6749 §5.2 names temporarily_unavailable for authorize; the token endpoint says the same.
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "temporarily_unavailable"
    assert response["Retry-After"]
    assert "access_token" not in response.json()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "/oauth/token" in errors[0].getMessage()


def test_a_page_whose_event_cannot_be_appended_shows_the_error_page_with_503() -> None:
    request = RequestFactory().get("/account/")
    middleware = UnavailableMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
    response = middleware.process_exception(request, AuditUnavailable("disk full"))
    assert response is not None
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert b"503" in response.content


# Appends events under a file-size limit until one is refused: a disk filling up mid-record.
_FILLER = """
import json, resource, signal
import django
django.setup()
from apps.core import journal
journal._Journal.start = lambda self: None
from apps.core.errors import AuditUnavailable
from apps.core.events import EventType, emit
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(2) instead of death
resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))
ids = []
try:
    while True:
        ids.append(str(emit(EventType.LOGOUT, metadata={"pad": "x" * 100})))
except AuditUnavailable as error:
    refused = str(error)
content = journal._live.current.path.read_text()
print(json.dumps({"ids": ids, "refused": refused, "content": content}))
"""


@pytest.mark.django_db(transaction=True)  # the child drains its events at exit
def test_a_journal_that_fills_up_refuses_the_event_and_keeps_no_torn_record(child_env) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FILLER], cwd=ROOT, env=child_env,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    written = json.loads(result.stdout)
    assert "cannot append" in written["refused"]
    content = written["content"]
    assert content.endswith("\n")  # the short write was cut back off
    lines = content.splitlines()
    assert [json.loads(line)["id"] for line in lines] == written["ids"]


def _worker_pids(master: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == master:
                pids.append(int(entry.name))
    return pids


def _journals_of(pid: int) -> list[Path]:
    return list(_journal_dir().glob(f"{pid}-*{journal.SUFFIX}"))


def _journaled_workers(server: int) -> list[int]:
    """The server's worker processes: its children that opened an audit journal."""
    return [pid for pid in _worker_pids(server) if _journals_of(pid)]


@pytest.mark.django_db(transaction=True)
def test_every_token_issued_in_a_burst_arrives_once_though_a_worker_is_killed(
    child_env,
) -> None:
    # Issue 11: SIGKILL a web process in the middle of a burst of tokens; every issued token's
    # event arrives once (the killed worker's journal is replayed by the worker that replaces
    # it, or by any other process's periodic replay).
    job, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    env = {**child_env, "IDP_WEB_WORKERS": "2", "IDP_LOG_LEVEL": "warning"}
    with production_web_server(env) as (server, url):
        wait_for(lambda: len(_journaled_workers(server.pid)) == 2, 60, "two workers did not start")
        issued: list[str] = []
        victims: list[Path] = []  # the killed worker's journal
        killed = threading.Event()
        lock = threading.Lock()

        def token(n: int) -> None:
            if n == 100 and not killed.is_set():
                victim = _journaled_workers(server.pid)[0]
                victims.extend(_journals_of(victim))
                os.kill(victim, signal.SIGKILL)
                killed.set()
            try:
                response = requests.post(
                    f"{url}/oauth/token",
                    data={"grant_type": "client_credentials"},
                    headers={"Authorization": _basic(job.client_id, secret)},
                    timeout=30,
                )
            except requests.RequestException:
                return  # on the killed worker: no token, so no event owed
            if response.status_code == 200:
                with lock:
                    issued.append(response.headers["X-Request-ID"])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(token, range(300)))
        assert killed.is_set()
        assert victims  # it had opened its journal at start (idp/wsgi.py)
        assert len(issued) > 150

        def arrived() -> Counter[str]:
            rows = SecurityEvent.objects.filter(
                event_type=EventType.TOKEN_ISSUED, request_id__in=issued
            ).values_list("request_id", flat=True)
            return Counter(rows)

        wait_for(lambda: len(arrived()) == len(issued), 60, "issued tokens' events missing")
        # Replayed (by the worker that replaced it, or another process) and removed.
        wait_for(lambda: not any(p.exists() for p in victims), 60, "the dead journal stayed")
        assert arrived() == dict.fromkeys(issued, 1)
        print(f"burst_tokens_issued={len(issued)} events_arrived_once={len(arrived())}")


@pytest.mark.django_db(transaction=True)
def test_a_graceful_stop_drains_the_workers_journal_and_removes_it(child_env) -> None:
    # Issue 11: graceful shutdown drains before exit. granian's workers leave through
    # multiprocessing (os._exit, no atexit): the journal drains in its exit finalizers.
    job, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    env = {**child_env, "IDP_WEB_WORKERS": "1", "IDP_LOG_LEVEL": "warning"}
    with production_web_server(env) as (server, url):
        wait_for(lambda: len(_journaled_workers(server.pid)) == 1, 60, "no worker journal")
        files = [path for pid in _journaled_workers(server.pid) for path in _journals_of(pid)]
        issued = []
        for _ in range(5):
            response = requests.post(
                f"{url}/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": _basic(job.client_id, secret)},
                timeout=30,
            )
            assert response.status_code == 200
            issued.append(response.headers["X-Request-ID"])
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
        assert [path for path in files if path.exists()] == []  # drained by the worker itself
        arrived = SecurityEvent.objects.filter(
            event_type=EventType.TOKEN_ISSUED, request_id__in=issued
        ).count()
        assert arrived == len(issued)


@pytest.mark.django_db(transaction=True)
def test_a_replayed_journal_closes_its_descriptor_once(tmp_path, monkeypatch) -> None:
    # Closed twice, the second close shut whatever another thread had opened under the same
    # number meanwhile: a worker starting after one was SIGKILLed failed to import a module
    # (EBADF) while its drain thread replayed the dead journal (tests/faults found it).
    dead = tmp_path / f"1234-dead{journal.SUFFIX}"
    dead.write_bytes(b"")
    closed: list[int] = []
    real_close = os.close

    def close(fd: int) -> None:
        closed.append(fd)
        real_close(fd)

    monkeypatch.setattr(journal.os, "close", close)
    assert journal.replay_dead(tmp_path) == 1
    assert not dead.exists()
    assert len(closed) == 1, closed
