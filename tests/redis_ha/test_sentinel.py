"""Tessera on a primary, a replica and three Sentinels (REDIS_URL=redis+sentinel://...): a web
process issues tokens, counts rate limits and mirrors revocations through the primary the
Sentinels name; after a failover (SENTINEL FAILOVER, then a killed primary) it does all of
it again on the new primary, without a restart. The time from the failover to the first token
the web process issues and checks again is printed (the figure in docs/redis-ha.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.test import override_settings
from kombu import Connection
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from apps.core.health import HEARTBEAT_KEY
from apps.core.redis import kombu_broker
from apps.core.revocation import revoke_jti
from apps.tokens.services import client_create
from tests.redis_ha.conftest import active, introspect, issue, jti, refused_after
from tests.redis_ha.servers import SERVICE, SentinelSet
from tests.servers import wait_for

DEADLINE = 30.0
ROOT = Path(__file__).resolve().parents[2]
RULE_KEY = "tessera:rl:revoke.ip:127.0.0.1"  # the revoke.ip rule's key for this test client
LIMITED = {"IDP_RATELIMIT_ALLOW": "", "IDP_RATELIMIT_REVOKE_IP": "3/1h"}


def _works_again(url: str, client_id: str, secret: str) -> bool:
    """A token is issued and the web process's revocation mirror is current (introspection
    answers 503 for every token while it is not)."""
    response = issue(url, client_id, secret)
    if response.status_code != 200:
        return False
    answer = introspect(url, client_id, secret, response.json()["access_token"])
    return answer.status_code == 200 and bool(answer.json()["active"])


def _revocation_reaches_the_web_process(
    sentinels: SentinelSet, url: str, client_id: str, secret: str
) -> float:
    """Revokes a fresh token from THIS process through the Sentinels' primary; returns how
    long the web process took to refuse it."""
    token = issue(url, client_id, secret).json()["access_token"]
    assert active(url, client_id, secret, token)
    with override_settings(REDIS_URL=sentinels.url()):
        revoke_jti(jti(token), expires_in=600)
    published = time.monotonic()
    wait_for(lambda: not active(url, client_id, secret, token), DEADLINE, "still active")
    return time.monotonic() - published


def _rate_limit_counts_on(sentinels: SentinelSet, url: str) -> None:
    """The revoke.ip rule refuses the fourth request, and its state is in the primary the
    Sentinels name now (not in a per-process stand-in)."""
    primary = sentinels.current_primary().client()
    primary.delete(RULE_KEY)
    assert refused_after(url, 3) == [401, 401, 401, 429]
    assert primary.exists(RULE_KEY)


def _broker_round_trip(sentinels: SentinelSet) -> None:
    """Celery's transport (kombu) through the URL settings derive for the Sentinel set."""
    broker, options = kombu_broker(sentinels.url(1))
    assert options == {"master_name": SERVICE}
    with Connection(broker, transport_options=options, connect_timeout=5) as connection:
        queue = connection.SimpleQueue("tessera-redis-ha")
        queue.put({"n": 1})
        message = queue.get(timeout=10)
        assert message.payload == {"n": 1}
        message.ack()
        queue.close()


@pytest.mark.django_db(transaction=True)
def test_tessera_keeps_working_through_a_sentinel_failover(sentinel_set, web_server) -> None:
    client, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    assert secret is not None
    with web_server({"REDIS_URL": sentinel_set.url(), **LIMITED}) as url:
        assert _works_again(url, client.client_id, secret)
        took = _revocation_reaches_the_web_process(sentinel_set, url, client.client_id, secret)
        print(f"revocation through Sentinel seen by the web process after {took * 1000:.0f} ms")
        _rate_limit_counts_on(sentinel_set, url)
        _broker_round_trip(sentinel_set)

        # An operator's switchover: SENTINEL FAILOVER promotes the replica, once it holds
        # everything the primary has (WAIT: one replica acknowledged).
        old = sentinel_set.current_primary()
        assert old.client().wait(1, 5000) == 1
        began = time.monotonic()
        sentinel_set.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", SERVICE)
        new = sentinel_set.wait_for_new_primary(old.port)
        announced = time.monotonic() - began
        wait_for(lambda: _works_again(url, client.client_id, secret), DEADLINE, "not back")
        back = time.monotonic() - began
        print(f"SENTINEL FAILOVER: new primary announced and the old one demoted after "
              f"{announced:.2f}s; tokens issued and checked on the new one {back - announced:.2f}s "
              "later")  # fmt: skip
        assert new.port != old.port

        took = _revocation_reaches_the_web_process(sentinel_set, url, client.client_id, secret)
        print(f"revocation after the failover seen after {took * 1000:.0f} ms")
        _rate_limit_counts_on(sentinel_set, url)
        _broker_round_trip(sentinel_set)


@pytest.mark.django_db(transaction=True)
def test_tessera_comes_back_when_the_primary_dies(sentinel_set, web_server) -> None:
    client, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    assert secret is not None
    with web_server({"REDIS_URL": sentinel_set.url(), **LIMITED}) as url:
        token = issue(url, client.client_id, secret).json()["access_token"]
        old = sentinel_set.current_primary()
        assert old.client().wait(1, 5000) == 1
        began = time.monotonic()
        old.stop(signal.SIGKILL)  # no goodbye: the Sentinels notice after down-after (1 s)
        sentinel_set.wait_for_new_primary(old.port)
        announced = time.monotonic() - began
        wait_for(lambda: _works_again(url, client.client_id, secret), DEADLINE, "not back")
        back = time.monotonic() - began
        print(f"primary killed: new primary announced after {announced:.2f}s, "
              f"tokens issued and checked by the web process again after {back:.2f}s")  # fmt: skip

        assert active(url, client.client_id, secret, token)  # replicated state survived
        took = _revocation_reaches_the_web_process(sentinel_set, url, client.client_id, secret)
        print(f"revocation after the primary's death seen after {took * 1000:.0f} ms")
        _rate_limit_counts_on(sentinel_set, url)


@pytest.fixture
def sentinel_worker(
    sentinel_set, servers, django_db_setup, tmp_path, monkeypatch
) -> Iterator[Celery]:
    """`celery -A idp worker` whose REDIS_URL is the Sentinel set and whose broker and result
    backend are what settings derive from it (no CELERY_BROKER_URL), and a Celery app that
    sends to that broker the same way. (Celery reads CELERY_BROKER_URL and
    CELERY_RESULT_BACKEND from the environment before its own configuration: the suite's
    are set aside meanwhile; the suite's app has the same values in its settings.)"""
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    env.update(
        REDIS_URL=sentinel_set.url(),
        DATABASE_URL=servers.postgres.url(settings.DATABASES["default"]["NAME"]),
    )
    log = tmp_path / "worker.log"
    with log.open("ab") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "idp", "worker", "--pool", "solo",
             "--without-mingle", "--without-gossip", "-n", f"sentinel-{os.getpid()}@localhost"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    broker, options = kombu_broker(sentinel_set.url())
    # Not the current app: the suite's tasks keep going to the suite's broker after this test.
    sender = Celery("tessera-sentinel-test", broker=broker, backend=broker, set_as_current=False)
    sender.conf.broker_transport_options = options
    sender.conf.result_backend_transport_options = options
    try:
        yield sender
    finally:
        worker.terminate()
        worker.wait(30)
        sender.close()


def _heartbeat_ran(sender: Celery) -> bool:
    """apps.core.tasks.heartbeat sent through the broker, run by the worker (which writes
    through REDIS_URL), its result read back from the result backend."""
    try:
        return bool(
            sender.send_task("apps.core.tasks.heartbeat", ignore_result=False).get(timeout=3)
        )
    except (CeleryTimeout, OperationalError, RedisError, OSError):
        return False


@pytest.mark.django_db(transaction=True)
def test_celery_tasks_run_through_sentinel_and_after_the_primary_dies(
    sentinel_set, sentinel_worker
) -> None:
    wait_for(lambda: _heartbeat_ran(sentinel_worker), 60, "the worker ran no task")
    old = sentinel_set.current_primary()
    assert old.client().get(HEARTBEAT_KEY) is not None
    assert old.client().wait(1, 5000) == 1
    began = time.monotonic()
    old.stop(signal.SIGKILL)
    new = sentinel_set.wait_for_new_primary(old.port)
    new.client().delete(HEARTBEAT_KEY)
    wait_for(lambda: _heartbeat_ran(sentinel_worker), DEADLINE, "no task ran after failover")
    print(f"primary killed: a task sent, run and answered again after "
          f"{time.monotonic() - began:.2f}s")  # fmt: skip
    assert new.client().get(HEARTBEAT_KEY) is not None  # the worker wrote to the new primary
