"""JSON-lines log formatter: one object per line, with the request id when there is one."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from apps.core import request_context

# Attributes every LogRecord has; anything else was passed through `extra=` and is emitted.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        context = request_context.current()
        if context is not None:
            entry["request_id"] = context.request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class OneWarningLine(logging.Handler):
    """Makes a record one WARNING line without its traceback, for the handlers after it (the
    record then propagates to the root's, as every other line does).

    For django.security.*: Django logs every SuspiciousOperation (a Host header not in
    ALLOWED_HOSTS, a form with too many fields, a body over DATA_UPLOAD_MAX_MEMORY_SIZE) at
    ERROR with the traceback, so any anonymous client could fill the log with bad requests
    (issue 20; OWASP ASVS 4.0 V7.1.1: log what is needed, no more). The request is still
    answered 400 (413) and has its access-log line. A handler, not a filter: a logger's filter
    sees only what is logged on that logger, not on its children (django.security.csrf …)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno > logging.WARNING:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
        record.exc_info = record.exc_text = record.stack_info = None
        record.__dict__.pop("request", None)  # its repr holds the query string; the id is enough
        context = request_context.current()
        if context is not None:
            record.request_id = context.request_id  # on the record, not only in the formatted line
