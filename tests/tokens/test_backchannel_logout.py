"""OpenID Connect Back-Channel Logout 1.0 (apps/tokens/logout_propagation.py): when a login
session ends, the real Celery worker POSTs a Logout Token to each of the session's clients
that registered a backchannel_logout_uri; here that URI is a small HTTP server in the test."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client as HttpClient
from django.utils import timezone

from apps.keys.tasks import rotate_signing_keys
from apps.sessions.models import LoginSession
from apps.sessions.services import session_end
from apps.tokens.logout_propagation import (
    BACKCHANNEL_LOGOUT_EVENT,
    LOGOUT_TOKEN_LIFETIME,
    RETRY_BACKOFF,
    STALLED_AFTER,
    backchannel_deliveries_create,
)
from apps.tokens.models import BackchannelLogoutDelivery, Client
from apps.tokens.selectors import backchannel_deliveries
from apps.tokens.services import consent_grant
from apps.tokens.tasks import redeliver_stalled_backchannel_logouts
from tests.rp import REDIRECT_URI
from tests.servers import free_port, wait_for
from tests.tokens.conftest import LOGOUT, SCOPE, Flow

# Every attempt: the first and one per retry.
ATTEMPTS = len(RETRY_BACKOFF) + 1
WAIT = 30.0  # seconds a test waits for the worker


@dataclass
class Post:
    path: str
    content_type: str
    form: dict[str, list[str]]

    @property
    def logout_token(self) -> str:
        return self.form["logout_token"][0]


@dataclass
class LogoutReceiver:
    """A relying party's back-channel logout endpoint: records each request and answers
    with the next scripted status (the last one repeats), after `release` is set."""

    statuses: list[int]
    posts: queue.Queue[Post] = field(default_factory=queue.Queue)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def answer(self) -> int:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def next_post(self) -> Post:
        return self.posts.get(timeout=WAIT)


@pytest.fixture
def receiver() -> Iterator[Callable[..., LogoutReceiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start(*statuses: int) -> LogoutReceiver:
        state = LogoutReceiver(list(statuses or (200,)))
        state.release.set()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                state.posts.put(
                    Post(self.path, self.headers.get("Content-Type", ""), parse_qs(body.decode()))
                )
                state.release.wait(WAIT)
                self.send_response(state.answer())
                self.send_header("Location", "/followed")  # matters only for a 3xx
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # where a followed redirect would land
                state.posts.put(Post(self.path, "", {}))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.server_address[1]}/backchannel-logout"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def worker_keys(celery_worker) -> None:
    """The worker bootstraps this test's signing keys, so its key snapshot (cached for
    keys.CACHE_MAX_AGE) is of this test's database, not of a flushed earlier one."""
    rotate_signing_keys.apply_async(ignore_result=False).get(timeout=WAIT)


@pytest.fixture
def sign_in(sign_in: Callable[..., Flow], worker_keys: None) -> Callable[..., Flow]:
    """tests/tokens/conftest.py's sign_in, once the worker holds this test's keys. Only
    transactional tests use it: keys the worker commits must be flushed after the test."""
    return sign_in


def live_session(person) -> LoginSession:
    return LoginSession.objects.get(user=person, ended_at__isnull=True)


def finished_deliveries(session: LoginSession, count: int = 1) -> list[BackchannelLogoutDelivery]:
    def finished() -> bool:
        deliveries = backchannel_deliveries([session.pk])
        pending = BackchannelLogoutDelivery.Status.PENDING
        return len(deliveries) == count and all(d.status != pending for d in deliveries)

    wait_for(finished, WAIT, "the deliveries are still pending")
    return backchannel_deliveries([session.pk])


def verified_logout_token(http: HttpClient, token: str, audience: str) -> dict[str, Any]:
    """Back-Channel Logout 1.0 §2.6 validation, against the JWKS relying parties fetch."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "logout+jwt"  # §2.4, RFC 8725 §3.11
    jwks = jwt.PyJWKSet.from_dict(http.get("/oauth/jwks").json())
    key = jwks[header["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[header["alg"]],
        audience=audience,
        issuer=settings.ISSUER,
        options={"require": ["iss", "aud", "iat", "exp", "jti", "events"]},
    )
    return claims


@pytest.mark.django_db(transaction=True)
def test_rp_initiated_logout_posts_a_verifiable_logout_token(
    sign_in: Callable[..., Flow], receiver: Callable[..., LogoutReceiver], person, register
) -> None:
    # Back-Channel Logout 1.0 §2.4 (claims, typ), §2.5 (form POST), §2.6 (validation), §2.7
    endpoint = receiver(200)
    flow = sign_in(backchannel_logout_uri=endpoint.url, id_token_alg="ES256")
    session = live_session(person)
    hint = flow.tokens()["id_token"]
    # registered with a URI, but never given tokens under the session: not told
    bystander = receiver(200)
    register(backchannel_logout_uri=bystander.url)

    page = flow.http.get(LOGOUT, {"id_token_hint": hint})
    assert page.status_code == 200

    post = endpoint.next_post()
    assert post.path == "/backchannel-logout"
    assert post.content_type == "application/x-www-form-urlencoded"
    assert jwt.get_unverified_header(post.logout_token)["alg"] == "ES256"  # the client's alg
    claims = verified_logout_token(flow.http, post.logout_token, flow.rp.client_id)
    assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
    assert claims["sid"] == str(session.pk)
    assert claims["sub"] == str(person.pk)
    assert "nonce" not in claims  # §2.4: MUST NOT
    assert 0 < claims["exp"] - claims["iat"] <= LOGOUT_TOKEN_LIFETIME
    [delivery] = finished_deliveries(session)
    assert (delivery.client_id, delivery.status, delivery.attempts, delivery.last_error) == (
        flow.rp.client_id,
        BackchannelLogoutDelivery.Status.DELIVERED,
        1,
        "",
    )
    assert bystander.posts.empty()


@pytest.mark.django_db(transaction=True)
def test_refused_delivery_is_retried_until_the_client_answers_200(
    sign_in: Callable[..., Flow], receiver: Callable[..., LogoutReceiver], person
) -> None:
    # Back-Channel Logout 1.0 §2.8: anything but 200 (or 204) is a failed attempt
    endpoint = receiver(500, 204)
    flow = sign_in(backchannel_logout_uri=endpoint.url)
    session = live_session(person)

    assert session_end(session=session, reason="operator")

    first, second = endpoint.next_post(), endpoint.next_post()
    jtis = {
        verified_logout_token(flow.http, post.logout_token, flow.rp.client_id)["jti"]
        for post in (first, second)
    }
    assert len(jtis) == 2  # every attempt is a fresh token
    [delivery] = finished_deliveries(session)
    assert (delivery.status, delivery.attempts) == (BackchannelLogoutDelivery.Status.DELIVERED, 2)


@pytest.mark.parametrize("status", [503, 302])
@pytest.mark.django_db(transaction=True)
def test_delivery_that_never_succeeds_ends_failed_after_the_retries(
    sign_in: Callable[..., Flow], receiver: Callable[..., LogoutReceiver], person, status: int
) -> None:
    # Back-Channel Logout 1.0 §2.8; a redirect is not followed (the token goes nowhere else)
    endpoint = receiver(status)
    sign_in(backchannel_logout_uri=endpoint.url)
    session = live_session(person)

    assert session_end(session=session, reason="operator")

    [delivery] = finished_deliveries(session)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        BackchannelLogoutDelivery.Status.FAILED,
        ATTEMPTS,
        f"HTTP {status}",
    )
    paths = [endpoint.posts.get_nowait().path for _ in range(endpoint.posts.qsize())]
    assert paths == ["/backchannel-logout"] * ATTEMPTS


@pytest.mark.django_db(transaction=True)
def test_unreachable_client_ends_failed_with_the_network_error(
    sign_in: Callable[..., Flow], person
) -> None:
    # Back-Channel Logout 1.0 §2.8: no answer at all is a failed attempt too
    sign_in(backchannel_logout_uri=f"http://127.0.0.1:{free_port()}/logout")
    session = live_session(person)

    assert session_end(session=session, reason="operator")

    [delivery] = finished_deliveries(session)
    assert (delivery.status, delivery.attempts) == (
        BackchannelLogoutDelivery.Status.FAILED,
        ATTEMPTS,
    )
    assert "Connection refused" in delivery.last_error


@pytest.mark.django_db(transaction=True)
def test_slow_client_does_not_hold_up_the_logout(
    sign_in: Callable[..., Flow], receiver: Callable[..., LogoutReceiver], person
) -> None:
    # Back-Channel Logout 1.0 §2.7: the OP tells RPs from the worker, not in the request
    endpoint = receiver(200)
    endpoint.release.clear()  # the receiver holds every request until released
    flow = sign_in(backchannel_logout_uri=endpoint.url)
    session = live_session(person)
    hint = flow.tokens()["id_token"]

    page = flow.http.get(LOGOUT, {"id_token_hint": hint})

    assert page.status_code == 200
    endpoint.next_post()  # the worker is waiting for the answer now
    assert backchannel_deliveries([session.pk])[0].status == "pending"
    endpoint.release.set()
    [delivery] = finished_deliveries(session)
    assert delivery.status == BackchannelLogoutDelivery.Status.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_each_client_of_the_session_gets_its_own_delivery(
    sign_in: Callable[..., Flow], receiver: Callable[..., LogoutReceiver], person
) -> None:
    # Back-Channel Logout 1.0 §2.7: every RP with tokens under the session; one failing
    # client does not stop the others
    healthy, broken = receiver(200), receiver(500)
    first = sign_in(backchannel_logout_uri=healthy.url)
    second = sign_in(backchannel_logout_uri=broken.url)
    sign_in()  # no backchannel_logout_uri: nothing to deliver
    session = live_session(person)

    assert session_end(session=session, reason="logout")

    outcome = {d.client_id: d.status for d in finished_deliveries(session, count=2)}
    assert outcome == {
        first.rp.client_id: BackchannelLogoutDelivery.Status.DELIVERED,
        second.rp.client_id: BackchannelLogoutDelivery.Status.FAILED,
    }


@pytest.mark.django_db
def test_discovery_advertises_back_channel_logout_with_sid(client: HttpClient) -> None:
    # Back-Channel Logout 1.0 §2.1
    metadata = client.get("/.well-known/openid-configuration").json()
    assert metadata["backchannel_logout_supported"] is True
    assert metadata["backchannel_logout_session_supported"] is True


def createclient(*args: str) -> None:
    call_command("createclient", "--name", "RP", "--redirect-uri", REDIRECT_URI, *args)


@pytest.mark.parametrize(
    ("flag", "uri"),
    [
        ("--backchannel-logout-uri", "/logout"),
        ("--backchannel-logout-uri", "rp.example.com/logout"),
        ("--backchannel-logout-uri", "https://rp.example.com/logout#now"),
        ("--backchannel-logout-uri", "https://rp.example.com/logout#"),
        ("--backchannel-logout-uri", "javascript:alert(1)"),
        ("--frontchannel-logout-uri", "//rp.example.com/logout"),
        ("--frontchannel-logout-uri", "https://rp.example.com/logout#x"),
        ("--frontchannel-logout-uri", "ftp://rp.example.com/logout"),
    ],
)
@pytest.mark.django_db
def test_createclient_refuses_a_logout_uri_that_is_not_absolute_or_has_a_fragment(
    flag: str, uri: str
) -> None:
    # Back-Channel Logout 1.0 §2.2, Front-Channel Logout 1.0 §2: absolute, no fragment
    with pytest.raises(CommandError) as refused:
        createclient(flag, uri)
    name = flag.removeprefix("--").replace("-", "_")
    assert str(refused.value) == (
        f"{name} {uri!r} must be an absolute https or http URL without a fragment."
    )
    assert not Client.objects.exists()


@pytest.mark.django_db
def test_http_logout_uri_needs_the_http_redirect_opt_in(settings) -> None:
    # RFC 9700 §2.1 via IDP_ALLOW_HTTP_REDIRECT_URIS: the rule redirect URIs follow
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    }
    with pytest.raises(CommandError, match="must be an absolute https URL"):
        createclient("--backchannel-logout-uri", "http://rp.example.com/logout")
    createclient("--backchannel-logout-uri", "https://rp.example.com/logout?tenant=7")
    client = Client.objects.get()
    assert client.backchannel_logout_uri == "https://rp.example.com/logout?tenant=7"
    assert client.backchannel_logout_session_required is True


@pytest.mark.django_db(transaction=True)
def test_a_delivery_that_lost_its_task_is_queued_again_by_the_sweep(
    sign_in: Callable[..., Flow], receiver: Callable[..., LogoutReceiver], person
) -> None:
    # A broker outage at logout leaves the delivery pending with no task to run it.
    endpoint = receiver(200)
    flow = sign_in(backchannel_logout_uri=endpoint.url)
    session = live_session(person)
    [delivery] = backchannel_deliveries_create(session=session)
    stalled_at = timezone.now() - STALLED_AFTER - timedelta(seconds=1)
    BackchannelLogoutDelivery.objects.filter(pk=delivery.pk).update(updated_at=stalled_at)

    assert (
        redeliver_stalled_backchannel_logouts.apply_async(ignore_result=False).get(timeout=WAIT)
        == 1
    )

    verified_logout_token(flow.http, endpoint.next_post().logout_token, flow.rp.client_id)
    [delivery] = finished_deliveries(session)
    assert delivery.status == BackchannelLogoutDelivery.Status.DELIVERED
    assert (
        redeliver_stalled_backchannel_logouts.apply_async(ignore_result=False).get(timeout=WAIT)
        == 0
    )


def _session_with_a_backchannel_client(signed_in: HttpClient, register, person) -> LoginSession:
    rp = register(backchannel_logout_uri="https://rp.example/backchannel-logout")
    client = Client.objects.get(client_id=rp.client_id)
    consent_grant(user_id=person.pk, client=client, scopes=SCOPE.split())
    Flow(signed_in, rp).tokens()
    return live_session(person)


def test_the_delivery_commits_with_the_session_end_before_its_task_is_queued(
    signed_in: HttpClient, register, person, django_capture_on_commit_callbacks
) -> None:
    # The task is queued after commit; a crash in between must leave the delivery recorded
    # (pending), for the sweep to queue, rather than lose the notice.
    session = _session_with_a_backchannel_client(signed_in, register, person)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        session_end(session=session, reason="logout")

    [delivery] = backchannel_deliveries([session.pk])
    assert delivery.status == BackchannelLogoutDelivery.Status.PENDING
    assert [callback.args for callback in queued if hasattr(callback, "args")] == [(delivery.pk,)]


def _end_then_fail(session: LoginSession) -> None:
    with transaction.atomic():
        session_end(session=session, reason="logout")
        raise RuntimeError("the action that ended the session fails")


def test_a_session_end_that_rolls_back_leaves_no_delivery(
    signed_in: HttpClient, register, person
) -> None:
    session = _session_with_a_backchannel_client(signed_in, register, person)
    with pytest.raises(RuntimeError):
        _end_then_fail(session)

    assert backchannel_deliveries([session.pk]) == []
    assert LoginSession.objects.get(pk=session.pk).ended_at is None
