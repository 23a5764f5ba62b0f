from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.core.errors import AuditUnavailable
from apps.core.views import audit_unavailable_response, error_response

log = logging.getLogger("tessera.audit")

_NUL = (b"\x00", b"%00")


class RejectNulMiddleware:
    """Refuses a NUL byte in the query string, a form body or Basic credentials with a 400.

    No legitimate parameter of ours contains one, and PostgreSQL refuses it in text columns,
    so without this a lookup by such a value (client_id, code) ended as a 500.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._has_nul(request):
            return error_response(request, 400)
        return self.get_response(request)

    @staticmethod
    def _has_nul(request: HttpRequest) -> bool:
        query = request.META.get("QUERY_STRING", "").encode("latin-1", "replace").lower()
        if any(marker in query for marker in _NUL):
            return True
        if request.content_type == "application/x-www-form-urlencoded":
            body = request.body.lower()
            if any(marker in body for marker in _NUL):
                return True
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                # Strict: leniently decoded, anything sent as Basic (a JWT, say) can turn
                # into bytes with a NUL in them by chance.
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                return False  # malformed Basic credentials are the OAuth layer's to refuse
            return any(marker in decoded.lower() for marker in _NUL)
        return False


class AuditUnavailableMiddleware:
    """A view whose security event could not be recorded (core.journal: disk full, read-only
    volume) answers 503 and is logged once at ERROR: never a silent drop, never a 500.
    (HashiCorp Vault refuses a request whose audit entry cannot be written.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, AuditUnavailable):
            return None
        log.error("audit: %s %s refused with 503: %s", request.method, request.path, exception)
        response = audit_unavailable_response(request)
        response._has_been_logged = True  # type: ignore[attr-defined]  # once: not by Django too
        return response
