"""The Celery app. Tasks live in each app's tasks.py and are found by autodiscovery.

stdout is JSON lines only (issue 19): the worker's and beat's banners become one JSON log line
each (JsonLinesCelery), and the lines Celery writes straight to the terminal from its signal
handlers ("worker: Warm shutdown (MainProcess)") are written as JSON objects too (_say).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import celery.apps.worker
from celery import Celery
from celery.apps.beat import Beat
from celery.apps.worker import Worker
from celery.signals import (
    beat_init,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)
from kombu.utils.objects import cached_property

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

log = logging.getLogger("tessera.celery")


class JsonLinesWorker(Worker):
    """The banner (hostname, concurrency, queues) as one log line instead of ASCII art."""

    def emit_banner(self) -> None:
        worker: Any = self  # celery sets these attributes in its __init__, untyped
        pool = worker.pool_cls if isinstance(worker.pool_cls, str) else worker.pool_cls.__module__
        log.info(
            "celery worker starting",
            extra={
                "hostname": worker.hostname,
                "concurrency": worker.concurrency,
                "pool": pool.rsplit(".", 1)[-1],
                "queues": sorted(self.app.amqp.queues),
                "tasks": sorted(name for name in self.app.tasks if not name.startswith("celery.")),
            },
        )


class JsonLinesBeat(Beat):
    """Quiet (its banner and "is starting" are print()s); one log line once logging is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "quiet": True})

    def setup_logging(self, colorize: bool | None = None) -> None:
        super().setup_logging(colorize)
        log.info("celery beat starting", extra={"schedule": getattr(self, "schedule", "")})


class JsonLinesCelery(Celery):
    @cached_property
    def Worker(self) -> type[Worker]:
        return self.subclass_with_self(JsonLinesWorker)

    @cached_property
    def Beat(self) -> type[Beat]:
        return self.subclass_with_self(JsonLinesBeat)


def _say(message: str, file: TextIO = sys.__stderr__) -> None:  # type: ignore[assignment]
    """celery.apps.worker.safe_say, as a JSON line. It runs inside signal handlers: no logging
    (its handler lock may be held by the code the signal interrupted), one os.write."""
    entry = {
        "ts": datetime.now(tz=UTC).isoformat(timespec="milliseconds"),
        "level": "warning",
        "logger": "celery.apps.worker",
        "msg": message.strip(),
    }
    with contextlib.suppress(OSError, ValueError):  # as Celery's: a lost line never aborts
        os.write(file.fileno(), (json.dumps(entry) + "\n").encode())


celery.apps.worker.safe_say = _say  # type: ignore[attr-defined]
# Python's warnings (Celery's SecurityWarning when run as root, deprecations) as JSON log lines.
logging.captureWarnings(True)

app = JsonLinesCelery("tessera")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _worker_metrics(**kwargs: Any) -> None:
    """The worker's main process, before it forks its pool: its children's counters go to
    the worker's metrics folder, emptied now (apps/core/metrics.py)."""
    from django.conf import settings

    from apps.core import metrics

    metrics.start_role(settings.METRICS_DIR, "worker")


@beat_init.connect
def _first_heartbeat(sender: Any, **kwargs: Any) -> None:
    """Beat's schedule first fires after one interval; send one now so /readyz is prompt.
    Beat counts what it emits in a folder of its own (embedded in a worker with -B too)."""
    from django.conf import settings

    from apps.core import metrics

    metrics.start_role(settings.METRICS_DIR, "beat")
    sender.app.send_task("apps.core.tasks.heartbeat", expires=60)


@worker_process_init.connect
def _journal_start(**kwargs: Any) -> None:
    """A prefork child opens its own audit journal (apps/core/journal.py), not its parent's."""
    from apps.core import journal

    journal.start()


@worker_process_shutdown.connect
def _journal_drain(**kwargs: Any) -> None:
    """Prefork children leave through os._exit, past atexit: drain the journal here."""
    from apps.core import journal

    journal.shutdown()
