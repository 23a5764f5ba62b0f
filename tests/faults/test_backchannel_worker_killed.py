"""A Celery worker SIGKILLed in the middle of a Back-Channel Logout delivery (issue 20,
"Faults"): the relying party has the Logout Token but its answer never reaches anyone, the
delivery row stays PENDING (nothing recorded for an attempt that did not finish), and the
logout still completes: the sweep (beat every 5 minutes, tasks.redeliver_stalled_backchannel_
logouts; called here at once, as ten minutes had passed) queues it again, a new worker
delivers it, and the row is DELIVERED after one recorded attempt.

What the relying party sees: two Logout Tokens for the same session (`sid`), each with its own
`jti` (every attempt signs afresh: logout_propagation.LOGOUT_TOKEN_LIFETIME), so its optional
replay check on `jti` (Back-Channel Logout 1.0 §2.6) does not refuse the retry, and ending a
session it has already ended is still answered 200 (§2.8). The killed worker's own message
(acks_late) sits in the broker's unacked set until the visibility timeout (kombu's default,
one hour) puts it back; when it then runs, the delivery is no longer PENDING and nothing is
sent a third time (logout_propagation.backchannel_logout_deliver).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from kombu import Connection

from apps.tokens.models import BackchannelLogoutDelivery
from tests.faults.conftest import (
    SWEEP,
    LogoutReceiver,
    Worker,
    delivery_of,
    log_out,
    logout_claims,
    relying_party,
    session_id,
    sign_in_through,
    ten_minutes_pass,
    web_server,
)
from tests.rp import PASSWORD
from tests.servers import Redis, wait_for


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_leaves_it_pending_and_the_sweep_delivers_it_once(
    own_redis: Redis,
    test_database_env: dict[str, str],
    workers: list[Worker],
    logout_receiver: LogoutReceiver,
    tmp_path: Path,
) -> None:
    rp = relying_party(
        grant_types=["authorization_code"], backchannel_logout_uri=logout_receiver.url
    )
    broker_url = own_redis.url(0)
    broker = redis.Redis.from_url(broker_url)
    env = {**test_database_env, "CELERY_BROKER_URL": broker_url, "IDP_WEB_WORKERS": "1"}
    first = Worker(test_database_env, tmp_path / "worker-1.log", broker_url).start()
    workers.append(first)
    with web_server(env, tmp_path / "web.log") as (_, url):
        signed = sign_in_through(url, rp, email="ada@example.com", password=PASSWORD)
        sid = session_id(signed)
        logout_receiver.hold.set()  # the relying party takes its time to answer
        log_out(url, signed)
        [held] = logout_receiver.wait_for_tokens(1)
        first.kill()  # while the worker waits for the answer
        killed = time.monotonic()
        logout_receiver.released.set()
        logout_receiver.hold.clear()
        assert delivery_of(sid).status == BackchannelLogoutDelivery.Status.PENDING
        assert delivery_of(sid).attempts == 0
        assert broker.hlen("unacked") == 1  # the killed worker's message, not acknowledged

        second = Worker(test_database_env, tmp_path / "worker-2.log", broker_url).start()
        workers.append(second)
        assert ten_minutes_pass() == 1
        assert second.broker.send(SWEEP).get(timeout=60) == 1
        wait_for(
            lambda: delivery_of(sid).status == BackchannelLogoutDelivery.Status.DELIVERED,
            60,
            "the swept delivery did not arrive",
        )
        completed_after = time.monotonic() - killed
        held_claims, retried_claims = (logout_claims(t) for t in logout_receiver.tokens)
        assert held_claims["sid"] == retried_claims["sid"] == sid
        assert held_claims["jti"] != retried_claims["jti"]
        assert delivery_of(sid).attempts == 1

        # The visibility timeout passes (kombu's own restore, with a timeout of 0): the killed
        # worker's task runs on the new worker, finds the delivery done, and sends nothing.
        with Connection(broker_url, transport_options={"visibility_timeout": 0}) as connection:
            connection.default_channel.qos.restore_visible(num=100)
        wait_for(
            lambda: broker.hlen("unacked") == 0 and broker.llen("celery") == 0,
            60,
            "the restored task did not run",
        )
        assert len(logout_receiver.tokens) == 2
        assert delivery_of(sid).attempts == 1
    broker.close()
    print(
        f"delivered_after_kill_s={completed_after:.2f} tokens_seen_by_rp=2 "
        f"jtis={held_claims['jti'][:8]}…,{retried_claims['jti'][:8]}…"
    )
    assert held == logout_receiver.tokens[0]
