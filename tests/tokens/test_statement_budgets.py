"""SQL statements per request on the hot endpoints (issue 11's budgets). Counts, not times:
they are deterministic, and each statement is a database round trip the request waits for.

Run without the test's wrapping transaction (transaction=True), as production runs: there a
handler's transaction costs no SAVEPOINT statements, and an event recorded outside a
transaction goes to the audit journal, not to an INSERT."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from apps.core import cache
from apps.core.redis import get_redis
from tests.rp import RegisteredClient
from tests.tokens.conftest import (
    INTROSPECT,
    TOKEN,
    Flow,
    authorize_params,
    form_post,
    new_pkce,
    userinfo,
)

pytestmark = pytest.mark.django_db(transaction=True)


# Transaction control is not counted: a handler that writes commits one transaction.
_CONTROL = {"BEGIN", "COMMIT"}


@contextmanager
def statements() -> Iterator[list[str]]:
    with CaptureQueriesContext(connection) as captured:
        sql: list[str] = []
        yield sql
    sql.extend(q["sql"] for q in captured.captured_queries if q["sql"] not in _CONTROL)


def rp_backend() -> HttpClient:
    """A relying party's server: it has none of the person's browser cookies."""
    return HttpClient()


class _Sentinel:
    """Records the keys of the messages it is sent through the cache channel."""

    name = "test-statement-budgets"

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.arrived = threading.Condition()

    def on_message(self, key: str) -> None:
        with self.arrived:
            self.keys.add(key)
            self.arrived.notify_all()

    def on_subscribed(self) -> None:
        pass

    def on_lost(self) -> None:
        pass

    def prune(self) -> None:
        pass


def caches_caught_up() -> None:
    """Waits until every cache invalidation published so far (a client registered, the
    signing keys created) has reached this process: one channel delivers in order, so a
    message published now arrives after them."""
    sentinel = cache.bus.listener(_Sentinel.name) or _Sentinel()
    if cache.bus.listener(_Sentinel.name) is None:
        cache.bus.register(sentinel)
    assert isinstance(sentinel, _Sentinel)
    cache.bus.ensure_started()
    key = uuid.uuid4().hex
    get_redis().publish(cache.CHANNEL, f"{_Sentinel.name} {key}")
    with sentinel.arrived:
        assert sentinel.arrived.wait_for(lambda: key in sentinel.keys, timeout=30), "no message"


def warm(flow: Flow) -> None:
    """The first tokens create the signing keys; then every cache loads what it serves."""
    flow.tokens()
    caches_caught_up()
    flow.tokens()


def _show(sql: list[str]) -> str:
    return "\n".join(f"{n}. {statement[:160]}" for n, statement in enumerate(sql, 1))


def test_client_credentials_token_runs_no_statement(client: HttpClient, register) -> None:
    machine: RegisteredClient = register(grant_types=["client_credentials"], redirect_uris=[])
    form_post(client, TOKEN, {"grant_type": "client_credentials"}, auth=machine)  # makes keys
    caches_caught_up()
    form_post(client, TOKEN, {"grant_type": "client_credentials"}, auth=machine)  # warm caches
    with statements() as sql:
        response = form_post(client, TOKEN, {"grant_type": "client_credentials"}, auth=machine)
    assert response.status_code == 200, response.content
    assert sql == [], _show(sql)


def test_code_exchange_runs_at_most_eight_statements(flow: Flow) -> None:
    # select code, spend it, claims, access row, refresh row, session client, event
    warm(flow)
    pkce = new_pkce()
    code = flow.code(pkce)
    flow.http = rp_backend()
    with statements() as sql:
        response = flow.exchange(code, pkce.verifier)
    assert response.status_code == 200, response.content
    assert len(sql) <= 8, _show(sql)


def test_refresh_runs_at_most_six_statements(flow: Flow) -> None:
    # select the token (with session, user, scope), rotate, claims, access row, refresh row,
    # event
    warm(flow)
    tokens: dict[str, Any] = flow.tokens()
    flow.http = rp_backend()
    with statements() as sql:
        response = flow.refresh(tokens["refresh_token"])
    assert response.status_code == 200, response.content
    assert len(sql) <= 6, _show(sql)


def test_userinfo_runs_at_most_one_statement(flow: Flow) -> None:
    warm(flow)
    access_token = flow.tokens()["access_token"]
    with statements() as sql:
        response = userinfo(rp_backend(), access_token)
    assert response.status_code == 200, response.content
    assert len(sql) <= 1, _show(sql)


def test_introspection_runs_at_most_one_statement(flow: Flow, register) -> None:
    resource_server = register(grant_types=["client_credentials"], redirect_uris=[])
    warm(flow)
    access_token = flow.tokens()["access_token"]
    http = rp_backend()
    form_post(http, INTROSPECT, {"token": access_token}, auth=resource_server)  # client cached
    with statements() as sql:
        response = form_post(http, INTROSPECT, {"token": access_token}, auth=resource_server)
    assert response.status_code == 200, response.content
    assert response.json()["active"] is True
    assert len(sql) <= 1, _show(sql)


def test_pushed_authorization_request_runs_no_statement(flow: Flow) -> None:
    # RFC 9126 §2: the client (cached), its checks and the Redis record; no database
    warm(flow)
    http = rp_backend()
    params = authorize_params(flow.rp.client_id, new_pkce())
    form_post(http, "/oauth/par", params, auth=flow.rp)  # oauthlib's first look at the client
    with statements() as sql:
        response = form_post(http, "/oauth/par", params, auth=flow.rp)
    assert response.status_code == 201, response.content
    assert sql == [], _show(sql)
