"""Downloads from the console and the admin API: streamed as they are read, never built in
memory, and never kept by a cache (OWASP ASVS 8.2.1: sensitive data)."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import StreamingHttpResponse
from django.utils import timezone


def download(
    chunks: Iterator[str], *, name: str, extension: str, content_type: str
) -> StreamingHttpResponse:
    """An attachment named `name`-<UTC time>.`extension`."""
    response = StreamingHttpResponse(chunks, content_type=content_type)
    filename = f"{name}-{timezone.now():%Y%m%dT%H%M%SZ}.{extension}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
