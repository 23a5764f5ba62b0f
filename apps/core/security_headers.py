"""The security headers of every response, by what the response is (OWASP ASVS 4.0.3 V14.4,
OWASP Secure Headers Project).

- HTML (hosted pages, console, admin, error pages): the Content-Security-Policy of
  settings.CONTENT_SECURITY_POLICY through django-csp, with a nonce per response, plus
  Reporting-Endpoints for its `report-to` (CSP Level 3 §5.3; Reporting API §3.2);
- anything else (JSON, JWKS, static files): `default-src 'none'; frame-ancestors 'none'`:
  nothing in it should ever run or be framed;
- every response: HSTS over TLS, X-Frame-Options, nosniff, Referrer-Policy, COOP,
  Permissions-Policy, Cross-Origin-Resource-Policy (same-origin, or cross-origin where the
  response is already open to every origin by CORS: discovery and JWKS, which relying
  parties' browser code reads), and the operator's extra headers.

This middleware sits near the top of the stack so that refusals answered before the view (rate
limits, a NUL byte, a 503) carry the same headers as any page.

Every HTML page has form-action 'self' except those whose forms end at a client or an upstream
provider (the sign-in pages of an authorization request, consent, a sign-out confirmation with
a redirect, the security page's "Link <provider>" buttons): see leave_form_action_open().
The signed-out page names the origins of the front-channel logout iframes with allow_frames()
(Front-Channel Logout 1.0 §4).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar
from urllib.parse import urlsplit

from csp.constants import HEADER
from csp.middleware import CSPMiddleware
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.module_loading import import_string

R = TypeVar("R", bound=HttpResponseBase)

# Not HTML: nothing may load, run or frame it.
NON_HTML_POLICY = "default-src 'none'; frame-ancestors 'none'"
# The headers this middleware (or Django's security middleware) sets: IDP_EXTRA_HEADERS may
# not name them.
MANAGED_HEADERS = frozenset(
    {
        "content-security-policy",
        "content-security-policy-report-only",
        "reporting-endpoints",
        "strict-transport-security",
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
        "permissions-policy",
        "cross-origin-opener-policy",
        "cross-origin-resource-policy",
        "access-control-allow-origin",
        "set-cookie",
    }
)


def origin_of(uri: str) -> str | None:
    """scheme://host[:port] of an absolute http(s) URI, else None."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  # raises ValueError on a port out of range
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _origins(uris: Iterable[str]) -> list[str]:
    return sorted({origin for uri in uris if (origin := origin_of(uri))})


def leave_form_action_open(response: R) -> R:
    """No form-action on this page: its forms end at a client, through redirects we do not
    control. Chromium checks form-action against every redirect of the navigation a form
    post starts (CSP Level 3 §6.3.1.4); after our sign-in that chain runs through the
    client's callback, which may redirect to another of its origins, or, when the client is
    itself an identity provider federating with us, through that provider to its own
    client. No list of origins we could name holds for all of them (a browser test
    showed the federated case blocked). Everything else in the policy stays."""
    replace = dict(getattr(response, "_csp_replace", None) or {})
    replace["form-action"] = None
    response._csp_replace = replace  # type: ignore[attr-defined]
    return response


def form_action_open_for(request: HttpRequest) -> None:
    """leave_form_action_open() for the page this request renders, from code that sees the
    request only (a template tag: the security page's "Link <provider>" forms end at the
    provider, and at whatever it redirects to before it sends the person back)."""
    request._csp_form_action_open = True  # type: ignore[attr-defined]


def allow_continuation(response: R, next_url: str) -> R:
    """A sign-in page whose `next` is an authorization request of a registered redirect URI
    ends at that client: leave_form_action_open(). Any other `next` is one of our pages, and
    form-action stays 'self' (settings.CSP_CONTINUATION names the port that tells them apart;
    core does not import tokens)."""
    resolve = import_string(settings.CSP_CONTINUATION)
    if next_url and resolve(next_url):
        return leave_form_action_open(response)
    return response


def allow_frames(response: R, uris: Iterable[str]) -> R:
    """The page frames these URIs (only these: frame-src is 'none' otherwise)."""
    origins = _origins(uris)
    if origins:
        replace = dict(getattr(response, "_csp_replace", None) or {})
        replace["frame-src"] = origins
        response._csp_replace = replace  # type: ignore[attr-defined]
    return response


def _is_html(response: HttpResponseBase) -> bool:
    return response.get("Content-Type", "").lower().startswith("text/html")


class SecurityHeadersMiddleware(CSPMiddleware):
    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        html = _is_html(response)
        if not html:  # django-csp leaves a policy already there as it is
            response.headers.setdefault(HEADER, NON_HTML_POLICY)
        elif getattr(request, "_csp_form_action_open", False):
            leave_form_action_open(response)
        response = super().process_response(request, response)
        if html:
            response["Reporting-Endpoints"] = f'csp="{settings.CSP_REPORT_PATH}"'
        # Django's SecurityMiddleware and XFrameOptionsMiddleware set these for what reaches
        # them; setdefault covers the refusals answered before them, and changes nothing else.
        if request.is_secure() and settings.SECURE_HSTS_SECONDS:
            hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
            if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
                hsts += "; includeSubDomains"
            if settings.SECURE_HSTS_PRELOAD:
                hsts += "; preload"
            response.headers.setdefault("Strict-Transport-Security", hsts)
        response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY)
        response.headers.setdefault(
            "Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY
        )
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        open_to_all = response.get("Access-Control-Allow-Origin") == "*"
        response.headers.setdefault(
            "Cross-Origin-Resource-Policy", "cross-origin" if open_to_all else "same-origin"
        )
        for name, value in settings.EXTRA_HEADERS.items():
            response[name] = value
        return response
