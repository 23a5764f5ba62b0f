"""The answer to a refused request: 429 with Retry-After and the RateLimit headers, in the
format of the endpoint that was asked.

OAuth endpoints (token, PAR, introspection, revocation, userinfo) and the admin API answer JSON in
the RFC 6749 §5.2 shape with error `temporarily_unavailable`: RFC 6749 §4.1.2.1 defines it as
the server "unable to handle the request due to a temporary overloading", the closest meaning
in the OAuth error registry (RFC 6749 §11.4); §5.2 has no rate-limit code, `invalid_request`
would tell the client its request is malformed (it is not), and `slow_down` is RFC 8628
§3.5's, for device-code polling only. The status is 429 (RFC 6585 §4), which HTTP clients
and OAuth libraries already back off on. Browser pages (the sign-in form, /oauth/authorize)
get the project's error page saying when to try again; /oauth/authorize does not redirect to
the client, since its redirect URI has not been checked yet (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from apps.core import request_context
from apps.ratelimit.services import Decision

_JSON_PREFIXES = (
    "/oauth/token",
    "/oauth/par",
    "/oauth/introspect",
    "/oauth/revoke",
    "/oauth/userinfo",
    "/api/",
)


def _wants_json(request: HttpRequest) -> bool:
    if request.path.startswith(_JSON_PREFIXES):
        return True
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def _message(decision: Decision) -> str:
    if decision.reason == "locked":
        if decision.permanent:
            return (
                "Sign-in is unavailable for this identifier after too many failed attempts. "
                "Ask an administrator to unlock it."
            )
        what = "Sign-in is temporarily unavailable for this identifier"
    elif decision.reason == "busy":
        what = "Too many attempts for this identifier are being checked at once"
    else:
        what = "Too many requests"
    when = datetime.now(UTC) + timedelta(seconds=max(1, decision.retry_after))
    return (
        f"{what}. Try again in {max(1, decision.retry_after)} seconds (after {when:%H:%M:%S} UTC)."
    )


def refusal(request: HttpRequest, decision: Decision) -> HttpResponse:
    context = request_context.current()
    request_id = context.request_id if context else ""
    message = _message(decision)
    response: HttpResponse
    if _wants_json(request):
        response = JsonResponse(
            {"error": "temporarily_unavailable", "error_description": message,
             "request_id": request_id},
            status=429,
        )  # fmt: skip
    else:
        response = render(
            request,
            "errors/error.html",
            {"status": 429, "message": message, "request_id": request_id},
            status=429,
        )
    for name, value in decision.headers().items():
        response[name] = value
    response["Cache-Control"] = "no-store"
    return response
