from __future__ import annotations

import smtplib
import time
from typing import Any

from celery import Task, shared_task

from apps.core.events import EventType, emit
from apps.core.health import HEARTBEAT_KEY
from apps.core.redis import get_redis


@shared_task
def heartbeat() -> float:
    """Scheduled by beat, run by a worker: /readyz reads the time it leaves in Redis."""
    now = time.time()
    get_redis().set(HEARTBEAT_KEY, now, ex=3600)
    return now


# Delivery retries: 10 s, 20 s, 40 s … capped at 10 min, 8 tries (about 40 min in all), then
# the message is given up and `mail.failed` recorded.
MAIL_RETRIES = 8


@shared_task(
    bind=True,
    autoretry_for=(OSError, smtplib.SMTPException),
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=MAIL_RETRIES,
)
def mail_deliver(self: Task[Any, None], message: dict[str, Any]) -> None:
    """Send one rendered message (apps/core/mail.py) through the configured backend.
    A refused recipient (SMTPRecipientsRefused) is an SMTPException: retried too, since a
    greylisting server refuses first and accepts later."""
    from apps.core.mail import Message

    mail = Message(**message)
    try:
        mail.email().send()
    except (OSError, smtplib.SMTPException) as error:
        if self.request.retries >= MAIL_RETRIES:
            emit(
                EventType.MAIL_FAILED,
                success=False,
                resource_type="mail",
                error_code=type(error).__name__,
                error_message=str(error)[:500],
                metadata={"template": mail.template},
            )
        raise
