"""OpenID Connect Front-Channel Logout 1.0: the signed-out page (apps/tokens/views.py
_sign_out) loads the frontchannel_logout_uri of each client of the ended session in an iframe."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.conf import settings
from django.test import Client as HttpClient

from apps.sessions.models import LoginSession
from tests.rp import PASSWORD, POST_LOGOUT_URI, REDIRECT_URI, RegisteredClient
from tests.tokens.conftest import LOGOUT, Flow, authorize_params, new_pkce

pytestmark = pytest.mark.django_db

FRONTCHANNEL_URI = "https://rp.example.com/frontchannel-logout"


def iframe_sources(html: str) -> list[str]:
    return [unescape(src) for src in re.findall(r'<iframe src="([^"]*)"', html)]


def sid_of(person) -> str:
    return str(LoginSession.objects.get(user=person).pk)


def sign_out(flow: Flow, **params: str) -> Any:
    """RP-Initiated Logout with an ID token of this very session: no confirmation asked."""
    return flow.http.get(LOGOUT, {"id_token_hint": flow.tokens()["id_token"], **params})


def test_signed_out_page_loads_the_logout_uri_with_iss_and_sid(
    sign_in: Callable[..., Flow], person
) -> None:
    # Front-Channel Logout 1.0 §3 (iss and sid), §4 (the OP renders the iframe)
    flow = sign_in(frontchannel_logout_uri=FRONTCHANNEL_URI)
    sid = sid_of(person)

    page = sign_out(flow)

    assert page.status_code == 200
    html = page.content.decode()
    [source] = iframe_sources(html)
    uri = urlsplit(source)
    assert f"{uri.scheme}://{uri.netloc}{uri.path}" == FRONTCHANNEL_URI
    assert parse_qs(uri.query) == {"iss": [settings.ISSUER], "sid": [sid]}
    assert "<script" not in html
    assert not LoginSession.objects.filter(user=person, ended_at__isnull=True).exists()


def test_signed_out_page_may_frame_the_logout_uris_origins_only(
    sign_in: Callable[..., Flow], person
) -> None:
    # CSP Level 3 frame-src: 'none' on every other page (apps/core/security_headers.py)
    flow = sign_in(frontchannel_logout_uri=FRONTCHANNEL_URI)

    page = sign_out(flow)

    policy = {
        part.split()[0]: part.split()[1:] for part in page["Content-Security-Policy"].split(";")
    }
    assert policy["frame-src"] == ["https://rp.example.com"]
    assert policy["frame-ancestors"] == ["'none'"]


def test_registered_query_is_kept_beside_iss_and_sid(sign_in: Callable[..., Flow], person) -> None:
    # Front-Channel Logout 1.0 §2: a query component MUST be retained when adding parameters
    flow = sign_in(frontchannel_logout_uri=FRONTCHANNEL_URI + "?tenant=7")
    sid = sid_of(person)

    [source] = iframe_sources(sign_out(flow).content.decode())

    assert parse_qs(urlsplit(source).query) == {
        "tenant": ["7"],
        "iss": [settings.ISSUER],
        "sid": [sid],
    }


def test_client_not_asking_for_the_session_gets_the_bare_uri(sign_in: Callable[..., Flow]) -> None:
    # Front-Channel Logout 1.0 §2: frontchannel_logout_session_required false
    flow = sign_in(
        frontchannel_logout_uri=FRONTCHANNEL_URI, frontchannel_logout_session_required=False
    )

    assert iframe_sources(sign_out(flow).content.decode()) == [FRONTCHANNEL_URI]


def test_only_clients_of_the_session_with_a_logout_uri_get_an_iframe(
    sign_in: Callable[..., Flow], register: Callable[..., RegisteredClient]
) -> None:
    # Front-Channel Logout 1.0 §4: each RP the End-User is logged in to, and no other
    with_uri = sign_in(frontchannel_logout_uri=FRONTCHANNEL_URI)
    without_uri = sign_in()
    register(frontchannel_logout_uri="https://other.example.com/logout")  # no tokens given

    sources = iframe_sources(sign_out(without_uri).content.decode())

    assert [urlsplit(source).netloc for source in sources] == ["rp.example.com"]
    assert with_uri.rp.client_id != without_uri.rp.client_id


def test_session_without_front_channel_clients_gets_no_iframe(
    sign_in: Callable[..., Flow],
) -> None:
    # Front-Channel Logout 1.0 §4: nothing to render for clients that registered no URI
    page = sign_out(sign_in())
    assert page.status_code == 200
    assert iframe_sources(page.content.decode()) == []


def test_iframes_load_before_the_post_logout_redirect(sign_in: Callable[..., Flow]) -> None:
    # Front-Channel Logout 1.0 §4 with RP-Initiated Logout 1.0 §3: the page, then the redirect
    flow = sign_in(
        frontchannel_logout_uri=FRONTCHANNEL_URI, post_logout_redirect_uris=[POST_LOGOUT_URI]
    )

    page = sign_out(flow, post_logout_redirect_uri=POST_LOGOUT_URI, state="s-9")

    assert page.status_code == 200
    html = page.content.decode()
    assert len(iframe_sources(html)) == 1
    assert f'href="{POST_LOGOUT_URI}?state=s-9"' in html
    delay, _, target = page["Refresh"].partition("; url=")
    assert int(delay) > 0
    assert target == f"{POST_LOGOUT_URI}?state=s-9"


def test_confirmed_logout_renders_the_iframes_too(sign_in: Callable[..., Flow], person) -> None:
    # RP-Initiated Logout 1.0 §2 (asked first), Front-Channel Logout 1.0 §4 (then the iframes)
    flow = sign_in(frontchannel_logout_uri=FRONTCHANNEL_URI)
    question = flow.http.get(LOGOUT)
    assert "tokens/logout_confirm.html" in [t.name for t in question.templates]

    page = flow.http.post(
        LOGOUT + "/confirm", {"request": question.context["request_blob"], "decision": "logout"}
    )

    [source] = iframe_sources(page.content.decode())
    assert parse_qs(urlsplit(source).query)["sid"] == [sid_of(person)]


def test_declined_logout_renders_no_iframe(sign_in: Callable[..., Flow]) -> None:
    # RP-Initiated Logout 1.0 §2: the End-User stayed signed in, so no RP is told otherwise
    flow = sign_in(frontchannel_logout_uri=FRONTCHANNEL_URI)
    question = flow.http.get(LOGOUT)

    page = flow.http.post(
        LOGOUT + "/confirm", {"request": question.context["request_blob"], "decision": "stay"}
    )

    assert page.status_code == 200
    assert iframe_sources(page.content.decode()) == []


def test_discovery_advertises_front_channel_logout_with_session(client: HttpClient) -> None:
    # Front-Channel Logout 1.0 §3
    metadata = client.get("/.well-known/openid-configuration").json()
    assert metadata["frontchannel_logout_supported"] is True
    assert metadata["frontchannel_logout_session_supported"] is True


@pytest.fixture
def rp_pages() -> Iterator[tuple[str, list[str]]]:
    """A relying party's pages on a free port (its base URL), and the paths browsers got."""
    visited: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            visited.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Cache-Control", "no-store")  # Front-Channel Logout 1.0 §3
            self.end_headers()
            self.wfile.write(b"<p>signed out</p>")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", visited
    server.shutdown()
    server.server_close()


@pytest.mark.django_db(transaction=True)
def test_chromium_loads_the_iframe_then_returns_to_the_client(
    live_server, page, person, register: Callable[..., RegisteredClient], rp_pages
) -> None:
    # Front-Channel Logout 1.0 §4 in a real browser, without script: the hidden iframe
    # loads, then the Refresh header takes the person to the post_logout_redirect_uri
    base, visited = rp_pages
    rp = register(
        frontchannel_logout_uri=f"{base}/frontchannel",
        post_logout_redirect_uris=[f"{base}/bye"],
        skip_consent=True,
    )
    page.route("https://rp.example.com/**", lambda route: route.fulfill(body="callback"))
    pkce = new_pkce()
    page.goto(
        f"{live_server.url}/oauth/authorize?{urlencode(authorize_params(rp.client_id, pkce))}"
    )
    page.fill("#id_email", person.email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{REDIRECT_URI}?*")
    tokens = requests.post(
        f"{live_server.url}/oauth/token",
        data={"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI,
              "code": parse_qs(urlsplit(page.url).query)["code"][0],
              "code_verifier": pkce.verifier},
        auth=(rp.client_id, rp.client_secret or ""),
        timeout=10,
    ).json()  # fmt: skip
    sid = str(LoginSession.objects.get(user=person).pk)

    logout = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": f"{base}/bye"}
    page.goto(f"{live_server.url}{LOGOUT}?{urlencode(logout)}")
    page.wait_for_url(f"{base}/bye")

    frontchannel, bye = visited
    assert frontchannel == "/frontchannel?" + urlencode({"iss": settings.ISSUER, "sid": sid})
    assert bye == "/bye"
