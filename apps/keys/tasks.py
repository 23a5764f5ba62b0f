from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from apps.keys.keys import keys_rotate


@shared_task(autoretry_for=(DatabaseError,), retry_backoff=True, max_retries=3)
def rotate_signing_keys() -> list[str]:
    """Beat runs this hourly: publishes, activates, retires and removes keys on schedule.

    Returns the kids it created."""
    return [key.kid for key in keys_rotate()]
