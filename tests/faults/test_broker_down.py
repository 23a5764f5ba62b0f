"""The Celery broker down during a logout (issue 20, "Faults"): the logout through the
production web server still happens and is recorded — the session ended, its Back-Channel
Logout delivery PENDING, the `logout` event in the outbox, all in the transaction that ended
it (apps/sessions/services.py session_end) — and the person gets their signed-out page at
once: the task is queued after commit and a failure to queue never fails the request
(apps/core/commit.py). When the broker is back the sweep (beat, every 5 minutes:
tasks.redeliver_stalled_backchannel_logouts) queues the delivery again and the worker
delivers it.

Two outages: the broker frozen (connections accepted, never answered) and the broker gone
(connections refused). Each held the logout before idp/settings.py bounded the broker's and
the result backend's commands (the sending process subscribes to the task's result before it
publishes): frozen, past 60 s; gone, 19 s of result-backend reconnects.

Each publish the broker does not take is one WARNING line naming the task, with the request
id and the error, never an ERROR with a traceback (apps/core/commit.py): an outage is not a
log storm. A password reset asked for meanwhile is not re-sent by anything, so its page says
nothing is on its way (docs/operations.md "The broker down").

The broker is a Redis of the test's own; the web server and the worker use it, the suite's
worker does not (tests/faults/conftest.py Worker).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

from apps.core.events import EventType
from apps.core.models import SecurityEvent
from apps.sessions.models import LoginSession
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
def test_a_logout_while_the_broker_is_down_is_recorded_at_once_and_delivered_when_it_returns(
    own_redis: Redis,
    test_database_env: dict[str, str],
    workers: list[Worker],
    logout_receiver: LogoutReceiver,
    tmp_path: Path,
) -> None:
    rp = relying_party(
        grant_types=["authorization_code"], backchannel_logout_uri=logout_receiver.url
    )
    broker = own_redis.url(0)
    env = {**test_database_env, "CELERY_BROKER_URL": broker, "IDP_WEB_WORKERS": "1"}
    worker = Worker(test_database_env, tmp_path / "worker.log", broker).start()
    workers.append(worker)
    log = tmp_path / "web.log"
    with web_server(env, log) as (process, url):
        up, frozen, refused, later = (
            sign_in_through(url, rp, email="ada@example.com", password=PASSWORD) for _ in range(4)
        )
        # With the broker up: delivered by the worker, for comparison.
        with_broker = log_out(url, up)
        [token] = logout_receiver.wait_for_tokens(1)
        assert logout_claims(token)["sid"] == session_id(up)

        # Frozen: connections are accepted (by the kernel) and never answered, as with a
        # partition or a broker stuck on its disk: every command times out.
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        with_frozen_broker = log_out(url, frozen)
        session_recorded_and_pending(session_id(frozen))
        # Killed (its queue lost with it: nothing was saved), then refused outright.
        own_redis.stop(signal.SIGKILL)
        without_broker = log_out(url, refused)
        session_recorded_and_pending(session_id(refused))
        # A reset asked for now: no "check your mail" for a mail nothing will send.
        forgot = ask_for_a_reset_link(url, "ada@example.com")
        assert forgot.status_code == 503, forgot.text[:500]
        assert "Nothing is on its way" in forgot.text
        # One WARNING line per publish that failed: two logouts and the reset.
        unqueued = wait_for_unqueued(log, 3)
        assert [line["task"] for line in unqueued] == [
            "apps.tokens.tasks.deliver_backchannel_logout",
            "apps.tokens.tasks.deliver_backchannel_logout",
            "apps.signin.tasks.password_reset_mail_task",
        ]
        assert {line["level"] for line in unqueued} == {"warning"}
        assert all(line.get("request_id") and "exc" not in line for line in unqueued), unqueued
        logged = log.read_text(errors="replace")
        assert "Traceback" not in logged
        assert not [line for line in json_lines(log) if line["level"] in ("error", "critical")]
        assert without_broker < with_broker + 1, (with_broker, without_broker)
        # each broker and result-backend command bounded, one retry each (idp/settings.py)
        assert with_frozen_broker < 6 * settings.HEALTH_CHECK_TIMEOUT, with_frozen_broker

        own_redis.start()  # same port, empty
        back = time.monotonic()
        assert ten_minutes_pass() == 2
        assert worker.broker.send(SWEEP).get(timeout=60) == 2
        pending = BackchannelLogoutDelivery.objects.filter(
            status=BackchannelLogoutDelivery.Status.PENDING
        )
        wait_for(lambda: not pending.exists(), 60, "the swept delivery did not arrive")
        delivered_after = time.monotonic() - back
        tokens = logout_receiver.wait_for_tokens(3)
        assert len(tokens) == 3  # one per session
        swept = {session_id(frozen), session_id(refused)}
        assert {logout_claims(token)["sid"] for token in tokens[1:]} == swept
        assert [delivery_of(sid).attempts for sid in swept] == [1, 1]
        # The same web server queues again by itself, without a restart.
        log_out(url, later)
        assert logout_claims(logout_receiver.wait_for_tokens(4)[3])["sid"] == session_id(later)
        assert process.poll() is None
    print(
        f"broker_down_s={back - stopped:.2f} logout_with_broker_s={with_broker:.3f} "
        f"logout_with_frozen_broker_s={with_frozen_broker:.3f} "
        f"logout_without_broker_s={without_broker:.3f} "
        f"delivered_after_broker_back_s={delivered_after:.2f}"
    )


def ask_for_a_reset_link(url: str, email: str) -> requests.Response:
    """/password/forgot as a browser fills it (its CSRF cookie and token)."""
    http = requests.Session()
    page = http.get(f"{url}/password/forgot", timeout=30)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return http.post(
        f"{url}/password/forgot", data={"csrfmiddlewaretoken": match.group(1), "email": email},
        headers={"Referer": f"{url}/password/forgot"}, timeout=60,
    )  # fmt: skip


def json_lines(log: Path) -> list[dict[str, Any]]:
    """The log's complete JSON lines (the last may be half written while we read)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            found.append(json.loads(line))
    return [line for line in found if isinstance(line, dict)]


def wait_for_unqueued(log: Path, count: int) -> list[dict[str, Any]]:
    """The web server's `task … not queued` lines (apps/core/commit.py), once there are
    `count` of them."""

    def unqueued() -> list[dict[str, Any]]:
        return [line for line in json_lines(log) if line.get("logger") == "tessera.tasks"]

    wait_for(lambda: len(unqueued()) >= count, 30, f"fewer than {count} unqueued-task lines")
    return unqueued()


def session_recorded_and_pending(sid: str) -> None:
    """The session's end, its audit event (the outbox row) and its delivery, committed
    together (apps/sessions/services.py session_end), the delivery not attempted yet."""
    assert LoginSession.objects.get(pk=sid).ended_at is not None
    assert SecurityEvent.objects.filter(event_type=EventType.LOGOUT, session_id=sid).exists()
    delivery = delivery_of(sid)
    assert delivery.status == BackchannelLogoutDelivery.Status.PENDING
    assert delivery.attempts == 0
