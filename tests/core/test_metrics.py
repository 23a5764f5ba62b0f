"""/metrics (issue 19, "Observability"; apps/core/metrics.py and metrics_view.py).

The production server (`python -m idp.web`, granian with two worker processes) is scraped
after requests reached both workers, and its counters add up across them; a scrape without
the bearer token is refused; a dependency that is down is reported, never fails the scrape.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests
from django.test import Client
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from apps.core import metrics
from apps.core.events import EventType, emit
from apps.tokens.services import client_create
from tests import servers as suite
from tests.conftest import redis_start_again
from tests.servers import production_web_server
from tests.tokens.conftest import basic

ROOT = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def token_file(tmp_path: Path) -> tuple[Path, str]:
    token = secrets.token_urlsafe(32)
    path = tmp_path / "metrics-token"
    path.write_text(token + "\n")
    return path, token


def _workers_that_served_jwks(directory: Path) -> int:
    """How many processes' counter files count a JWKS request (each file is one process's)."""
    served = 0
    for path in directory.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)]):
            if any(s.labels.get("route") == "tokens:jwks" and s.value for s in family.samples):
                served += 1
                break
    return served


@pytest.mark.django_db(transaction=True)
def test_two_web_workers_counters_add_up_in_one_scrape(
    servers: suite.TestServers, settings, tmp_path: Path, token_file: tuple[Path, str]
) -> None:
    job, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(settings.DATABASES["default"]["NAME"]),
        "IDP_DATA_DIR": str(data_dir),
        "IDP_AUDIT_JOURNAL_DIR": str(tmp_path / "journal"),
        "IDP_WEB_WORKERS": "2",
        "IDP_LOG_LEVEL": "warning",
        "IDP_METRICS_TOKEN_FILE": str(token_file[0]),
    }
    metrics_dir = data_dir / "run" / "metrics"
    stale = metrics_dir / "web-999999999"  # a server that is gone (no such pid)
    stale.mkdir(parents=True)
    (stale / "counter_1.db").write_bytes(b"left by a previous run")
    with production_web_server(env) as (server, url):
        assert not stale.exists()  # removed at start
        web_dir = metrics_dir / f"web-{server.pid}"  # idp.web execs granian: one pid
        assert web_dir.is_dir()
        session = requests.Session()

        def token(_: int) -> int:
            return session.post(
                f"{url}/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic(job.client_id, secret)},
                timeout=30,
            ).status_code

        def jwks(_: int) -> int:
            return requests.get(f"{url}/oauth/jwks", timeout=30).status_code

        # Requests in parallel until both workers have counted some (granian hands
        # connections to whichever worker accepts first).
        sent_tokens = sent_jwks = 0
        deadline = time.monotonic() + 60
        with ThreadPoolExecutor(8) as pool:
            while True:
                assert set(pool.map(token, range(8))) == {200}
                assert set(pool.map(jwks, range(16))) == {200}
                sent_tokens += 8
                sent_jwks += 16
                if _workers_that_served_jwks(web_dir) == 2:
                    break
                assert time.monotonic() < deadline, "one worker served every request"

        refused = requests.get(f"{url}/metrics", timeout=30)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = requests.get(
            f"{url}/metrics", headers={"Authorization": f"Bearer {'x' * 43}"}, timeout=30
        )
        assert wrong.status_code == 401

        # Any Host (a pod's IP) is answered: the scrape never builds a URL from it.
        headers = {"Authorization": f"Bearer {token_file[1]}", "Host": "10.1.2.3:8000"}
        for _ in range(3):  # the last one timed: a worker's first opens its broker connection
            started = time.perf_counter()
            scrape = requests.get(f"{url}/metrics", headers=headers, timeout=30)
            took = time.perf_counter() - started
        assert scrape.status_code == 200, scrape.text
        assert scrape.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        samples = parse(scrape.text)
        parts = " ".join(
            f"{dict(labels)['part']}={value * 1000:.1f}ms"
            for (name, labels), value in sorted(samples.items())
            if name == "tessera_scrape_part_seconds"
        )
        print(f"scrape_seconds={took:.4f} bytes={len(scrape.content)} {parts}")

    assert value(
        samples, "tessera_http_requests_total", route="tokens:jwks", method="GET", status="200"
    ) == float(sent_jwks)
    assert value(samples, "tessera_tokens_issued_total", grant_type="client_credentials") == float(
        sent_tokens
    )
    assert value(
        samples, "tessera_events_total", event_type="token.issued", success="true"
    ) == float(sent_tokens)
    token_route = "tokens:token"
    assert value(
        samples, "tessera_http_request_duration_seconds_count", route=token_route
    ) == float(sent_tokens)
    # The refused scrapes are counted under their route, never by path.
    assert (
        value(samples, "tessera_http_requests_total", route="metrics", method="GET", status="401")
        == 2.0
    )
    for dependency in ("redis", "broker", "database", "revocation"):
        assert value(samples, "tessera_dependency_up", dependency=dependency) == 1.0
    assert value(samples, "tessera_revocation_mirror_current") == 1.0
    lag = value(samples, "tessera_revocation_mirror_lag_seconds")
    assert lag is not None
    assert 0 < lag < 1
    assert value(samples, "tessera_celery_queue_length", queue="celery") is not None
    assert value(samples, "tessera_audit_shipping_lag_seconds") is not None


def _scrape(client: Client, token: str) -> Samples:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return parse(response.content.decode())


def test_metrics_are_off_without_a_token_file(client: Client, settings) -> None:
    settings.METRICS_TOKEN_FILE = None
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"  # as any URL not served: nothing told


def test_a_token_file_that_became_unreadable_refuses_every_scrape(
    client: Client, settings, token_file: tuple[Path, str]
) -> None:
    settings.METRICS_TOKEN_FILE = token_file[0]
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token_file[1]}").status_code == 200
    token_file[0].unlink()
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token_file[1]}").status_code == 401


@pytest.fixture
def redis_stopped(servers: suite.TestServers) -> Iterator[None]:
    servers.redis.stop()
    try:
        yield
    finally:
        redis_start_again(servers)


@pytest.mark.django_db
def test_a_dependency_down_is_reported_and_the_scrape_still_answers(
    client: Client, settings, token_file: tuple[Path, str], redis_stopped: None
) -> None:
    settings.METRICS_TOKEN_FILE = token_file[0]
    settings.HEALTH_CHECK_TIMEOUT = 1
    started = time.perf_counter()
    samples = _scrape(client, token_file[1])
    assert time.perf_counter() - started < 10
    assert value(samples, "tessera_dependency_up", dependency="redis") == 0.0
    assert value(samples, "tessera_dependency_up", dependency="broker") == 0.0
    assert value(samples, "tessera_dependency_up", dependency="database") == 1.0
    # What could not be read is left out, not reported as 0.
    assert value(samples, "tessera_celery_queue_length", queue="celery") is None
    assert value(samples, "tessera_audit_journal_pending_bytes") is not None


@pytest.mark.django_db
def test_queue_length_counts_every_priority_list(
    client: Client, settings, servers: suite.TestServers, token_file: tuple[Path, str]
) -> None:
    from idp.celery import app

    settings.METRICS_TOKEN_FILE = token_file[0]
    broker = redis.Redis.from_url(servers.redis.url(1))
    queue = f"metrics-test-{secrets.token_hex(4)}"
    routes = app.conf.task_routes
    app.conf.task_routes = {"apps.core.tasks.heartbeat": {"queue": queue}}
    try:
        broker.lpush(queue, "a", "b", "c")
        broker.lpush(f"{queue}\x06\x169", "d", "e")
        samples = _scrape(client, token_file[1])
    finally:
        app.conf.task_routes = routes
        broker.delete(queue, f"{queue}\x06\x169")
        broker.close()
    assert value(samples, "tessera_celery_queue_length", queue=queue) == 5.0


def _local(name: str, **labels: str) -> float:
    return metrics.LOCAL.get_sample_value(name, labels) or 0.0


@pytest.mark.django_db
def test_events_become_the_counters_operators_watch() -> None:
    # Each event type the issue names is counted from emit(), the one place (no app counts).
    cases = [
        (EventType.LOGIN_FAILED, {"success": False, "error_code": "wrong_credentials"},
         "tessera_sign_ins_total", {"outcome": "wrong_credentials"}),
        (EventType.LOGIN_SUCCEEDED, {}, "tessera_sign_ins_total", {"outcome": "succeeded"}),
        (EventType.MFA_FAILED, {"success": False, "error_code": "replayed_code",
                                "resource_type": "totp"},
         "tessera_mfa_total", {"outcome": "replayed_code", "factor": "totp"}),
        (EventType.FEDERATION_FAILED, {"success": False, "error_code": "state"},
         "tessera_federation_total", {"outcome": "state"}),
        (EventType.ACCOUNT_LOCKED, {"success": False, "metadata": {"kind": "login"}},
         "tessera_lockouts_total", {"kind": "login"}),
        (EventType.RATELIMIT_EXCEEDED, {"success": False, "metadata": {"rule": "login.ip"}},
         "tessera_ratelimit_limited_keys_total", {"rule": "login.ip"}),
        (EventType.THREAT_ASSESSED, {"metadata": {"action": "block", "kind": "login"}},
         "tessera_threat_actions_total", {"action": "block", "kind": "login"}),
        (EventType.TOKEN_REFRESHED, {"metadata": {"grant_type": "refresh_token"}},
         "tessera_tokens_issued_total", {"grant_type": "refresh_token"}),
    ]  # fmt: skip
    for event_type, fields, name, labels in cases:
        before = _local(name, **labels)
        emit(event_type, **fields)  # type: ignore[arg-type]
        assert _local(name, **labels) == before + 1, (event_type, name, labels)


@pytest.mark.django_db
def test_label_values_stay_bounded_whatever_the_event_carries() -> None:
    before = _local("tessera_sign_ins_total", outcome="other")
    emit(EventType.LOGIN_FAILED, success=False, error_code="Robert'); DROP TABLE--")
    assert _local("tessera_sign_ins_total", outcome="other") == before + 1
    values = {metrics.bounded("test-cap", "label", f"code_{n}") for n in range(200)}
    assert len(values) == metrics.MAX_VALUES + 1  # the first MAX_VALUES, then "other"
    assert "other" in values


def test_a_request_refused_before_routing_is_counted_under_its_route(client: Client) -> None:
    # apps/core/request_limits.py answers a body over the limit with 413 before any view.
    labels = {"route": "tokens:token", "method": "POST", "status": "413"}
    before = _local("tessera_http_requests_total", **labels)
    body = "x" * (2 * 1024 * 1024)
    response = client.post(
        "/oauth/token", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413
    assert _local("tessera_http_requests_total", **labels) == before + 1


def test_requests_are_labelled_by_route_name_never_by_path(client: Client) -> None:
    before = _local("tessera_http_requests_total", route="unmatched", method="GET", status="404")
    assert client.get(f"/no/such/{secrets.token_hex(8)}").status_code == 404
    after = _local("tessera_http_requests_total", route="unmatched", method="GET", status="404")
    assert after == before + 1
    assert client.get("/healthz").status_code == 200
    assert _local("tessera_http_request_duration_seconds_count", route="healthz") >= 1


@pytest.mark.django_db
def test_a_counter_that_cannot_be_written_never_fails_the_event(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    from prometheus_client import values

    from apps.core.models import SecurityEvent

    monkeypatch.setattr(values, "ValueClass", values.ValueClass)  # restored afterwards
    monkeypatch.setattr(metrics, "_warned", threading.Event())
    monkeypatch.setenv(metrics.ENVIRONMENT_VARIABLE, "")
    folder = tmp_path / "metrics"
    folder.mkdir()
    metrics.use_directory(folder)
    folder.rmdir()  # the run volume removed under the process: a new series cannot be filed
    code = f"code_{secrets.token_hex(4)}"
    emit(EventType.LOGIN_FAILED, success=False, error_code=code)
    monkeypatch.delenv(metrics.ENVIRONMENT_VARIABLE)
    assert SecurityEvent.objects.filter(error_code=code).exists()
    assert "a value could not be counted" in caplog.text  # said once, not raised


@pytest.mark.django_db(transaction=True)
def test_a_celery_workers_counters_are_in_the_web_servers_scrape(
    servers: suite.TestServers, settings, tmp_path: Path, token_file: tuple[Path, str]
) -> None:
    # `make run`'s shape: web and a prefork worker on one data dir; the events the worker's
    # pool records (key rotation here) are in the web server's answer.
    from apps.core.models import SecurityEvent
    from apps.keys.models import SigningKey
    from apps.keys.tasks import rotate_signing_keys

    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(settings.DATABASES["default"]["NAME"]),
        "IDP_DATA_DIR": str(tmp_path / "data"),
        "IDP_AUDIT_JOURNAL_DIR": str(tmp_path / "journal"),
        "IDP_LOG_LEVEL": "warning",
        "IDP_METRICS_TOKEN_FILE": str(token_file[0]),
    }
    queue = f"metrics-{secrets.token_hex(4)}"  # this worker's alone: no other takes the task
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "idp", "worker", "--concurrency", "2",
         "--without-mingle", "--without-gossip", "-Q", queue, "-n", f"{queue}@localhost"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with production_web_server(env) as (_, url):
            SigningKey.objects.all().delete()  # the rotation must create keys
            kids = rotate_signing_keys.apply_async(queue=queue, ignore_result=False).get(timeout=60)
            assert kids
            rotated = SecurityEvent.objects.filter(event_type="key.rotated").count()
            assert rotated >= len(kids)
            response = requests.get(
                f"{url}/metrics", headers={"Authorization": f"Bearer {token_file[1]}"}, timeout=30
            )
            assert response.status_code == 200
            samples = parse(response.text)
    finally:
        worker.terminate()
        worker.wait(60)
    folders = {path.name.split("-")[0] for path in (tmp_path / "data/run/metrics").iterdir()}
    assert folders == {"web", "worker"}
    assert value(
        samples, "tessera_events_total", event_type="key.rotated", success="true"
    ) == float(rotated)
