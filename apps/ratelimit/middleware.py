"""Rate limits by path, before any session or database work (listed in MIDDLEWARE).

Each request to a limited endpoint (services.GROUPS) is checked against its endpoint's
per-IP, whole-endpoint and global rules. For the client-authenticating endpoints (token,
introspection, revocation) those rules are deferred to the endpoint's own call
(apps/tokens/grants/base.py: the client's rule and its failed-attempt reservation, all in the
same round trip); a request the endpoint refused before that call is checked after the view.
A deny-listed client IP is refused (403) everywhere but the health probes.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.core import request_context
from apps.core.views import error_response
from apps.ratelimit import responses, services

_PROBES = ("/healthz", "/readyz")


class RateLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not settings.RATELIMIT_ENABLED:
            return self.get_response(request)
        context = request_context.current()
        ip = context.client_ip if context else None
        if services.deny_listed(ip) and request.path not in _PROBES:
            return error_response(request, 403)
        group = services.group_for(request)
        if group is None:
            return self.get_response(request)
        limits = services.RequestLimits(group, ip, services.endpoint_keys(group, ip))
        request.ratelimit = limits  # type: ignore[attr-defined]
        if group not in services.DEFERRED:
            decision = services.check(request)
            if not decision.allowed:
                return responses.refusal(request, decision)
        response = self.get_response(request)
        if limits.pending:  # refused by the endpoint before its limits step
            decision = services.check(request)
            if not decision.allowed:
                return responses.refusal(request, decision)
        if response.status_code != 429:
            for name, value in limits.decision.headers().items():
                response[name] = value
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, services.Limited):
            return responses.refusal(request, exception.decision)
        return None
