"""The Celery app. Tasks live in each app's tasks.py and are found by autodiscovery."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import (
    beat_init,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

app = Celery("tessera")
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
