"""apps/threat/alerts.py and tasks.py: a threat alert reaches operators through a signed
webhook (received here by a loopback HTTP server, delivered by the suite's real Celery worker,
retried after a 500) and e-mail (the suite's SMTP server), once per rule and person (or IP)
within the dedup window; the signature is what docs/threat.md tells a receiver to check."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from apps.core.risk import Action, LoginContext, RiskDecision, RiskReason
from apps.threat.alerts import SIGNATURE_HEADER, body_of, sign, verify
from apps.threat.responses import respond
from apps.threat.tasks import retry_countdown, webhook_deliver
from tests.conftest import THREAT_WEBHOOK_SECRET, Mailbox
from tests.core.test_settings import _check
from tests.events import recorded

WAIT = 30.0
PREVIOUS_SECRET = "previous-threat-webhook-secret-0123456789"


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class AlertReceiver:
    """An operator's webhook endpoint: records each POST, answers the next scripted status
    (the last one repeats)."""

    statuses: list[int]
    posts: queue.Queue[Delivery] = field(default_factory=queue.Queue)
    url: str = ""

    def answer(self) -> int:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def next_post(self) -> Delivery:
        return self.posts.get(timeout=WAIT)


@pytest.fixture
def receiver() -> Iterator[Callable[..., AlertReceiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start(*statuses: int) -> AlertReceiver:
        state = AlertReceiver(list(statuses or (200,)))

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                state.posts.put(Delivery(dict(self.headers.items()), body))
                self.send_response(state.answer())
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.server_address[1]}/tessera-alerts"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def decision(*rules: str, action: str = Action.ALERT) -> RiskDecision:
    return RiskDecision(
        score=91,
        action=action,
        reasons=(RiskReason("impossible_travel", 60, "Tokyo, JP → Lyon, FR: 9,720 km in 2 h"),),
        rules=rules or ("impossible-travel",),
        actions=(action,),
        extra={"country": "FR", "city": "Lyon", "asn": 3215, "severity": "high"},
    )


def attempt(email: str, ip: str = "203.0.113.7", user_id: Any = None) -> LoginContext:
    return LoginContext(
        at=timezone.now(),
        email=email,
        ip=ip,
        user_agent="Mozilla/5.0",
        success=True,
        user_id=user_id,
    )


def alerted(events: list[Any]) -> list[Any]:
    return [e for e in events if e.event_type == "threat.alerted"]


# --- the signature -----------------------------------------------------------------------------


def test_the_signature_verifies_with_either_secret_during_a_rotation() -> None:
    body = body_of({"id": "x", "rule": "r", "person": "Zoë"})
    now = int(time.time())
    header = sign(body, timestamp=now, secrets=[THREAT_WEBHOOK_SECRET, PREVIOUS_SECRET])
    assert header.startswith(f"t={now},v1=")
    assert header.count("v1=") == 2
    assert verify(body, header, secret=THREAT_WEBHOOK_SECRET)
    assert verify(body, header, secret=PREVIOUS_SECRET)
    assert not verify(body, header, secret="another-secret-of-at-least-32-chars!")


def test_a_changed_body_a_stale_time_or_a_malformed_header_is_refused() -> None:
    body = body_of({"id": "x", "score": 91})
    now = int(time.time())
    header = sign(body, timestamp=now, secrets=[THREAT_WEBHOOK_SECRET])
    assert not verify(body.replace(b"91", b"19"), header, secret=THREAT_WEBHOOK_SECRET)
    stale = sign(body, timestamp=now - 301, secrets=[THREAT_WEBHOOK_SECRET])
    assert not verify(body, stale, secret=THREAT_WEBHOOK_SECRET)  # a replay, past 300 s
    assert verify(body, stale, secret=THREAT_WEBHOOK_SECRET, tolerance=600)
    for malformed in ("", "v1=abc", f"t={now}", "t=soon,v1=00", "garbage", ",,=,"):
        assert not verify(body, malformed, secret=THREAT_WEBHOOK_SECRET)
    assert not verify(body, header, secret="")  # no key: nothing verifies


def test_retries_back_off_exponentially_with_jitter() -> None:
    with override_settings(THREAT_WEBHOOK_RETRY_BASE_SECONDS=10):
        for retries, full in [(0, 10), (1, 20), (2, 40), (10, 600)]:
            waits = [retry_countdown(retries) for _ in range(50)]
            assert all(full / 2 <= wait <= full for wait in waits)
            assert len(set(waits)) > 1  # jittered


# --- delivery by the worker --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_webhook_is_signed_and_retried_after_a_500(
    person, celery_worker, receiver: Callable[..., AlertReceiver]
) -> None:
    endpoint = receiver(500, 200)
    with (
        override_settings(THREAT_WEBHOOK_URL=endpoint.url, THREAT_WEBHOOK_SECRET="x" * 32),
        recorded() as events,
    ):
        respond(
            decision("impossible-travel"),
            user_id=person.pk,
            context=attempt(person.email, user_id=person.pk),
        )

    first, second = endpoint.next_post(), endpoint.next_post()
    [event] = alerted(events)
    assert event.metadata["channels"] == ["webhook"]
    for post in (first, second):
        # The worker signs with its own key (IDP_THREAT_WEBHOOK_SECRET), never the web
        # process's setting: the key does not travel through the broker.
        assert verify(post.body, post.headers[SIGNATURE_HEADER], secret=THREAT_WEBHOOK_SECRET)
        assert post.headers["Content-Type"] == "application/json; charset=utf-8"
        assert post.headers["Tessera-Alert-Id"] == str(event.id)
    assert first.body == second.body  # the same alert, signed again
    payload = second.payload
    assert payload["id"] == str(event.id)
    assert payload["type"] == "threat.alerted"
    assert payload["rule"] == "impossible-travel"
    assert payload["score"] == 91
    assert payload["user"] == {"id": str(person.pk), "email": person.email}
    assert payload["ip"] == "203.0.113.7"
    assert payload["country"] == "FR"
    assert payload["city"] == "Lyon"
    assert payload["asn"] == 3215
    assert payload["reasons"][0]["signal"] == "impossible_travel"
    assert endpoint.posts.empty()


def test_a_delivery_given_up_is_logged(
    receiver: Callable[..., AlertReceiver], caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = receiver(503)
    payload = {"id": "5f0c", "rule": "r"}
    with (
        override_settings(
            THREAT_WEBHOOK_SECRET=THREAT_WEBHOOK_SECRET,
            THREAT_WEBHOOK_RETRIES=1,
            THREAT_WEBHOOK_RETRY_BASE_SECONDS=0,
        ),
        caplog.at_level(logging.ERROR, logger="tessera.threat"),
    ):
        result = webhook_deliver.apply(args=[endpoint.url, payload])
    assert result.get() is None
    assert endpoint.posts.qsize() == 2  # the first try and one retry
    [line] = [r.getMessage() for r in caplog.records if "threat.webhook_failed" in r.getMessage()]
    assert "alert 5f0c not delivered after 2 tries: WebhookRefused: HTTP 503" in line


def test_a_redirect_is_a_failure_not_followed(
    receiver: Callable[..., AlertReceiver], caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = receiver(302)
    with override_settings(THREAT_WEBHOOK_RETRIES=0), caplog.at_level(logging.ERROR):
        assert webhook_deliver.apply(args=[endpoint.url, {"id": "a"}]).get() is None
    assert endpoint.posts.qsize() == 1
    assert any("HTTP 302" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True)
def test_operators_get_an_email(person, mailbox: Mailbox) -> None:
    soc = "soc-alerts@example.com"
    with override_settings(THREAT_ALERT_EMAILS=[soc]), recorded() as events:
        respond(
            decision("impossible-travel", action=Action.BLOCK),
            user_id=person.pk,
            context=attempt(person.email, user_id=person.pk),
        )
    message = mailbox.wait_for(to=soc, subject_contains="Threat alert: impossible-travel")
    text = mailbox.text(message)
    assert person.email in text
    assert "block, invalidate_sessions" in text
    assert "impossible_travel (+60): Tokyo, JP → Lyon, FR: 9,720 km in 2 h" in text
    assert "From: 203.0.113.7 (Lyon, FR)" in text
    assert f"/console/users/{person.pk}/" in text
    [event] = alerted(events)
    assert f"Alert id: {event.id}" in text
    assert event.metadata["channels"] == ["email"]


# --- deduplication -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_rule_for_the_same_person_alerts_once_in_the_window(person) -> None:
    context = attempt(person.email, user_id=person.pk)
    with recorded() as events:
        for _ in range(50):  # a stuffing run against one account
            respond(decision("stuffing"), user_id=person.pk, context=context)
        respond(decision("new-device"), user_id=person.pk, context=context)  # another rule
    assert [e.metadata["rule"] for e in alerted(events)] == ["stuffing", "new-device"]


@pytest.mark.django_db
def test_unknown_addresses_are_deduplicated_by_ip() -> None:
    with recorded() as events:
        for number in range(20):
            respond(decision("stuffing"), user_id=None, context=attempt(f"u{number}@example.com"))
        respond(decision("stuffing"), user_id=None, context=attempt("x@example.com", "192.0.2.1"))
    assert [e.metadata["ip"] for e in alerted(events)] == ["203.0.113.7", "192.0.2.1"]


@pytest.mark.django_db
def test_the_window_passes(person, redis_client) -> None:
    context = attempt(person.email, user_id=person.pk)
    with override_settings(THREAT_ALERT_DEDUP_SECONDS=1), recorded() as events:
        respond(decision("stuffing"), user_id=person.pk, context=context)
        [key] = redis_client.keys("tessera:threat:alerted:*")
        assert 0 < redis_client.pttl(key) <= 1000
        redis_client.delete(key)  # what the expiry does after a second
        respond(decision("stuffing"), user_id=person.pk, context=context)
    assert len(alerted(events)) == 2


@pytest.mark.django_db
def test_with_redis_down_dedup_fails_open_and_alerts(person, servers) -> None:
    """A duplicate alert is better than a missed attack: without Redis every alert goes."""
    from tests.conftest import redis_start_again

    servers.redis.stop()
    try:
        with recorded() as events:
            respond(decision("stuffing"), user_id=None, context=attempt("a@example.com"))
            respond(decision("stuffing"), user_id=None, context=attempt("b@example.com"))
    finally:
        redis_start_again(servers)
    assert len(alerted(events)) == 2


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"IDP_THREAT_WEBHOOK_URL": "http://alerts.example.com/hook"}, "expected an https:// URL"),
        ({"IDP_THREAT_WEBHOOK_URL": "ftp://alerts.example.com"}, "https:// or http://"),
        ({"IDP_THREAT_WEBHOOK_URL": "https://alerts.example.com/hook"}, "SECRET is not"),
        ({"IDP_THREAT_WEBHOOK_SECRET": "short"}, "IDP_THREAT_WEBHOOK_SECRET is too short"),
        ({"IDP_THREAT_ALERT_EMAILS": "soc@example.com, not-an-address"}, "e-mail addresses"),
        ({"IDP_THREAT_ALERT_DEDUP_SECONDS": "-5"}, "an integer from 0 to 86400"),
    ],
)
def test_malformed_threat_settings_stop_startup(tmp_path, environ, named) -> None:
    result = _check(tmp_path, **environ)
    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_http_is_accepted_for_a_loopback_webhook_only(tmp_path) -> None:
    for url in ("http://127.0.0.1:8081/hook", "http://localhost/hook", "http://[::1]:9/h"):
        result = _check(tmp_path, IDP_THREAT_WEBHOOK_URL=url, IDP_THREAT_WEBHOOK_SECRET="s" * 32)
        assert result.returncode == 0, result.stderr
