"""The security headers of each kind of response (apps/core/security_headers.py): a strict CSP
with a fresh nonce on HTML pages, a policy that allows nothing on JSON and other documents,
CORP cross-origin only where CORS already opens the response to every origin, HSTS only over
TLS, and the operator's extra headers."""

from __future__ import annotations

import re

import pytest

from apps.core.security_headers import MANAGED_HEADERS, leave_form_action_open, origin_of
from apps.tokens.services import client_create

pytestmark = pytest.mark.django_db

NON_HTML = "default-src 'none'; frame-ancestors 'none'"
EVERYWHERE = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    found = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        found[name] = sources
    return found


def _assert_everywhere(response) -> None:
    for name, value in EVERYWHERE.items():
        assert response[name] == value, name
    permissions = response["Permissions-Policy"]
    assert "camera=()" in permissions
    assert "publickey-credentials-get=(self)" in permissions
    assert "publickey-credentials-create=(self)" in permissions


def _assert_strict_html_policy(response) -> str | None:
    """The page's policy is the strict one; returns its nonce, if the page used one (a page
    with no tag of ours, as Django's admin, needs none)."""
    _assert_everywhere(response)
    directives = _directives(response)
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["frame-src"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]
    assert directives["report-uri"] == ["/csp-report"]
    assert directives["report-to"] == ["csp"]
    assert response["Reporting-Endpoints"] == 'csp="/csp-report"'
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    nonces = [s for s in directives["script-src"] if s.startswith("'nonce-")]
    assert nonces == [s for s in directives["style-src"] if s.startswith("'nonce-")]
    assert len(nonces) <= 1
    return nonces[0][len("'nonce-") : -1] if nonces else None


def test_hosted_page_has_a_strict_policy_and_its_tags_carry_the_nonce(client) -> None:
    response = client.get("/login")

    assert response.status_code == 200
    nonce = _assert_strict_html_policy(response)
    assert nonce is not None
    html = response.content.decode()
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts, "the sign-in page loads webauthn.js"
    assert all(f'nonce="{nonce}"' in tag for tag in scripts)
    stylesheets = re.findall(r'<link rel="stylesheet"[^>]*>', html)
    assert stylesheets
    assert all(f'nonce="{nonce}"' in tag for tag in stylesheets)
    assert _directives(response)["form-action"] == ["'self'"]  # no next: our own pages only


def test_each_response_gets_its_own_nonce(client) -> None:
    first = _assert_strict_html_policy(client.get("/login"))
    second = _assert_strict_html_policy(client.get("/login"))

    assert first is not None
    assert second is not None
    assert first != second
    assert len(first) >= 22  # 16 random bytes, base64


def test_console_and_admin_pages_have_the_strict_policy(admin_client) -> None:
    for path in ("/console/", "/console/sessions/"):
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert _assert_strict_html_policy(response) is not None, path
    admin = admin_client.get("/admin/")
    assert admin.status_code == 200
    _assert_strict_html_policy(admin)


def test_error_pages_have_the_html_or_the_json_policy(client) -> None:
    page = client.get("/no-such-page", HTTP_ACCEPT="text/html")
    assert page.status_code == 404
    _assert_strict_html_policy(page)

    document = client.get("/no-such-page", HTTP_ACCEPT="application/json")
    assert document.status_code == 404
    assert document["Content-Security-Policy"] == NON_HTML
    _assert_everywhere(document)


def test_a_refusal_before_the_views_has_the_headers_too(client) -> None:
    """RejectNulMiddleware answers before Django's security middleware runs."""
    response = client.get("/login?email=%00", HTTP_ACCEPT="application/json")

    assert response.status_code == 400
    assert response["Content-Security-Policy"] == NON_HTML
    _assert_everywhere(response)


def test_json_api_answers_allow_nothing(client) -> None:
    response = client.get("/oauth/userinfo")

    assert response.status_code == 401
    assert response["Content-Security-Policy"] == NON_HTML
    assert "Reporting-Endpoints" not in response
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    _assert_everywhere(response)


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/oauth/jwks"])
def test_discovery_and_jwks_stay_readable_by_relying_parties_browser_code(client, path) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    # Fetch §3.7: same-origin CORP would stop a relying party's page reading them.
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response["Content-Security-Policy"] == NON_HTML
    _assert_everywhere(response)


def test_static_files_get_the_document_policy(client) -> None:
    response = client.get("/static/mfa/webauthn.js")

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == NON_HTML
    # WhiteNoise opens static files to every origin by CORS; CORP says the same.
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    _assert_everywhere(response)


def test_hsts_only_over_tls(client, settings) -> None:
    settings.SECURE_HSTS_SECONDS = 63072000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True

    plain = client.get("/login")
    secure = client.get("/login", secure=True)
    secure_json = client.get("/oauth/userinfo", secure=True)

    assert "Strict-Transport-Security" not in plain  # RFC 6797 §7.2: ignored over HTTP
    expected = "max-age=63072000; includeSubDomains; preload"
    assert secure["Strict-Transport-Security"] == expected
    assert secure_json["Strict-Transport-Security"] == expected


def test_hsts_directives_follow_the_settings(client, settings) -> None:
    settings.SECURE_HSTS_SECONDS = 300
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = False
    settings.SECURE_HSTS_PRELOAD = False

    assert client.get("/login", secure=True)["Strict-Transport-Security"] == "max-age=300"


def test_extra_headers_are_added_to_every_response(client, settings) -> None:
    settings.EXTRA_HEADERS = {"X-Robots-Tag": "noindex", "X-Operated-By": "Tessera"}

    for path in ("/login", "/oauth/jwks", "/no-such-page"):
        response = client.get(path)
        assert response["X-Robots-Tag"] == "noindex", path
        assert response["X-Operated-By"] == "Tessera", path


def test_sign_in_page_of_an_authorization_request_leaves_form_action_open(client) -> None:
    """Chromium applies form-action to each redirect after a form post, and a sign-in for a
    client ends at that client through redirects we do not control (its callback may
    redirect again; tests/e2e/test_federation_browser.py: a federating provider's client):
    no form-action there. Any other page, the sign-in page for our own pages included,
    keeps form-action 'self'."""
    client_create(name="CSP RP", client_id="csp-rp", redirect_uris=["https://rp.example/callback"])
    authorize = "/oauth/authorize?client_id="
    registered = f"{authorize}csp-rp&redirect_uri=https%3A%2F%2Frp.example%2Fcallback"
    unregistered = f"{authorize}csp-rp&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"
    unknown = f"{authorize}nobody&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"

    def form_action(next_url: str) -> list[str] | None:
        response = client.get("/login", {"next": next_url})
        _assert_everywhere(response)
        return _directives(response).get("form-action")

    assert form_action(registered) is None
    assert form_action("/oauth/authorize?client_id=csp-rp") is None  # its one registered URI
    assert form_action(unregistered) == ["'self'"]
    assert form_action(unknown) == ["'self'"]
    assert form_action("https://evil.example/oauth/authorize?client_id=csp-rp") == ["'self'"]
    assert form_action("/account/") == ["'self'"]


def test_the_rest_of_the_policy_stays_where_form_action_is_left_open() -> None:
    from django.http import HttpResponse

    response = leave_form_action_open(HttpResponse())

    assert response._csp_replace == {"form-action": None}  # type: ignore[attr-defined]
    assert origin_of("https://user:pw@rp.example:8443/x?y") == "https://rp.example:8443"
    assert origin_of("https://rp.example:99999/") is None
    assert origin_of("ftp://rp.example/") is None


def test_extra_headers_setting_reads_a_json_object(monkeypatch) -> None:
    from idp import env

    monkeypatch.setenv("IDP_EXTRA_HEADERS", '{"X-Robots-Tag": "noindex, nofollow"}')

    assert env.headers("IDP_EXTRA_HEADERS", reserved=MANAGED_HEADERS) == {
        "X-Robots-Tag": "noindex, nofollow"
    }
