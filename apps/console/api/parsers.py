"""The admin API's one JSON parser (REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"])."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's, with a body nested deeper than Python's parser can follow (`[` times 100,000) a 400
    like any other malformed JSON: DRF turns only ValueError into ParseError, so the
    RecursionError was a 500 (issue 20; OWASP ASVS 5.0 V1.5.3: parse input safely).

    The body is parsed wherever DRF first reads it, the session's CSRF check included
    (SessionAuthentication reads request.POST), so every endpoint meets this, not only those
    that read request.data."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
