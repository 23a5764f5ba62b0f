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

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from django.conf import settings
from django.utils import timezone

from apps.accounts.services import user_create
from apps.core.events import EventType
from apps.core.models import SecurityEvent
from apps.sessions.models import LoginSession
from apps.tokens.logout_propagation import STALLED_AFTER
from apps.tokens.models import BackchannelLogoutDelivery
from apps.tokens.services import client_create
from tests.faults.conftest import (
    LogoutReceiver,
    SignedIn,
    Worker,
    logout_claims,
    sign_in_through,
    web_server,
)
from tests.rp import PASSWORD, REDIRECT_URI, RegisteredClient
from tests.servers import Redis, wait_for

SWEEP = "apps.tokens.tasks.redeliver_stalled_backchannel_logouts"


def _log_out(url: str, signed: SignedIn) -> float:
    """RP-Initiated Logout 1.0 §2 with the id_token_hint of this very session (no confirmation
    page); returns how long the signed-out page took."""
    started = time.monotonic()
    answer = signed.browser.http.get(
        f"{url}/oauth/logout", params={"id_token_hint": signed.tokens["id_token"]}, timeout=60
    )
    elapsed = time.monotonic() - started
    assert answer.status_code == 200, answer.text[:500]
    return elapsed


def _delivery(sid: str) -> BackchannelLogoutDelivery:
    return BackchannelLogoutDelivery.objects.get(session_id=sid)


def _sid(signed: SignedIn) -> str:
    """The login session the tokens were issued in (OIDC Front/Back-Channel Logout `sid`)."""
    return str(jwt.decode(signed.tokens["id_token"], options={"verify_signature": False})["sid"])


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
        up, frozen, refused = (
            sign_in_through(url, rp, email="ada@example.com", password=PASSWORD) for _ in range(3)
        )
        # With the broker up: delivered by the worker, for comparison.
        with_broker = _log_out(url, up)
        [token] = logout_receiver.wait_for_tokens(1)
        assert logout_claims(token)["sid"] == _sid(up)

        # Frozen: connections are accepted (by the kernel) and never answered, as with a
        # partition or a broker stuck on its disk. Each command times out, one retry.
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        with_frozen_broker = _log_out(url, frozen)
        _assert_recorded_and_pending(_sid(frozen))
        # Killed (its queue lost with it: nothing was saved), then refused outright.
        own_redis.stop(signal.SIGKILL)
        without_broker = _log_out(url, refused)
        _assert_recorded_and_pending(_sid(refused))
        bound = 2 * 2 * settings.HEALTH_CHECK_TIMEOUT + 1  # two tries, each connect + command
        assert with_frozen_broker < bound, (with_broker, with_frozen_broker)
        assert without_broker < with_broker + 1, (with_broker, without_broker)

        own_redis.start()  # same port, empty
        back = time.monotonic()
        # Ten minutes pass (STALLED_AFTER) and beat's sweep runs: what it would find.
        stalled_at = timezone.now() - STALLED_AFTER - timedelta(seconds=1)
        pending = BackchannelLogoutDelivery.objects.filter(
            status=BackchannelLogoutDelivery.Status.PENDING
        )
        assert pending.update(updated_at=stalled_at) == 2
        assert worker.broker.send(SWEEP).get(timeout=60) == 2
        wait_for(lambda: not pending.exists(), 60, "the swept deliveries did not arrive")
        delivered_after = time.monotonic() - back
        tokens = logout_receiver.wait_for_tokens(3)
        assert len(tokens) == 3  # one each: the sweep sent none twice
        assert {logout_claims(t)["sid"] for t in tokens[1:]} == {_sid(frozen), _sid(refused)}
        for signed in (frozen, refused):
            assert _delivery(_sid(signed)).attempts == 1
        assert process.poll() is None
    print(
        f"broker_down_s={back - stopped:.2f} logout_with_broker_s={with_broker:.3f} "
        f"logout_with_frozen_broker_s={with_frozen_broker:.3f} "
        f"logout_without_broker_s={without_broker:.3f} "
        f"delivered_after_broker_back_s={delivered_after:.2f}"
    )


def _assert_recorded_and_pending(sid: str) -> None:
    """The session's end, its audit event (the outbox row) and its delivery, committed
    together (apps/sessions/services.py session_end), the delivery not attempted yet."""
    assert LoginSession.objects.get(pk=sid).ended_at is not None
    assert SecurityEvent.objects.filter(event_type=EventType.LOGOUT, session_id=sid).exists()
    delivery = _delivery(sid)
    assert delivery.status == BackchannelLogoutDelivery.Status.PENDING
    assert delivery.attempts == 0
