"""A DPoP proof costs the token endpoint and userinfo no SQL statement: tests/tokens'
budgets (issue 11) hold with DPoP, the proof's key checked in memory and its jti remembered in
Redis (a round trip, not a statement)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient

from tests.dpop.conftest import (
    USERINFO_URL,
    DPoPKey,
    bound_tokens,
    dpop_userinfo,
    exchange,
    token_post,
)
from tests.tokens.conftest import Flow, new_pkce
from tests.tokens.test_statement_budgets import _show, caches_caught_up, statements, warm

pytestmark = pytest.mark.django_db(transaction=True)


def test_client_credentials_with_dpop_runs_no_statement(client: HttpClient, register) -> None:
    machine = register(grant_types=["client_credentials"], redirect_uris=[])
    for _ in range(2):  # the signing keys made, then every cache warm
        token_post(client, {"grant_type": "client_credentials"}, rp=machine, proof=None)
        caches_caught_up()
    with statements() as sql:
        response = token_post(
            client, {"grant_type": "client_credentials"}, rp=machine, proof=DPoPKey().proof()
        )
    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "DPoP"
    assert sql == [], _show(sql)


def test_code_exchange_with_dpop_runs_at_most_eight_statements(flow: Flow) -> None:
    warm(flow)
    key = DPoPKey()
    pkce = new_pkce()
    code = flow.code(pkce, dpop_jkt=key.jkt)
    flow.http = HttpClient()  # the relying party's server
    with statements() as sql:
        response = exchange(flow, code, pkce.verifier, key.proof())
    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "DPoP"
    assert len(sql) <= 8, _show(sql)


def test_userinfo_with_dpop_runs_at_most_one_statement(flow: Flow) -> None:
    warm(flow)
    key = DPoPKey()
    token: Any = bound_tokens(flow, key)["access_token"]
    proof = key.proof("GET", USERINFO_URL, access_token=token)
    with statements() as sql:
        response = dpop_userinfo(HttpClient(), token, proof)
    assert response.status_code == 200, response.content
    assert len(sql) <= 1, _show(sql)
