"""/healthz and /readyz against the suite's real servers (foundation issue): /readyz is 503
only when a check that gates readiness (this pod's own ability to serve) is down; a shared,
asynchronous part down is `degraded` with 200 (docs/operations.md, "What /readyz says")."""

from __future__ import annotations

import time

import pytest
import requests

from apps.core import revocation
from apps.core.tasks import heartbeat
from tests.conftest import redis_start_again
from tests.servers import wait_for

# signing_keys down on a pod with a wrong key: tests/operations/test_kek_wrong_key.py
GATING = {"database", "revocation", "journal", "signing_keys"}


def test_healthz_answers_while_the_process_lives(client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_without_a_worker_heartbeat_is_degraded_and_keeps_the_pod_ready(client) -> None:
    # A stopped worker or beat is every pod's, not this one's: taking all pods out of the
    # Service would stop sign-in and tokens, which do not need the worker.
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["worker"]["status"] == "down"
    assert body["checks"]["worker"]["gates_readiness"] is False
    assert "worker" in body["checks"]["worker"]["detail"]
    assert body["checks"]["database"] == body["checks"]["database"] | {
        "status": "up",
        "gates_readiness": True,
    }


@pytest.mark.django_db
def test_readyz_is_503_when_the_journal_cannot_be_written(client, settings, tmp_path) -> None:
    # An event that cannot be journaled fails its request with 503 (apps/core/journal.py).
    (tmp_path / "file").touch()
    settings.AUDIT_JOURNAL_DIR = tmp_path / "file" / "journal"  # cannot be made

    response = client.get("/readyz")

    assert response.status_code == 503
    check = response.json()["checks"]["journal"]
    assert (check["status"], check["gates_readiness"]) == ("down", True)
    assert "NotADirectoryError" in check["detail"]

    settings.AUDIT_JOURNAL_DIR = tmp_path
    check = client.get("/readyz").json()["checks"]["journal"]
    assert check["status"] == "up"
    assert check["detail"].endswith("MiB free")


@pytest.mark.django_db
def test_revocation_gates_readiness_only_while_it_fails_closed(client, settings) -> None:
    assert client.get("/readyz").json()["checks"]["revocation"]["gates_readiness"] is True
    settings.REVOCATION_FAIL_OPEN = True  # tokens are accepted while the mirror is not current
    assert client.get("/readyz").json()["checks"]["revocation"]["gates_readiness"] is False


def _readyz(live_server) -> requests.Response:
    return requests.get(f"{live_server.url}/readyz", timeout=30)


def test_readyz_follows_redis_down_and_back_up(live_server, celery_worker, servers) -> None:
    # The real worker leaves its heartbeat.
    heartbeat.apply_async(ignore_result=False).get(timeout=30)

    ready = _readyz(live_server)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    checks = ready.json()["checks"]
    assert set(checks) == {
        "database",
        "redis",
        "broker",
        "worker",
        "revocation",
        "journal",
        "clickhouse",
        "audit",
        "ratelimit",
        "signing_keys",
    }
    assert all(check["status"] == "up" for check in checks.values())
    assert {name for name, check in checks.items() if check["gates_readiness"]} == GATING

    servers.redis.stop()
    try:
        # The live server's revocation mirror learns of the outage on a thread of its own.
        wait_for(lambda: not revocation._mirror.current.is_set(), 5, "the mirror did not notice")
        started = time.monotonic()
        down = _readyz(live_server)
        elapsed = time.monotonic() - started
        # 503 because this process's revocation mirror is not current (it refuses tokens,
        # fail closed), not because Redis and the broker, which are not gating, are down.
        assert down.status_code == 503
        checks = down.json()["checks"]
        assert checks["redis"]["status"] == "down"
        assert checks["broker"]["status"] == "down"
        assert checks["revocation"]["status"] == "down"
        assert [
            name for name, c in checks.items() if c["status"] == "down" and c["gates_readiness"]
        ] == ["revocation"]
        assert elapsed < 10, f"readyz took {elapsed:.1f}s with Redis down"
    finally:
        redis_start_again(servers)

    wait_for(lambda: _readyz(live_server).status_code == 200, 15, "readyz did not recover")
