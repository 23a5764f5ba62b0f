"""The Celery broker down during a logout (issue 20, "Faults"): the logout through the
production web server still happens and is recorded — the session ended, its Back-Channel
Logout delivery PENDING, the `logout` event in the outbox, all in the transaction that ended
it (apps/sessions/services.py session_end) — and the person gets their signed-out page at
once: the task is queued after commit and a failure to queue never fails the request
(apps/core/commit.py). When the broker is back the sweep (beat, every 5 minutes:
tasks.redeliver_stalled_backchannel_logouts) queues the delivery again and the worker
delivers it.

The broker is a Redis of the test's own; the web server and the worker use it, the suite's
worker does not (tests/faults/conftest.py Worker).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from apps.accounts.services import user_create
from apps.core.events import EventType
from apps.core.models import SecurityEvent
from apps.sessions.models import LoginSession
from apps.tokens.models import BackchannelLogoutDelivery
from apps.tokens.services import client_create
from tests.faults.conftest import (
    SWEEP,
    LogoutReceiver,
    Worker,
    delivery_of,
    log_out,
    logout_claims,
    session_id,
    sign_in_through,
    ten_minutes_pass,
    web_server,
)
from tests.rp import PASSWORD, REDIRECT_URI, RegisteredClient
from tests.servers import Redis, wait_for


@pytest.mark.django_db(transaction=True)
def test_a_logout_while_the_broker_is_down_is_recorded_at_once_and_delivered_when_it_returns(
    own_redis: Redis,
    test_database_env: dict[str, str],
    workers: list[Worker],
    logout_receiver: LogoutReceiver,
    tmp_path: Path,
) -> None:
    client, secret = client_create(
        name="RP", redirect_uris=[REDIRECT_URI], grant_types=["authorization_code"],
        skip_consent=True, backchannel_logout_uri=logout_receiver.url,
    )  # fmt: skip
    rp = RegisteredClient(client.client_id, secret)
    user_create(email="ada@example.com", password=PASSWORD)
    broker = own_redis.url(0)
    env = {**test_database_env, "CELERY_BROKER_URL": broker, "IDP_WEB_WORKERS": "1"}
    worker = Worker(test_database_env, tmp_path / "worker.log", broker).start()
    workers.append(worker)
    log = tmp_path / "web.log"
    with web_server(env, log) as (process, url):
        up, refused = (
            sign_in_through(url, rp, email="ada@example.com", password=PASSWORD) for _ in range(2)
        )
        # With the broker up: delivered by the worker, for comparison.
        with_broker = log_out(url, up)
        [token] = logout_receiver.wait_for_tokens(1)
        assert logout_claims(token)["sid"] == session_id(up)

        own_redis.stop(signal.SIGKILL)  # its queue lost with it: nothing was saved
        stopped = time.monotonic()
        without_broker = log_out(url, refused)
        session_recorded_and_pending(session_id(refused))
        assert without_broker < with_broker + 1, (with_broker, without_broker)

        own_redis.start()  # same port, empty
        back = time.monotonic()
        assert ten_minutes_pass() == 1
        assert worker.broker.send(SWEEP).get(timeout=60) == 1
        pending = BackchannelLogoutDelivery.objects.filter(
            status=BackchannelLogoutDelivery.Status.PENDING
        )
        wait_for(lambda: not pending.exists(), 60, "the swept delivery did not arrive")
        delivered_after = time.monotonic() - back
        tokens = logout_receiver.wait_for_tokens(2)
        assert len(tokens) == 2  # one per session
        assert logout_claims(tokens[1])["sid"] == session_id(refused)
        assert delivery_of(session_id(refused)).attempts == 1
        assert process.poll() is None
    print(
        f"broker_down_s={back - stopped:.2f} logout_with_broker_s={with_broker:.3f} "
        f"logout_without_broker_s={without_broker:.3f} "
        f"delivered_after_broker_back_s={delivered_after:.2f}"
    )


def session_recorded_and_pending(sid: str) -> None:
    """The session's end, its audit event (the outbox row) and its delivery, committed
    together (apps/sessions/services.py session_end), the delivery not attempted yet."""
    assert LoginSession.objects.get(pk=sid).ended_at is not None
    assert SecurityEvent.objects.filter(event_type=EventType.LOGOUT, session_id=sid).exists()
    delivery = delivery_of(sid)
    assert delivery.status == BackchannelLogoutDelivery.Status.PENDING
    assert delivery.attempts == 0
