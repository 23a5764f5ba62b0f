"""REDIS_URL's forms (apps/core/redis.py): what each says, the Celery broker derived from it,
and a clear refusal at startup for a malformed one, never naming its password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection

from apps.core.redis import RedisURLError, get_redis, kombu_broker, parse_redis_url

ROOT = Path(__file__).resolve().parents[2]


def test_a_sentinel_url_names_its_sentinels_service_database_and_passwords() -> None:
    location = parse_redis_url(
        "redis+sentinel://app:s%40cret@10.0.0.1,10.0.0.2:26380,[fd00::3]:26381/tessera/2"
        "?sentinel_password=watch"
    )
    assert location.kind == "sentinel"
    assert location.nodes == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("fd00::3", 26381))
    assert (location.service, location.db) == ("tessera", 2)
    assert (location.username, location.password) == ("app", "s@cret")
    assert location.sentinel_password == "watch"


def test_a_cluster_url_names_its_nodes() -> None:
    location = parse_redis_url("redis+cluster://:pw@r1:7000,r2,r3:7002")
    assert location.kind == "cluster"
    assert location.nodes == (("r1", 7000), ("r2", 6379), ("r3", 7002))
    assert (location.username, location.password) == (None, "pw")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://h1:26379", "needs the service"),
        ("redis+sentinel://h1/tessera/0/extra", "needs the service"),
        ("redis+sentinel://h1/tessera/zero", "not a database number"),
        ("redis+sentinel://h1:port/tessera", "not a port number"),
        ("redis+sentinel://h1:70000/tessera", "not a port number"),
        ("redis+sentinel://h1,,h2/tessera", "needs a name or address"),
        ("redis+sentinel://h1/tessera?ssl=true", "unknown option 'ssl'"),
        ("redis+cluster://h1/3", "database 0 only"),
        ("redis+cluster://h1?sentinel_password=x", "unknown option"),
        ("rediss+sentinel://h1/tessera", "not supported"),
        ("memcached://h1", "the scheme must be one of"),
    ],
)
def test_a_malformed_url_is_refused_with_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(RedisURLError, match=message):
        parse_redis_url(url)


def test_celerys_broker_is_derived_for_kombu() -> None:
    assert kombu_broker("redis://r:6379/1") == ("redis://r:6379/1", {})
    socket = "/run/redis.sock?db=1"
    assert kombu_broker(f"unix://{socket}") == (f"redis+socket://{socket}", {})
    broker, options = kombu_broker(
        "redis+sentinel://:pw@s1,s2:26380/tessera/1?sentinel_password=watch"
    )
    assert broker == "sentinel://:pw@s1:26379/1;sentinel://:pw@s2:26380/1"
    assert options == {"master_name": "tessera", "sentinel_kwargs": {"password": "watch"}}
    with pytest.raises(RedisURLError, match="CELERY_BROKER_URL"):
        kombu_broker("redis+cluster://r1,r2,r3")  # kombu has no Cluster transport


def test_djangos_cache_uses_the_process_client() -> None:
    assert get_redis_connection("default") is get_redis()
    cache.set("tessera-redis-ha", "yes", 5)
    assert cache.get("tessera-redis-ha") == "yes"


def _check(tmp_path: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "PORT", "CELERY_"))}
    env.update({"IDP_DATA_DIR": str(tmp_path), **environ})
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_startup_refuses_a_malformed_sentinel_url_without_its_password(tmp_path) -> None:
    result = _check(tmp_path, REDIS_URL="redis+sentinel://:hunter2@s1,s2")
    assert result.returncode != 0
    assert "REDIS_URL is not a Redis URL Tessera can use" in result.stderr
    assert "needs the service" in result.stderr
    assert "hunter2" not in result.stderr


def test_startup_asks_a_cluster_for_a_broker_of_its_own(tmp_path) -> None:
    refused = _check(tmp_path, REDIS_URL="redis+cluster://r1,r2,r3")
    assert refused.returncode != 0
    assert "set CELERY_BROKER_URL" in refused.stderr
    accepted = _check(
        tmp_path, REDIS_URL="redis+cluster://r1,r2,r3", CELERY_BROKER_URL="redis://b:6379/0"
    )
    assert accepted.returncode == 0, accepted.stderr
