"""Redis killed mid-run: the credential endpoints stay limited by the per-process stand-in,
the others pass, /readyz says degraded, and the outage is logged once each way."""

from __future__ import annotations

import logging
import signal
from typing import Any

import pytest

from apps.ratelimit import limiter
from tests.ratelimit.conftest import basic
from tests.servers import Redis, wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_redis(tmp_path, settings) -> Any:
    """A Redis of this test's own (the suite's must stay up for everyone else), as the
    application's Redis."""
    server = Redis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url(0)  # apps.core.redis.get_redis() follows it
    yield server
    server.stop(signal.SIGKILL)


def _wrong_secret(client, client_id: str) -> int:
    return client.post(
        "/oauth/token", {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(client_id, "wrong"),
    ).status_code  # fmt: skip


def test_redis_killed_credential_endpoints_stay_limited(client, own_redis, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="tessera.ratelimit")
    statuses = [_wrong_secret(client, "ghost") for _ in range(8)]
    assert statuses == [401] * 5 + [429] * 3  # shared limits, in Redis
    assert client.get("/readyz").json()["checks"]["ratelimit"]["status"] == "up"

    own_redis.stop(signal.SIGKILL)

    # client secrets: never unlimited, the lockout is kept in this process
    statuses = [_wrong_secret(client, "ghost-2") for _ in range(20)]
    assert statuses.count(401) == 5
    assert statuses[5:] == [429] * 15
    # the token endpoint's per-IP rule too (120 at once): bad requests, no client at all
    token = [client.post("/oauth/token", {"grant_type": "x"}).status_code for _ in range(200)]
    assert 429 in token
    assert token.index(429) <= 120
    # userinfo is not a credential endpoint: passes (with Redis its 300 at once would 429)
    userinfo = [client.get("/oauth/userinfo").status_code for _ in range(350)]
    assert set(userinfo) == {401}

    ready = client.get("/readyz").json()
    assert ready["checks"]["ratelimit"]["status"] == "degraded"
    assert "per process" in ready["checks"]["ratelimit"]["detail"]
    outages = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(outages) == 1  # once per outage, not per request

    own_redis.start()  # same port
    wait_for(
        lambda: _wrong_secret(client, "ghost-3") and limiter.outage.since is None,
        30,
        "the limiter did not return to Redis",
    )
    backs = [r for r in caplog.records if "Redis is back" in r.getMessage()]
    assert len(backs) == 1
    assert client.get("/readyz").json()["checks"]["ratelimit"]["status"] == "up"
