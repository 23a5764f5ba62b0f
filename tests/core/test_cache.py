"""The one in-process cache (apps/core/cache.py): values bounded in staleness, invalidated in
every process through one Redis pub/sub channel; a key rotation, a client change and a client
deletion reach another web process within a second (the figure is printed, not asserted:
each wait polls for the state with a generous deadline)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from django.conf import settings
from django.utils import timezone

from apps.core import cache
from apps.core.cache import ProcessCache, publish
from apps.keys.keys import signing_key_at
from apps.tokens import clients
from apps.tokens.models import Client
from apps.tokens.services import client_create
from tests.conftest import redis_start_again
from tests.servers import production_web_server, wait_for

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 10.0  # generous: the state normally arrives within milliseconds


@pytest.fixture
def web_process(servers, django_db_setup) -> Iterator[str]:
    """A production web server (`python -m idp.web`, one worker, as deploy/ runs it) on the suite's
    database and Redis: another process, sharing nothing with this one but those two."""
    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(settings.DATABASES["default"]["NAME"]),
        "IDP_WEB_WORKERS": "1",
        "IDP_LOG_LEVEL": "warning",
    }
    with production_web_server(env) as (_, url):
        yield url


def _token(url: str, client_id: str, secret: str) -> requests.Response:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return requests.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=5,
    )


def _kid(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    return str(jwt.get_unverified_header(response.json()["access_token"])["kid"])


def _waited(what: str, since: float) -> float:
    elapsed = time.monotonic() - since
    print(f"{what}: seen by the other process after {elapsed * 1000:.0f} ms")
    return elapsed


@pytest.mark.django_db(transaction=True)
def test_rotation_and_client_changes_reach_another_process_at_once(servers, web_process) -> None:
    client, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    assert secret is not None
    old_kid = _kid(_token(web_process, client.client_id, secret))  # cached there from now on

    # (a) `manage.py rotate_keys`, run as an operator would: new tokens carry the new kid.
    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(settings.DATABASES["default"]["NAME"]),
    }
    subprocess.run(
        [sys.executable, "manage.py", "rotate_keys"], cwd=ROOT, env=env, check=True,
        capture_output=True, timeout=60,
    )  # fmt: skip
    rotated = time.monotonic()
    new_key = signing_key_at(alg=settings.ACCESS_TOKEN_ALG, now=timezone.now())
    assert new_key is not None
    assert new_key.kid != old_kid
    wait_for(
        lambda: _kid(_token(web_process, client.client_id, secret)) == new_key.kid,
        DEADLINE, "the web process still signs with the old key",
    )  # fmt: skip
    _waited("rotate_keys", rotated)

    # (b) a secret change: the old secret stops working, the new one works.
    new_secret = "s" * 43
    client.client_secret = new_secret  # DOT's save() stores its keyed hash
    client.save()
    changed = time.monotonic()
    wait_for(
        lambda: _token(web_process, client.client_id, secret).status_code == 401,
        DEADLINE, "the old secret is still accepted",
    )  # fmt: skip
    _waited("secret change", changed)
    assert _kid(_token(web_process, client.client_id, new_secret)) == new_key.kid

    # (c) a deletion: the client no longer authenticates.
    client.delete()
    deleted = time.monotonic()
    wait_for(
        lambda: _token(web_process, client.client_id, new_secret).status_code == 401,
        DEADLINE, "the deleted client still gets tokens",
    )  # fmt: skip
    _waited("client deletion", deleted)
    assert _token(web_process, client.client_id, new_secret).json()["error"] == "invalid_client"


# --- the mechanism in one process ---------------------------------------------------------


def test_an_invalidation_published_elsewhere_arrives_through_the_channel(redis_client) -> None:
    values = ProcessCache(f"test-{time.monotonic_ns()}", max_age=60, max_entries=10)
    loads: list[str] = []

    def load(previous: str | None) -> str:
        loads.append("x")
        return f"v{len(loads)}"

    assert values.get("a", load) == "v1"
    assert values.get("a", load) == "v1"  # cached
    cache.bus.ensure_started()
    wait_for(cache.bus.current.is_set, DEADLINE, "the subscriber did not subscribe")
    # Another process's message, straight onto the channel (not through this process's
    # publish(), which invalidates locally first).
    redis_client.publish(cache.CHANNEL, f"{values.name} a")
    wait_for(lambda: values.peek("a") is None, DEADLINE, "the message did not arrive")
    assert values.get("a", load) == "v2"


def test_network_keyed_cache_is_bounded_and_oldest_entries_go_first() -> None:
    values: ProcessCache[str] = ProcessCache(f"test-{time.monotonic_ns()}", max_age=60,
                                             max_entries=3)  # fmt: skip
    for key in "abcd":
        values.get(key, lambda previous, key=key: key.upper())
    assert [values.peek(key) for key in "abcd"] == [None, "B", "C", "D"]
    assert values.get("missing", lambda previous: None) is None
    assert [values.peek(key) for key in "bcd"] == ["B", "C", "D"]  # nothing evicted for it


def test_a_load_overtaken_by_an_invalidation_is_not_kept() -> None:
    values: ProcessCache[str] = ProcessCache(f"test-{time.monotonic_ns()}", max_age=60,
                                             max_entries=10)  # fmt: skip

    def load_while_it_changes(previous: str | None) -> str:
        values.invalidate("a")  # the row changed after this load read it
        return "old"

    assert values.get("a", load_while_it_changes) == "old"  # served to this caller once
    assert values.peek("a") is None  # but not kept: the next read loads again


@pytest.mark.django_db
def test_unknown_client_ids_are_not_cached(django_assert_num_queries) -> None:
    with django_assert_num_queries(2):
        assert clients.client_by_id("nobody") is None
        assert clients.client_by_id("nobody") is None
    client, _ = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    clients.clients_cache_clear()
    with django_assert_num_queries(1):
        assert clients.client_by_id(client.client_id) == client
        assert clients.client_by_id(client.client_id) == client


@pytest.mark.django_db
def test_a_client_change_is_seen_at_once_by_the_process_that_made_it() -> None:
    client, _ = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    assert clients.client_by_id(client.client_id).name == "Job"

    client.name = "Renamed job"
    client.save()  # in the test's transaction: this process drops its copy at once

    assert clients.client_by_id(client.client_id).name == "Renamed job"
    old_id = client.client_id
    client.client_id = "job-2"
    client.save()
    assert clients.client_by_id(old_id) is None
    client.delete()
    assert clients.client_by_id("job-2") is None


@pytest.mark.django_db
def test_with_redis_down_publishing_does_not_fail_and_caches_serve(servers) -> None:
    client, _ = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    assert clients.client_by_id(client.client_id) is not None
    servers.redis.stop()
    try:
        wait_for(lambda: not cache.bus.current.is_set(), DEADLINE, "the loss was not noticed")
        publish(clients.CACHE, client.client_id)  # logs, does not raise
        client.name = "Changed while Redis is down"
        client.save()  # a change still commits; others see it within CACHE_SECONDS
        assert clients.client_by_id(client.client_id).name == "Changed while Redis is down"
        assert Client.objects.filter(pk=client.pk).exists()
    finally:
        redis_start_again(servers)
    wait_for(cache.bus.current.is_set, DEADLINE, "the subscriber did not come back")


def test_one_subscriber_thread_serves_every_cache() -> None:
    cache.bus.ensure_started()
    threads = [thread.name for thread in threading.enumerate()]
    assert threads.count("cache-bus") == 1
    assert "revocation-mirror" not in threads
    for name in ("clients", "keys", "revocation"):
        assert cache.bus.listener(name) is not None


def test_a_forked_child_subscribes_afresh_and_serves_nothing_of_its_parent() -> None:
    # A Celery prefork worker or a preloading server forks after the parent subscribed: the
    # thread does not come along, so the child must not believe it is subscribed.
    cache.bus.ensure_started()
    wait_for(cache.bus.current.is_set, DEADLINE, "the subscriber did not subscribe")
    values: ProcessCache[str] = ProcessCache(f"test-{time.monotonic_ns()}", max_age=60,
                                             max_entries=10)  # fmt: skip
    values.put("a", "parent's")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and leave without running the parent's cleanup
        fresh = not cache.bus.current.is_set() and values.peek("a") is None
        os.write(write, b"1" if fresh else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert values.peek("a") == "parent's"
