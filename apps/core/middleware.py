from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.core.views import error_response, unavailable_response

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


class UnavailableMiddleware:
    """A view that meets a dependency down for now answers 503 with Retry-After, logged once
    (core.views.unavailable_response): a security event that could not be recorded
    (core.journal: disk full, read-only volume; never a silent drop — HashiCorp Vault refuses
    a request whose audit entry cannot be written), the database unreachable. Never a 500.
    Raised in a middleware instead, the same answer comes from core.views.server_error."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return unavailable_response(request, exception)
