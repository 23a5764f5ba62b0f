"""The answers every admin API operation may give besides its own results, added to the
OpenAPI document (a drf-spectacular postprocessing hook, SPECTACULAR_SETTINGS).

Each comes from a layer all operations share, so it is said once here rather than in each
view's extend_schema: schemathesis (tests/schema) found operations answering 400 and 404
where their documents listed only 200. An operation that documents one of these itself
keeps its own description.
"""

from __future__ import annotations

from typing import Any

_FIELD_ERRORS = {
    "description": 'Bad input: each field at fault and why, {"kind": ["…"]}; a body that is '
    'not JSON: {"detail": "JSON parse error …"}.',
    "content": {"application/json": {"schema": {"type": "object", "additionalProperties": {}}}},
}
_EVERY_OPERATION = {
    # RFC 6750 §3.1: no token, or one refused; WWW-Authenticate says which.
    "401": {"description": 'Not signed in, or the token was refused: {"detail": "…"}.'},
    # apps.console.permissions: a role below the operation's, or a token without the admin
    # scope (RFC 6750 §3.1 insufficient_scope).
    "403": {"description": 'The caller may not do this: {"detail": "…"}.'},
    # apps.ratelimit, rule api.ip (IDP_RATELIMIT_API_IP); Retry-After says when to try again.
    "429": {
        "description": "Too many requests from this address: "
        '{"error": "temporarily_unavailable", "error_description": "…", "request_id": "…"}.'
    },
}
# Ids in paths are UUIDs (or a client id): a malformed one is the resolver's 404, an unknown
# one the lookup's.
_NOT_FOUND = {"description": 'No such row: {"detail": "…"}.'}
# apps.core.request_limits: a body over IDP_MAX_REQUEST_BODY_BYTES (RFC 9110 §15.5.14).
_TOO_LARGE = {
    "description": "The request body is too large: "
    '{"error": "invalid_request", "error_description": "…", "request_id": "…"}.'
}
# A body in a media type none of DRF's parsers reads (JSON, form, multipart).
_UNSUPPORTED = {"description": 'The body\'s media type is not one the API reads: {"detail": "…"}.'}
_METHODS = ("get", "put", "post", "patch", "delete")


def shared_responses(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    for path, item in result.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            parameters = operation.get("parameters", []) + item.get("parameters", [])
            takes_input = "requestBody" in operation or any(
                p.get("in") == "query" for p in parameters
            )
            if takes_input:
                responses.setdefault("400", _FIELD_ERRORS)
            if "{" in path:
                responses.setdefault("404", _NOT_FOUND)
            if "requestBody" in operation:
                responses.setdefault("413", _TOO_LARGE)
                responses.setdefault("415", _UNSUPPORTED)
            for status, response in _EVERY_OPERATION.items():
                responses.setdefault(status, response)
            operation["responses"] = dict(sorted(responses.items()))
    return result
