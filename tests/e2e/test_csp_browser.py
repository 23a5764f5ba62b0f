"""Every kind of page in Chromium under its Content-Security-Policy (apps/core/security_headers.py)
with no violation at all, and a violation provoked on purpose reported by the browser to
/csp-report and recorded as a csp.violation event (issue 18, "Security headers").

Violations are caught twice: the `securitypolicyviolation` event of each document (CSP Level 3
§5.2), handed to the test by a binding an init script calls, and Chromium's console messages.
The test browser is launched with --short-reporting-delay, Chromium's switch for its own web
tests: without it the Reporting API holds a report for up to a minute before sending it. And
Chromium sends Reporting API reports (our policy's report-to, which it prefers to report-uri)
to HTTPS endpoints only, localhost included: the provoked violation is seen through a TLS front
(a certificate made in the test) that passes the bytes on to the live server."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import pytest

from apps.accounts.services import user_create
from apps.core import journal
from apps.core.models import SecurityEvent
from apps.sessions.models import LoginSession
from apps.sessions.services import session_client_record
from apps.tokens.services import client_create
from tests.conftest import CHROMIUM_FLAGS
from tests.rp import PASSWORD, REDIRECT_URI, TotpCodes, new_verifier, totp_enrolled
from tests.servers import _write_tls_files

pytestmark = pytest.mark.django_db(transaction=True)

FRONTCHANNEL_URI = "https://rp.example.com/frontchannel-logout"
LISTEN = """
window.cspSeen = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const seen = {
    page: document.location.pathname,
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
  };
  window.cspSeen.push(seen);
  window.cspViolation(seen);
});
"""
CSP_CONSOLE = re.compile(r"Content.Security.Policy|Permissions-Policy|Refused to", re.I)
CONSOLE_PAGES = [
    "/console/",
    "/console/users/",
    "/console/sessions/",
    "/console/lockouts/",
    "/console/threats/",
    "/console/audit/",
    "/console/clients/",
    "/console/keys/",
    "/console/federation/providers/",
    "/console/organizations/",
    "/console/roles/",
    "/console/staff/",
]


@pytest.fixture
def reporting_browser(browser) -> Iterator[object]:
    """A Chromium of its own, launched as the suite's is, that sends reports at once and
    trusts the TLS front's certificate (its report uploads do not ask the page's context)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    launched = browser.browser_type.launch(  # type: ignore[attr-defined]
        executable_path=chromium,
        args=[*CHROMIUM_FLAGS, "--short-reporting-delay", "--ignore-certificate-errors"],
    )
    yield launched
    launched.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def tls_front(live_server, tmp_path) -> Iterator[str]:
    """https://localhost:<port>: TLS ended here, each connection's bytes passed on to the
    live server as they are."""
    _write_tls_files(tmp_path, tmp_path / "ca.pem")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    backend = urlsplit(live_server.url)
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                secured = tls.wrap_socket(client, server_side=True)
            except (OSError, ssl.SSLError):
                client.close()
                continue
            upstream = socket.create_connection((backend.hostname, backend.port))
            for ends in ((secured, upstream), (upstream, secured)):
                threading.Thread(target=_pipe, args=ends, daemon=True).start()

    accepting = threading.Thread(target=serve, daemon=True)
    accepting.start()
    yield f"https://localhost:{listener.getsockname()[1]}"
    stopping.set()
    listener.close()
    accepting.join(timeout=5)


class Watched:
    def __init__(self, browser, base: str) -> None:
        self.base = base
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 900}, ignore_https_errors=True
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.violations: list[dict[str, str]] = []
        self.console: list[str] = []
        self.context.expose_function("cspViolation", self._violation)
        self.context.add_init_script(LISTEN)
        self.page.on("console", self._console)
        # The relying party is not on this network: its pages are answered here.
        self.context.route(
            "https://rp.example.com/**",
            lambda route: route.fulfill(
                status=200, content_type="text/html", body="<!doctype html><title>RP</title>"
            ),
        )

    def _violation(self, seen: dict[str, str]) -> None:
        self.violations.append(seen)

    def _console(self, message) -> None:
        if CSP_CONSOLE.search(message.text):
            self.console.append(f"{message.type}: {message.text}")

    def visit(self, path: str, *, status: int = 200) -> None:
        response = self.page.goto(self.url(path))
        assert response is not None
        assert response.status == status, path
        self.page.wait_for_load_state("load")

    def url(self, path: str) -> str:
        return self.base + path


def _authorize_url(live_server, client_id: str) -> str:
    query = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email", "state": "s-csp", "code_challenge_method": "S256",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",  # RFC 7636 App. B
        "nonce": new_verifier(),
    }  # fmt: skip
    return f"{live_server.url}/oauth/authorize?{urlencode(query)}"


def test_every_page_type_runs_without_a_csp_violation(
    live_server, reporting_browser, empty_audit_store
) -> None:
    admin = user_create(
        email="ops@example.com", name="Ops", password=PASSWORD, staff_role="administrator"
    )
    codes = TotpCodes(totp_enrolled(admin))
    rp, _ = client_create(
        name="CSP RP",
        redirect_uris=[REDIRECT_URI],
        post_logout_redirect_uris=[],
        grant_types=["authorization_code", "refresh_token"],
        frontchannel_logout_uri=FRONTCHANNEL_URI,
    )
    watched = Watched(reporting_browser, live_server.url)
    page = watched.page

    # Sign-in page, second factor, consent; the consent's answer goes to the client.
    page.goto(_authorize_url(live_server, rp.client_id))
    assert page.inner_text("h1") == "Sign in"
    page.fill("#id_email", admin.email)
    page.fill("#id_password", PASSWORD)
    page.click("form:not([data-webauthn]) button[type=submit]")
    page.wait_for_url(re.compile(r".*/login/second-factor$"))
    page.fill("#id_totp_code", codes())
    page.click("button:text-is('Verify')")
    page.wait_for_selector("text=Allow CSP RP?")
    with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI)):
        page.click("button[value=allow]")
    page.wait_for_url(lambda url: url.startswith(REDIRECT_URI))

    # The person's own pages, the console, Django's admin, an error page.
    for path in ("/account/", "/account/security/", *CONSOLE_PAGES, "/admin/"):
        watched.visit(path)
    watched.visit("/no-such-page", status=404)

    # Signed out: the client's front-channel logout page in an iframe (frame-src).
    [session] = LoginSession.objects.filter(user=admin, ended_at__isnull=True)
    session_client_record(session=session, client_id=rp.client_id)
    watched.visit("/oauth/logout")
    with page.expect_request(lambda r: r.url.startswith(FRONTCHANNEL_URI)):
        page.click("button[value=logout]")
    page.wait_for_selector("text=You are signed out")
    assert len(page.frames) == 2  # the page and the client's logout iframe

    page.evaluate("0")  # hands over what the bindings and console of the last page said
    assert watched.violations == []
    assert watched.console == []
    assert _csp_events() == []  # nor a report that reached the server meanwhile
    watched.context.close()


def _csp_events() -> list[SecurityEvent]:
    journal.drain_now()
    return list(SecurityEvent.objects.filter(event_type="csp.violation"))


def _wait_for_events(deadline_seconds: float) -> list[SecurityEvent]:
    """The report travels browser → server → journal → outbox; wait for its row."""
    deadline = time.monotonic() + deadline_seconds
    while not (events := _csp_events()):
        assert time.monotonic() < deadline, "no csp.violation recorded"
        time.sleep(0.1)
    return events


def test_an_injected_script_is_blocked_reported_and_recorded(tls_front, reporting_browser) -> None:
    watched = Watched(reporting_browser, tls_front)
    page = watched.page
    watched.visit("/login?next=/account/%3Fcode%3Dsecret")

    ran = page.evaluate(
        """() => {
          window.injected = false;
          const script = document.createElement("script");
          script.textContent = "window.injected = true";
          document.body.appendChild(script);
          return window.injected;
        }"""
    )

    assert ran is False  # blocked: no nonce
    page.wait_for_function("() => window.cspSeen.length > 0")
    [violation] = page.evaluate("window.cspSeen")
    assert violation["directive"] == "script-src-elem"
    assert violation["blocked"] == "inline"
    assert any("Content Security Policy" in line for line in watched.console)
    [event] = _wait_for_events(15)
    assert event.metadata["directive"] == "script-src-elem"
    assert event.metadata["blocked"] == "inline"
    assert event.metadata["document_path"] == "/login"
    assert "secret" not in str(event.metadata)
    watched.context.close()
