"""Fixtures for Tessera on Redis Sentinel and Redis Cluster (tests/redis_ha/servers.py)."""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from django.conf import settings

from tests.redis_ha.servers import ClusterSet, SentinelSet, started
from tests.servers import production_web_server


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    servers = started(SentinelSet(tmp_path))
    print(f"sentinel set (primary, replica, 3 sentinels) ready in {servers.started_in:.2f}s")
    yield servers  # type: ignore[misc]
    servers.stop()


@pytest.fixture
def cluster_set(tmp_path: Path) -> Iterator[ClusterSet]:
    servers = started(ClusterSet(tmp_path))
    print(f"cluster (3 primaries) ready in {servers.started_in:.2f}s")
    yield servers  # type: ignore[misc]
    servers.stop()


WebServer = Callable[[dict[str, str]], contextlib.AbstractContextManager[str]]


@pytest.fixture
def web_server(servers: Any, django_db_setup: None) -> WebServer:
    """`python -m idp.web` (one worker) on the suite's database with `overrides` in its
    environment (REDIS_URL first): another process, sharing nothing with this one but the
    database and what Redis carries."""

    @contextlib.contextmanager
    def start(overrides: dict[str, str]) -> Iterator[str]:
        env = {
            **os.environ,
            "DATABASE_URL": servers.postgres.url(settings.DATABASES["default"]["NAME"]),
            "IDP_WEB_WORKERS": "1",
            "IDP_LOG_LEVEL": "warning",
            **overrides,
        }
        with production_web_server(env) as (_, url):
            yield url

    return start


def basic(client_id: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def issue(url: str, client_id: str, secret: str) -> requests.Response:
    return requests.post(
        url + "/oauth/token", data={"grant_type": "client_credentials"},
        headers=basic(client_id, secret), timeout=10,
    )  # fmt: skip


def introspect(url: str, client_id: str, secret: str, token: str) -> requests.Response:
    """The web process's introspection (RFC 7662 §2.2): its revocation mirror. 503 while the
    mirror is not current (a failover): the token's status is unknown, not inactive."""
    return requests.post(
        url + "/oauth/introspect", data={"token": token},
        headers=basic(client_id, secret), timeout=10,
    )  # fmt: skip


def active(url: str, client_id: str, secret: str, token: str) -> bool:
    """What the web process's introspection says of the token, its mirror current."""
    response = introspect(url, client_id, secret, token)
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


def jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


def refused_after(url: str, allowed: int) -> list[int]:
    """`allowed` + 1 unauthenticated POSTs to /oauth/revoke under a `revoke.ip` rule of
    `allowed` an hour: the statuses (401 while the quota lasts, then 429)."""
    return [
        requests.post(url + "/oauth/revoke", data={"token": "x"}, timeout=10).status_code
        for _ in range(allowed + 1)
    ]
