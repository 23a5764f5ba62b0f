"""/healthz and /readyz against the suite's real servers (foundation issue)."""

from __future__ import annotations

import time

import pytest
import requests

from apps.core import revocation
from apps.core.tasks import heartbeat
from tests.conftest import redis_start_again
from tests.servers import wait_for


def test_healthz_answers_while_the_process_lives(client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_without_a_worker_heartbeat_is_503_and_says_why(client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["worker"]["status"] == "down"
    assert "worker" in body["checks"]["worker"]["detail"]
    assert body["checks"]["database"]["status"] == "up"


def _readyz(live_server) -> requests.Response:
    return requests.get(f"{live_server.url}/readyz", timeout=30)


def test_readyz_follows_redis_down_and_back_up(live_server, celery_worker, servers) -> None:
    heartbeat.delay().get(timeout=30)  # the real worker leaves its heartbeat

    ready = _readyz(live_server)
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert set(checks) == {
        "database",
        "redis",
        "broker",
        "worker",
        "revocation",
        "clickhouse",
        "audit",
        "ratelimit",
    }
    assert all(check["status"] == "up" for check in checks.values())

    servers.redis.stop()
    try:
        # The live server's revocation mirror learns of the outage on a thread of its own.
        wait_for(lambda: not revocation._mirror.current.is_set(), 5, "the mirror did not notice")
        started = time.monotonic()
        down = _readyz(live_server)
        elapsed = time.monotonic() - started
        assert down.status_code == 503
        assert down.json()["checks"]["redis"]["status"] == "down"
        assert down.json()["checks"]["broker"]["status"] == "down"
        assert down.json()["checks"]["revocation"]["status"] == "down"
        assert elapsed < 10, f"readyz took {elapsed:.1f}s with Redis down"
    finally:
        redis_start_again(servers)

    wait_for(lambda: _readyz(live_server).status_code == 200, 15, "readyz did not recover")
