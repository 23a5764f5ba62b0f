"""The revocation list as every process sees it: mirrored in memory, kept current by Redis
pub/sub, failing closed while Redis is unreachable."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings
from redis.connection import AbstractConnection

from apps.accounts.services import user_create
from apps.core import revocation
from apps.sessions.services import session_start
from apps.tokens.claims import access_token_claims, sign
from apps.tokens.clients import client_by_id
from apps.tokens.services import client_create
from apps.tokens.validation import RevocationStatusUnknown, validate_access_token
from idp.serve import web_server_argv
from tests.conftest import redis_start_again
from tests.servers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _user_token(*, staff: bool = False, scopes: tuple[str, ...] = ("openid",)) -> tuple[str, dict]:
    """An access token as the token endpoint issues it (claims + sign), for a new user."""
    user = user_create(email=f"u{time.monotonic_ns()}@example.com", password=None)
    if staff:
        user.is_staff, user.staff_role = True, "administrator"
        user.save(update_fields=["is_staff", "staff_role"])
    session = session_start(user=user, amr=["pwd"])
    if client_by_id("rp") is None:  # validation refuses a token of an unknown client
        client_create(name="RP", redirect_uris=["https://rp.example/cb"], client_id="rp")
    claims = access_token_claims(
        client_id="rp", user=user, scopes=list(scopes), session=session,
        audience=[settings.ACCESS_TOKEN_AUDIENCE], refreshed=False,
    )  # fmt: skip
    return sign(claims, alg=settings.ACCESS_TOKEN_ALG, typ="at+jwt"), claims


@pytest.fixture
def two_web_processes(servers, django_db_setup) -> Iterator[list[str]]:
    """Two production web servers (idp.serve.web_server_argv, as deploy/ runs it) on the
    suite's database."""
    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(settings.DATABASES["default"]["NAME"]),
        "IDP_WEB_WORKERS": "1",
        "IDP_LOG_LEVEL": "warning",
    }
    processes, urls = [], []
    web = web_server_argv(sys.executable)
    for _ in range(2):
        port = free_port()
        processes.append(subprocess.Popen(
            web, cwd=ROOT, env={**env, "PORT": str(port)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            # Serving, and its revocation mirror current: a first check waits for the mirror
            # only revocation.STARTUP_WAIT_SECONDS, less than a loaded machine may take.
            wait_for(lambda url=url: _revocation_check(url) == "up", 30, f"{url} did not start")
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)


def _status(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return requests.get(url, headers=headers, timeout=5).status_code
    except requests.RequestException:  # not listening yet, or still booting past the timeout
        return 0


def _revocation_check(url: str) -> str:
    """The process's /readyz revocation check ("up" once its mirror holds the list); asking
    starts the mirror."""
    try:
        return str(
            requests.get(url + "/readyz", timeout=5).json()["checks"]["revocation"]["status"]
        )
    except (requests.RequestException, ValueError, KeyError):  # not serving readyz yet
        return ""


@pytest.mark.django_db(transaction=True)
def test_a_revoked_session_is_refused_by_every_web_process_within_a_second(
    two_web_processes,
) -> None:
    # An operator revokes the session through the admin API of the first process; the second
    # process, which shares nothing with it but Redis and the database, refuses the token.
    token, claims = _user_token()
    operator, _ = _user_token(staff=True, scopes=("openid", "admin"))
    first, second = two_web_processes
    assert [_status(url + "/oauth/userinfo", token) for url in (first, second)] == [200, 200]

    response = requests.post(
        f"{first}/api/v1/sessions/{claims['sid']}/revoke",
        headers={"Authorization": f"Bearer {operator}"},
        timeout=5,
    )
    revoked_at = time.monotonic()
    assert response.status_code == 200, response.text
    wait_for(lambda: _status(second + "/oauth/userinfo", token) == 401, 1.0, "still accepted")
    elapsed = time.monotonic() - revoked_at

    assert elapsed < 1.0
    assert _status(first + "/oauth/userinfo", token) == 401
    print(f"revoked through one process, refused by the other after {elapsed * 1000:.0f} ms")


@pytest.mark.django_db
def test_checks_read_the_in_memory_mirror_not_redis(monkeypatch) -> None:
    token, _ = _user_token()
    validate_access_token(token)  # the mirror is current
    # Every Redis command this thread sends. (Not the server's command count: that counts the
    # Celery worker's broker polls too, and the mirror's pings on its own thread.)
    sent: list[bytes] = []
    checking = threading.get_ident()
    send = AbstractConnection.send_packed_command

    def counted(self: AbstractConnection, command: bytes, check_health: bool = True) -> None:
        if threading.get_ident() == checking:
            sent.append(command)
        send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    for _ in range(50):
        validate_access_token(token)

    assert sent == []


@pytest.mark.django_db
def test_validation_fails_closed_while_redis_is_down_and_recovers(servers) -> None:
    token, _ = _user_token()
    validate_access_token(token)

    servers.redis.stop()
    try:
        wait_for(lambda: not revocation._mirror.current.is_set(), 5, "the mirror did not notice")
        started = time.monotonic()
        with pytest.raises(RevocationStatusUnknown):  # not InvalidToken: not known bad
            validate_access_token(token)
        # Refused at once: only a process's first look waits for the mirror's first load.
        assert time.monotonic() - started < revocation.STARTUP_WAIT_SECONDS / 2
    finally:
        redis_start_again(servers)
    wait_for(lambda: revocation._mirror.current.is_set(), 10, "the mirror did not recover")
    assert validate_access_token(token)["jti"]


@pytest.mark.django_db
def test_fail_open_setting_accepts_tokens_while_redis_is_down(servers, settings) -> None:
    token, _ = _user_token()
    validate_access_token(token)
    settings.REVOCATION_FAIL_OPEN = True

    servers.redis.stop()
    try:
        wait_for(lambda: not revocation._mirror.current.is_set(), 5, "the mirror did not notice")
        assert validate_access_token(token)["jti"]
    finally:
        redis_start_again(servers)
    wait_for(lambda: revocation._mirror.current.is_set(), 10, "the mirror did not recover")


def test_a_revocation_the_list_lost_is_still_refused_by_a_process_that_heard_it(
    redis_client,
) -> None:
    """After a Sentinel failover the new primary may lack a revocation the old one took last
    (replication is asynchronous); the mirror loads the list again on resubscribing and keeps
    what it already held (docs/redis-ha.md)."""
    revocation.revoke_jti("lost-in-failover", expires_in=600)
    redis_client.delete("tessera:revoked:jti:lost-in-failover")  # the new primary never had it
    revocation._mirror.on_subscribed()  # what the subscriber does when it is back
    assert revocation.is_revoked(jti="lost-in-failover", sid=None)
