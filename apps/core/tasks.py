from __future__ import annotations

import time

from celery import shared_task

from apps.core.health import HEARTBEAT_KEY
from apps.core.redis import get_redis


@shared_task
def heartbeat() -> float:
    """Scheduled by beat, run by a worker: /readyz reads the time it leaves in Redis."""
    now = time.time()
    get_redis().set(HEARTBEAT_KEY, now, ex=3600)
    return now
