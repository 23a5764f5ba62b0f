"""Size limits on every request, answered with the project's error, not a server's raw page.

- Body: at most settings.MAX_REQUEST_BODY_BYTES, whatever the content type. Django's
  DATA_UPLOAD_MAX_MEMORY_SIZE leaves multipart file parts out of its count, so without this a
  20 MB multipart POST to /oauth/token was read and issued a token. A declared Content-Length
  over the limit is refused before one byte is read; a chunked body (no Content-Length,
  RFC 9112 §6.1), which Django would not read at all, is read here up to the limit + 1 byte
  (ChunkedBodyLimit, the WSGI wrapper in idp/wsgi.py) and refused past it. 413, RFC 9110
  §15.5.14.
- URL: path + query at most MAX_URL_BYTES (RFC 9110 §4.1 asks for at least 8000 octets);
  414, RFC 9110 §15.5.15.
- Headers: one at most MAX_HEADER_BYTES, all together at most MAX_HEADERS_BYTES; 431,
  RFC 6585 §5.
(OWASP ASVS 4.0 V12.1.1 / V13.1.3: limits on request size.) The web server buffers more than
these (idp/web.py, HTTP1_BUFFER_BYTES), so requests between the two meet this guard.

Under /oauth/ the answer is always the OAuth JSON error (RFC 6749 §5.2, invalid_request); else
JSON or HTML as the client prefers (apps.core.views.error_response).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.core.views import error_response

MAX_URL_BYTES = 8192
MAX_HEADER_BYTES = 196_608  # room for the 133 KB tokens tests/tokens refuses as invalid_token
MAX_HEADERS_BYTES = 327_680  # both under the server's header buffer (idp/web.py)
BODY_TOO_LARGE = "tessera.body_too_large"  # WSGI environ key set by ChunkedBodyLimit
_READ_CHUNK = 65536

_OAUTH_DESCRIPTIONS = {
    413: "The request body is too large.",
    414: "The request URL is too long.",
    431: "The request headers are too large.",
}

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _is_chunked(environ: dict[str, Any]) -> bool:
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


class ChunkedBodyLimit:
    """WSGI wrapper: reads a chunked request body (at most the limit + 1 byte) and hands Django
    the bytes with their Content-Length, or marks the request too large for the middleware."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if _is_chunked(environ) and not environ.get("CONTENT_LENGTH"):
            limit = settings.MAX_REQUEST_BODY_BYTES
            stream, parts, size = environ["wsgi.input"], [], 0
            while size <= limit:
                part = stream.read(min(_READ_CHUNK, limit + 1 - size))
                if not part:
                    break
                parts.append(part)
                size += len(part)
            body = b"".join(parts)
            if size > limit:
                environ[BODY_TOO_LARGE] = True
                body = b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


def refusal(meta: dict[str, Any]) -> int | None:
    """The status a request's size earns, or None when it is within every limit."""
    url = len(meta.get("PATH_INFO", "").encode("latin-1", "replace"))
    url += len(meta.get("QUERY_STRING", ""))
    if url > MAX_URL_BYTES:
        return 414
    total = 0
    for key, value in meta.items():
        if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            size = len(key) + len(str(value))
            if size > MAX_HEADER_BYTES:
                return 431
            total += size
    if total > MAX_HEADERS_BYTES:
        return 431
    if meta.get(BODY_TOO_LARGE):
        return 413
    try:
        length = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 400
    if length > settings.MAX_REQUEST_BODY_BYTES:
        return 413
    return None


class RequestLimitsMiddleware:
    """Refuses a request over a size limit before anything reads its body. Placed right after
    the request-context middleware, so the refusal still has its access-log line and id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        status = refusal(request.META)
        if status is None:
            return self.get_response(request)
        if request.path.startswith("/oauth/"):
            response: HttpResponse = JsonResponse(
                {
                    "error": "invalid_request",  # RFC 6749 §5.2
                    "error_description": _OAUTH_DESCRIPTIONS.get(status, "Malformed request."),
                },
                status=status,
            )
            response["Cache-Control"] = "no-store"  # RFC 6749 §5.2
        else:
            response = error_response(request, status)
        return response
