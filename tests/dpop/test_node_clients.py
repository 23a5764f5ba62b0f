"""DPoP end to end with real npm client libraries, openid-client 6 and oauth4webapi 3, against
the live server (which demands server nonces, as by default): the library makes every proof,
meets use_dpop_nonce and answers it, binds the code (dpop_jkt in the authorization URL, or a
proof with the pushed request), then the code exchange, userinfo and a refresh, all bound to
its key. tests/e2e/node/rp_dpop.mjs is the relying party; this test plays the browser."""

from __future__ import annotations

import subprocess
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from apps.tokens.models import Grant
from apps.tokens.services import client_create
from tests.dpop.conftest import claims_of
from tests.e2e import test_rp_node
from tests.e2e.test_rp_node import LIBRARIES, NODE_DIR, TIMEOUT, NodeRelyingParty
from tests.rp import REDIRECT_URI
from tests.servers import _die_with_parent

pytestmark = pytest.mark.django_db(transaction=True)
node = test_rp_node.node  # its fixture: the node binary, once the npm packages are there

SCOPE = "openid email offline_access"


class DPoPRelyingParty(NodeRelyingParty):
    """tests/e2e/node/rp_dpop.mjs, spoken to as NodeRelyingParty speaks to rp.mjs."""

    def __init__(self, node_path: str, lib: str) -> None:
        self.lib = lib
        self.deadline = time.monotonic() + TIMEOUT
        self.process = subprocess.Popen(
            [node_path, "rp_dpop.mjs", "--lib", lib], cwd=NODE_DIR, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )  # fmt: skip


def _nonce_rounds(exchanges: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    """The answers at `path` that demanded a nonce: a 400 use_dpop_nonce body (token, PAR) or
    a 401 challenge naming it (a resource)."""
    return [
        e for e in exchanges
        if e["path"] == path
        and "use_dpop_nonce" in (e.get("error"), *e.get("www_authenticate", "").split('"'))
    ]  # fmt: skip


@pytest.mark.parametrize("lib", LIBRARIES)
@pytest.mark.parametrize(
    "kind", ["confidential client, dpop_jkt", "public client, pushed request with a proof"]
)
def test_dpop_code_flow_refresh_and_userinfo_with_npm_client(
    lib, kind, node, live_server, hosted_pages, person
) -> None:
    public, par = kind.startswith("public"), "pushed" in kind
    client, secret = client_create(
        name="DPoP RP", redirect_uris=[REDIRECT_URI], public=public,
        grant_types=["authorization_code", "refresh_token"],
    )  # fmt: skip
    relying_party = DPoPRelyingParty(node, lib)
    try:
        relying_party.send({
            "issuer": live_server.url, "client_id": client.client_id, "client_secret": secret,
            "redirect_uri": REDIRECT_URI, "scope": SCOPE, "par": par,
        })  # fmt: skip
        url = relying_party.receive()["authorization_url"]
        request = parse_qs(urlsplit(url).query)
        if par:
            assert set(request) == {"client_id", "request_uri"}
        else:
            assert "dpop_jkt" in request

        response = hosted_pages.visit(url)
        assert response.is_redirect, f"{response.status_code} {response.url}"
        callback = response.headers["Location"]
        code = parse_qs(urlsplit(callback).query)["code"][0]
        result = relying_party.finish({"callback": callback})
    finally:
        relying_party.close()

    jkt = result["jkt"]
    # RFC 9449 §10 / §10.1: the code was bound to the library's key
    assert Grant.objects.get(code=code).dpop_jkt == jkt
    # §5, §6.1: the access token is DPoP, bound to that key; so is the refreshed one
    assert result["token"]["token_type"].lower() == "dpop"
    assert claims_of(result["token"]["access_token"])["cnf"] == {"jkt": jkt}
    assert result["refreshed"]["token_type"].lower() == "dpop"
    assert claims_of(result["refreshed"]["access_token"])["cnf"] == {"jkt": jkt}
    assert result["userinfo"]["sub"] == str(person.pk)
    assert result["id_token_claims"]["sub"] == str(person.pk)

    # §8: the server demanded a nonce at the first proof it saw, the library answered it
    exchanges = result["exchanges"]
    first_proof_path = "/oauth/par" if par else "/oauth/token"
    assert _nonce_rounds(exchanges, first_proof_path), exchanges
    assert all(e["dpop"] for e in exchanges if e["path"] in ("/oauth/token", "/oauth/userinfo"))
    assert all(e["dpop_nonce"] for e in exchanges if e["dpop"])
    if lib == "oauth4webapi":
        # a fresh handle at userinfo: the resource's own nonce round (§9), a 401 challenge
        [refused] = _nonce_rounds(exchanges, "/oauth/userinfo")
        assert refused["status"] == 401
        assert refused["www_authenticate"].startswith("DPoP ")

    # §7.2: the bound token is worthless as a plain Bearer token
    stolen = requests.get(
        f"{live_server.url}/oauth/userinfo",
        headers={"Authorization": f"Bearer {result['refreshed']['access_token']}"},
        timeout=10,
    )
    assert stolen.status_code == 401
    assert 'error="invalid_token"' in stolen.headers["WWW-Authenticate"]
