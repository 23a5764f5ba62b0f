"""Content-Security-Policy violation reports: the endpoint of our policy's `report-uri` (CSP
Level 2 §4.4, `application/csp-report`) and `report-to` (Reporting API, a JSON array of
`application/reports+json`), each violation recorded as a csp.violation security event.

Anyone can post here, so a report is evidence of nothing but itself: the body is bounded
(REPORT_MAX_BYTES), a batch is bounded (REPORT_MAX_VIOLATIONS), the endpoint is rate limited
per IP (settings.RATELIMIT_RULES "csp_report.ip"), and what is kept is small and never
personal: the directive, the blocked resource's origin (or the keyword `inline`, `eval`, …),
the document's path. Never a query string or fragment (they can carry codes and tokens), never
the script sample.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.core.events import EventType, emit
from apps.core.security_headers import origin_of
from apps.core.views import error_response

REPORT_MAX_BYTES = 16 * 1024
REPORT_MAX_VIOLATIONS = 10
CSP_REPORT = "application/csp-report"
REPORTS_JSON = "application/reports+json"
# A directive name (CSP Level 3 §2.2): letters, digits and dashes.
_DIRECTIVE = re.compile(r"^[a-z0-9-]{1,64}$")
# Keywords browsers put for blocked-uri / blockedURL instead of a URL (CSP Level 3 §5.1).
_KEYWORDS = frozenset({"inline", "eval", "wasm-eval", "self", "data", "blob", "trusted-types-sink"})
_MAX_PATH = 512


class MalformedReport(ValueError):
    pass


@dataclass(frozen=True)
class Violation:
    directive: str
    blocked: str
    document_path: str
    disposition: str


def _text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedReport(f"{field} is not a string")
    return value


def _directive(body: dict[str, Any], *names: str) -> str:
    for name in names:
        text = _text(body.get(name), name).strip().lower()
        if text:
            directive = text.split()[0]  # violated-directive may carry its source list
            if not _DIRECTIVE.match(directive):
                raise MalformedReport(f"{name} is not a directive name")
            return directive
    raise MalformedReport("the report names no directive")


def _blocked(value: str) -> str:
    """The blocked resource as its origin, its scheme (data:, blob:) or a keyword."""
    if not value:
        return ""
    if value in _KEYWORDS:
        return value
    if origin := origin_of(value):
        return origin
    scheme = urlsplit(value).scheme if ":" in value else ""
    return f"{scheme}:" if re.fullmatch(r"[a-z][a-z0-9+.-]{0,31}", scheme) else "other"


def _document_path(value: str) -> str:
    if not value:
        return ""
    try:
        path = urlsplit(value).path
    except ValueError:
        raise MalformedReport("the document URL is not a URL") from None
    return path[:_MAX_PATH]


def _violation(body: Any, *, level2: bool) -> Violation:
    if not isinstance(body, dict):
        raise MalformedReport("a report body is not an object")
    if level2:
        directive = _directive(body, "effective-directive", "violated-directive")
        blocked = _text(body.get("blocked-uri"), "blocked-uri")
        document = _text(body.get("document-uri"), "document-uri")
    else:
        directive = _directive(body, "effectiveDirective")
        blocked = _text(body.get("blockedURL"), "blockedURL")
        document = _text(body.get("documentURL"), "documentURL")
    disposition = _text(body.get("disposition"), "disposition") or "enforce"
    if disposition not in ("enforce", "report"):
        raise MalformedReport("disposition is neither enforce nor report")
    return Violation(directive, _blocked(blocked), _document_path(document), disposition)


def parse(content_type: str, body: bytes) -> list[Violation]:
    """The violations of a report body; MalformedReport for anything else."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedReport("the body is not JSON") from None
    if content_type == CSP_REPORT:
        if not isinstance(parsed, dict) or "csp-report" not in parsed:
            raise MalformedReport('the body has no "csp-report" object')
        return [_violation(parsed["csp-report"], level2=True)]
    if not isinstance(parsed, list) or not parsed:
        raise MalformedReport("the body is not a non-empty array of reports")
    if len(parsed) > REPORT_MAX_VIOLATIONS:
        raise MalformedReport(f"more than {REPORT_MAX_VIOLATIONS} reports in one body")
    violations = []
    for report in parsed:
        if not isinstance(report, dict):
            raise MalformedReport("a report is not an object")
        if report.get("type") != "csp-violation":
            continue  # another kind of report: not ours to keep
        violations.append(_violation(report.get("body"), level2=False))
    if not violations:
        raise MalformedReport("no csp-violation report in the body")
    return violations


def _refused(request: HttpRequest, status: int, message: str) -> HttpResponse:
    return error_response(request, status, json=True, message=message)


@csrf_exempt  # browsers send reports without our CSRF token, by design
@never_cache
@require_POST
def csp_report(request: HttpRequest) -> HttpResponse:
    content_type = request.content_type or ""
    if content_type not in (CSP_REPORT, REPORTS_JSON):
        return _refused(request, 400, f"Send {CSP_REPORT} or {REPORTS_JSON}.")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = REPORT_MAX_BYTES + 1
    if length > REPORT_MAX_BYTES:
        return _refused(request, 413, f"A report is at most {REPORT_MAX_BYTES} bytes.")
    body = request.read(REPORT_MAX_BYTES + 1)
    if len(body) > REPORT_MAX_BYTES:
        return _refused(request, 413, f"A report is at most {REPORT_MAX_BYTES} bytes.")
    try:
        violations = parse(content_type, body)
    except MalformedReport as refused:
        return _refused(request, 400, f"Not a CSP violation report: {refused}.")
    for violation in violations:
        emit(
            EventType.CSP_VIOLATION,
            metadata={
                "directive": violation.directive,
                "blocked": violation.blocked,
                "document_path": violation.document_path,
                "disposition": violation.disposition,
            },
        )
    return HttpResponse(status=204)
