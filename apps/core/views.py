from __future__ import annotations

import logging
import sys

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from apps.core import request_context
from apps.core.errors import Refused, Unavailable
from apps.core.health import readiness, readiness_status

log = logging.getLogger("tessera.unavailable")


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Says nothing about dependencies (see readyz)."""
    return JsonResponse({"status": "alive"})


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    results = readiness()
    # 503 only when this pod cannot serve (a check that gates readiness is down); degraded
    # (a shared part down or a reduced mode) is still 200: keep the pod in rotation.
    status = readiness_status(results)
    return JsonResponse(
        {"status": status, "checks": {r.name: r.as_dict() for r in results}},
        status=503 if status == "unavailable" else 200,
    )


_ERRORS = {
    # invalid_request: the OAuth 2.0 code for the same thing (RFC 6749 §5.2), so OAuth
    # clients that meet this generic answer still read a code they know.
    400: ("invalid_request", "The request could not be understood. Check its parameters."),
    403: ("forbidden", "You are not allowed to do this. Sign in with an account that is."),
    404: ("not_found", "There is nothing at this address. Check the URL."),
    # RFC 9110 §15.5.6; the Allow header says which methods are (apps/core/methods.py).
    405: ("method_not_allowed", "This address does not take this method; see the Allow header."),
    # Size limits (apps/core/request_limits.py): RFC 9110 §15.5.14, §15.5.15; RFC 6585 §5.
    413: ("invalid_request", "The request body is too large."),
    414: ("invalid_request", "The request URL is too long."),
    431: ("invalid_request", "The request headers are too large."),
    500: ("server_error", "Something went wrong on our side. Try again; quote the request id."),
    # RFC 6749 §4.1.2.1 / §5.2 code; what is down says more (unavailable_response).
    503: ("temporarily_unavailable", "The service is unavailable right now. Try again shortly."),
}


def error_response(
    request: HttpRequest, status: int, *, json: bool | None = None, message: str = ""
) -> HttpResponse:
    """JSON unless the client prefers HTML (browsers say so in Accept; API clients often send
    no Accept at all), or as `json` says; never a stack trace. `message` replaces the
    status's generic text."""
    code, generic = _ERRORS[status]
    message = message or generic
    context = request_context.current()
    request_id = context.request_id if context else ""
    response: HttpResponse
    if json is None:
        json = request.get_preferred_type(["application/json", "text/html"]) == "application/json"
    if json:
        response = JsonResponse(
            {"error": code, "error_description": message, "request_id": request_id},
            status=status,
        )
    else:
        response = render(
            request,
            "errors/error.html",
            {"status": status, "message": message, "request_id": request_id},
            status=status,
        )
    response["Cache-Control"] = "no-store"  # an error is about this request only
    return response


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):  # over DATA_UPLOAD_MAX_MEMORY_SIZE
        return error_response(request, 413)
    return error_response(request, 400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return error_response(
        request, 403, message=str(exception) if isinstance(exception, Refused) else ""
    )


# settings.CSRF_FAILURE_VIEW: a form posted without its token, or with one from an old page.
CSRF_FAILED = (
    "This form has expired or your browser did not send its security token. Reload the page "
    "and try again; if it happens again, allow cookies for this site."
)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Our 403 page for a failed CSRF check (Django's own is unbranded and has no request id).
    The reason stays in the django.security.csrf log line, not in the answer."""
    return error_response(request, 403, message=CSRF_FAILED)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return error_response(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    # Raised outside a view (in a middleware), where UnavailableMiddleware does not see it.
    return unavailable_response(request, sys.exc_info()[1]) or error_response(request, 500)


# The database unreachable (OperationalError: connection refused or lost, a restart, a
# failover; InterfaceError: a connection already closed) is retried by clients, and one
# WARNING line per request keeps an outage from flooding the logs with tracebacks.
_DATABASE_DOWN = "The service cannot reach its database right now. Try again shortly."


def unavailable_response(request: HttpRequest, exception: object) -> HttpResponse | None:
    """503 with Retry-After (RFC 9110 §15.6.4, §10.2.3) for an exception that means a
    dependency is down for now, logged once; None for any other exception. JSON on the
    protocol and API paths (RFC 6749 §5.2 temporarily_unavailable), the error page elsewhere."""
    if isinstance(exception, Unavailable):
        level, message, retry_after = (
            exception.log_level,
            exception.client_message,
            exception.retry_after,
        )
    elif isinstance(exception, (OperationalError, InterfaceError)):
        level, message, retry_after = logging.WARNING, _DATABASE_DOWN, 5
    else:
        return None
    first_line = str(exception).strip().splitlines()[:1] or [type(exception).__name__]
    log.log(level, "%s %s refused with 503: %s", request.method, request.path, first_line[0][:500])
    api = request.path.startswith(("/oauth/", "/api/"))
    response = error_response(request, 503, json=api, message=message)
    response["Retry-After"] = str(retry_after)
    response._has_been_logged = True  # type: ignore[attr-defined]  # once: not by Django too
    return response
