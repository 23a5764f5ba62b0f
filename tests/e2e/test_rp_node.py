"""Relying parties on real npm client libraries, openid-client 6 and oauth4webapi 3 on Node.js,
run the authorization code flow against the live server.

tests/e2e/node/rp.mjs uses each library the way its README does: discovery, an authorization
URL with PKCE S256, state and nonce, the code exchange (client_secret_basic) that validates the
ID token, userinfo, and a refresh. This test plays the browser between the two halves.
`make test` installs the packages pinned in tests/e2e/node/package-lock.json.
"""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.tokens.services import client_create
from tests.rp import REDIRECT_URI, RegisteredClient
from tests.servers import _die_with_parent

pytestmark = pytest.mark.django_db(transaction=True)

NODE_DIR = Path(__file__).resolve().parent / "node"
TIMEOUT = 60
SCOPE = "openid email offline_access"
LIBRARIES = ["openid-client", "oauth4webapi"]


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (NODE_DIR / "node_modules" / "openid-client").is_dir():
        raise pytest.UsageError(
            "node or the npm packages of tests/e2e/node are missing: run `make test`, "
            "which installs them"
        )
    return found


class NodeRelyingParty:
    """tests/e2e/node/rp.mjs for one library, spoken to in JSON lines."""

    def __init__(self, node: str, lib: str) -> None:
        self.lib = lib
        self.deadline = time.monotonic() + TIMEOUT
        self.process = subprocess.Popen(
            [node, "rp.mjs", "--lib", lib], cwd=NODE_DIR, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )  # fmt: skip

    def _left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def _failed(self, what: str, message: dict | None = None) -> AssertionError:
        if self.process.poll() is None:
            self.process.kill()
        _, stderr = self.process.communicate()
        error = json.dumps(message["error"], indent=2) if message else ""
        return AssertionError(f"{self.lib}: {what}\n{error}\nstderr:\n{stderr[-3000:]}")

    def send(self, message: dict) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], self._left())
        if not ready:
            raise self._failed(f"no answer within {TIMEOUT}s")
        line = self.process.stdout.readline()
        if not line:
            raise self._failed(f"exited ({self.process.wait()}) without an answer")
        message = json.loads(line)
        if "error" in message:
            raise self._failed("the library raised", message)
        return dict(message)

    def finish(self, message: dict) -> dict:
        """Sends the last input and returns the script's last message."""
        try:
            stdout, stderr = self.process.communicate(json.dumps(message) + "\n", self._left())
        except subprocess.TimeoutExpired:
            raise self._failed(f"no result within {TIMEOUT}s") from None
        lines = stdout.splitlines()
        answer = json.loads(lines[-1]) if lines else {}
        if "error" in answer or self.process.returncode != 0 or "result" not in answer:
            failure = f"exited ({self.process.returncode}) with\n{json.dumps(answer, indent=2)}"
            raise AssertionError(f"{self.lib}: {failure}\nstderr:\n{stderr[-3000:]}")
        return dict(answer["result"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


@pytest.mark.parametrize("lib", LIBRARIES)
def test_authorization_code_flow_with_npm_client(
    lib, node, live_server, hosted_pages, person, rp
) -> None:
    relying_party = NodeRelyingParty(node, lib)
    try:
        relying_party.send({
            "issuer": live_server.url, "client_id": rp.client_id,
            "client_secret": rp.client_secret, "redirect_uri": REDIRECT_URI, "scope": SCOPE,
        })  # fmt: skip
        url = relying_party.receive()["authorization_url"]
        request = parse_qs(urlsplit(url).query)
        assert request["code_challenge_method"] == ["S256"]
        assert request["prompt"] == ["consent"]

        response = hosted_pages.visit(url)
        assert response.is_redirect, (
            f"{response.status_code} {response.url}\n{response.text[:1500]}"
        )
        callback = response.headers["Location"]
        assert callback.startswith(f"{REDIRECT_URI}?"), callback
        result = relying_party.finish({"callback": callback})
    finally:
        relying_party.close()

    # ID token (OIDC Core §3.1.3.7): the library checked its signature against the JWKS, iss,
    # aud, exp and that its nonce is the one sent
    claims = result["id_token_claims"]
    assert claims["iss"] == live_server.url
    assert claims["sub"] == str(person.pk)
    assert claims["aud"] in (rp.client_id, [rp.client_id])
    assert claims["nonce"] == request["nonce"][0]

    # offline_access (OIDC Core §11): asked for with prompt=consent by a client that may use
    # the refresh_token grant, it is granted and a refresh token is issued
    token = result["token"]
    assert token["token_type"].lower() == "bearer"
    assert {"openid", "email", "offline_access"} <= set(token["scope"].split())
    assert token["expires_in"] > 0
    assert token["has_refresh_token"]

    # userinfo (OIDC Core §5.3): the claims of scope email, for the ID token's subject
    assert result["userinfo"] == {
        "sub": str(person.pk), "email": "ada@example.com", "email_verified": False,
    }  # fmt: skip

    # refresh (OIDC Core §12): a new access token
    refreshed = result["refreshed"]
    assert refreshed["access_token_changed"]
    assert refreshed["expires_in"] > 0


@pytest.mark.parametrize("lib", LIBRARIES)
def test_authorization_code_flow_through_pushed_request_with_npm_client(
    lib, node, live_server, hosted_pages, person
) -> None:
    # RFC 9126: the library pushes the parameters (oauth4webapi's pushedAuthorizationRequest,
    # openid-client's buildAuthorizationUrlWithPAR) for a client that requires it; the
    # browser carries client_id and request_uri only, through sign-in and consent
    client, secret = client_create(
        name="Pushing RP", redirect_uris=[REDIRECT_URI], require_par=True,
        grant_types=["authorization_code", "refresh_token"],
    )  # fmt: skip
    rp = RegisteredClient(client.client_id, secret)
    relying_party = NodeRelyingParty(node, lib)
    try:
        relying_party.send({
            "issuer": live_server.url, "client_id": rp.client_id,
            "client_secret": rp.client_secret, "redirect_uri": REDIRECT_URI, "scope": SCOPE,
            "par": True,
        })  # fmt: skip
        url = relying_party.receive()["authorization_url"]
        request = parse_qs(urlsplit(url).query)
        assert set(request) == {"client_id", "request_uri"}
        assert request["request_uri"][0].startswith("urn:ietf:params:oauth:request_uri:")

        response = hosted_pages.visit(url)
        assert response.is_redirect, (
            f"{response.status_code} {response.url}\n{response.text[:1500]}"
        )
        callback = response.headers["Location"]
        assert callback.startswith(f"{REDIRECT_URI}?"), callback
        result = relying_party.finish({"callback": callback})
    finally:
        relying_party.close()

    claims = result["id_token_claims"]  # signature, iss, aud, exp and nonce checked
    assert claims["sub"] == str(person.pk)
    assert claims["aud"] in (rp.client_id, [rp.client_id])
    assert result["token"]["has_refresh_token"]
    assert result["userinfo"]["sub"] == str(person.pk)
    # the request_uri was spent by the sign-in: the same URL again is refused
    again = hosted_pages.visit(url)
    assert again.status_code == 400
