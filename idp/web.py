"""The production web server: `python -m idp.web`. `make run` (idp/serve.py), deploy/ and the
tests all start Tessera with this command.

granian (WSGI), chosen by measurement (benchmarks/README.md, "Web servers"): the least CPU per
request of gunicorn sync/gthread, granian and uvicorn serving Tessera on one core. Its HTTP
parsing, keep-alive and TLS run in Rust on an async runtime, so a client that is slow to send
its headers holds no thread; Django runs in WEB_THREADS threads per worker. Every value comes
from idp.settings (the environment); the command is built here and exec'd, so the process
that runs is exactly the argv printed by `python -m idp.web --print-argv`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# Headers and request line are buffered up to this many bytes (granian's default,
# --http1-buffer-size), far above the guard's own limits (apps/core/request_limits.py), so
# the guard answers over-long URLs and headers with the project's error, not granian's.
HTTP1_BUFFER_BYTES = 417_792
GRACEFUL_STOP_SECONDS = 10  # a stopping worker finishes its requests for this long


def log_config(level: str) -> dict[str, Any]:
    """granian's own lines (start, stop, errors) as the same JSON lines as Django's."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "apps.core.logging.JsonFormatter"}},
        "handlers": {"stdout": handler},
        "loggers": {
            "_granian": {"handlers": ["stdout"], "level": level, "propagate": False},
            # Off: the request-context middleware writes the access log line (JSON, with the
            # request id); granian's would be a second, unstructured one.
            "granian.access": {"handlers": ["stdout"], "level": "CRITICAL", "propagate": False},
        },
    }


def argv(python: str, settings: Any, log_config_path: Path) -> list[str]:
    command = [
        python, "-m", "granian", "--interface", "wsgi",
        "--host", settings.BIND_HOST, "--port", str(settings.PORT),
        "--workers", str(settings.WEB_WORKERS),
        "--blocking-threads", str(settings.WEB_THREADS),
        "--no-ws",
        "--respawn-failed-workers",  # a worker that dies is replaced, as gunicorn's master did
        "--workers-kill-timeout", str(GRACEFUL_STOP_SECONDS),
        "--http1-buffer-size", str(HTTP1_BUFFER_BYTES),
        "--log-level", settings.LOG_LEVEL.lower(),
        "--log-config", str(log_config_path),
        "--no-access-log",
    ]  # fmt: skip
    if settings.TLS_CERT_FILE is not None:
        command += [
            "--ssl-certificate", str(settings.TLS_CERT_FILE),
            "--ssl-keyfile", str(settings.TLS_KEY_FILE),
            "--ssl-protocol-min", "tls1.3",  # RFC 8446; BCP 195 (RFC 9325) allows 1.2, we need not
        ]  # fmt: skip
    return [*command, "idp.wsgi:application"]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
    from django.conf import settings

    run_dir = settings.DATA_DIR / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "granian-logging.json"
    # Written whole, then renamed: servers starting together on one data dir never read half.
    partial = run_dir / f".granian-logging.{os.getpid()}.json"
    partial.write_text(json.dumps(log_config(settings.LOG_LEVEL)))
    partial.replace(config_path)
    command = argv(sys.executable, settings, config_path)
    if "--print-argv" in sys.argv[1:]:
        print(json.dumps(command))
        return
    sys.stdout.flush()
    os.execv(sys.executable, command)  # noqa: S606 - argv built above from settings


if __name__ == "__main__":
    main()
