"""Downloads from the console and the admin API: streamed as they are read, never built in
memory, and never kept by a cache (OWASP ASVS 8.2.1: sensitive data). Both raise
StoreUnavailable before any byte when the audit store cannot be read; each surface answers
that its own way."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import StreamingHttpResponse
from django.utils import timezone

from apps.accounts.models import User
from apps.audit import gdpr
from apps.audit.export import FORMATS, events_export
from apps.audit.store import EventFilters


def events_download(*, filters: EventFilters, fmt: str, actor_id: object) -> StreamingHttpResponse:
    """Every event the search matches, as CSV or JSON Lines (apps.audit.export)."""
    chunks = events_export(filters=filters, fmt=fmt, actor_id=actor_id)
    return _attachment(
        chunks, name="audit-events", extension=fmt, content_type=FORMATS[fmt].content_type
    )


def person_download(*, user: User, actor_id: object) -> StreamingHttpResponse:
    """Everything held about the person, one JSON document (GDPR Art. 15, 20)."""
    chunks = gdpr.subject_export(user=user, actor_id=actor_id)
    return _attachment(
        chunks, name=f"tessera-person-{user.pk}", extension="json", content_type="application/json"
    )


def _attachment(
    chunks: Iterator[str], *, name: str, extension: str, content_type: str
) -> StreamingHttpResponse:
    """An attachment named `name`-<UTC time>.`extension`."""
    response = StreamingHttpResponse(chunks, content_type=content_type)
    filename = f"{name}-{timezone.now():%Y%m%dT%H%M%SZ}.{extension}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
