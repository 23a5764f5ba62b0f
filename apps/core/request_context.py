"""Who is asking, from where, under which request id — for logs and security events.

The client IP is REMOTE_ADDR unless that is a trusted proxy (IDP_TRUSTED_PROXIES); then
X-Forwarded-For is read right to left and the first address that is not a trusted proxy is the
client (OWASP ASVS 4.0 V7.1: log the real source of a request, never a spoofable header from an
untrusted peer).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from apps.core import metrics

access_log = logging.getLogger("tessera.access")

_REQUEST_ID_FORM = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
REQUEST_ID_HEADER = "X-Request-ID"


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    client_ip: str | None
    user_agent: str
    started: float = 0.0  # time.perf_counter() when the request arrived


_current: ContextVar[RequestContext | None] = ContextVar("tessera_request", default=None)


def current() -> RequestContext | None:
    return _current.get()


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def is_trusted_proxy(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address in network for network in settings.TRUSTED_PROXIES)


def client_ip(request: HttpRequest) -> str | None:
    peer = _parse_ip(request.META.get("REMOTE_ADDR", ""))
    if peer is None or not is_trusted_proxy(peer):
        return str(peer) if peer else None
    client = peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed(forwarded.split(",")):
        address = _parse_ip(hop)
        if address is None:
            break  # a malformed hop: trust nothing to its left
        client = address
        if not is_trusted_proxy(address):
            break
    return str(client)


def _request_id(request: HttpRequest, ip: str | None) -> str:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    peer = _parse_ip(request.META.get("REMOTE_ADDR", ""))
    if (
        incoming
        and peer is not None
        and is_trusted_proxy(peer)
        and _REQUEST_ID_FORM.match(incoming)
    ):
        return incoming
    return uuid.uuid4().hex


def route_name(request: HttpRequest, status: int) -> str:
    """The URL pattern's name for metrics (bounded: never the path itself)."""
    match = request.resolver_match
    if match is not None:
        return match.view_name or "unnamed"
    named = getattr(request, "route_name", None)
    if named:
        return str(named)
    if status == 404:
        return "unmatched"
    # Answered before routing (a rate limit's 429, a size limit's 413): the route it was for.
    try:
        return resolve(request.path_info).view_name or "unnamed"
    except Resolver404:
        return "unmatched"


class RequestContextMiddleware:
    """Sets the request context, returns X-Request-ID, and writes one access log line."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        ip = client_ip(request)
        context = RequestContext(
            request_id=_request_id(request, ip),
            client_ip=ip,
            user_agent=request.headers.get("User-Agent", "")[:512],
            started=started,
        )
        token = _current.set(context)
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = context.request_id
            elapsed = time.perf_counter() - started
            metrics.observe_request(
                route=route_name(request, response.status_code),
                method=request.method or "",
                status=response.status_code,
                seconds=elapsed,
            )
            access_log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path[:512],
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client_ip": ip,
                },
            )
            return response
        finally:
            _current.reset(token)
