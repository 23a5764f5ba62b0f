from __future__ import annotations

import random
import re
import smtplib
import time
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from apps.core.events import EventType, emit
from apps.core.health import HEARTBEAT_KEY
from apps.core.mail import Message
from apps.core.redis import get_redis


@shared_task
def heartbeat() -> float:
    """Scheduled by beat, run by a worker: /readyz reads the time it leaves in Redis."""
    now = time.time()
    get_redis().set(HEARTBEAT_KEY, now, ex=3600)
    return now


# Delivery retries (settings.MAIL_RETRIES, MAIL_RETRY_BASE_SECONDS): 10 s, 20 s, 40 s … capped
# at 10 min, each less up to half at random, 8 retries (23 to 30 min in all by default); then
# the message is given up and `mail.failed` recorded.
MAIL_RETRY_MAX_SECONDS = 600


def mail_retry_countdown(retries: int) -> float:
    """Seconds before retry number `retries + 1`: exponential backoff with "equal jitter"
    (half fixed, half random), so messages queued during an outage do not all come back in
    the same second."""
    delay: float = min(settings.MAIL_RETRY_BASE_SECONDS * 2**retries, MAIL_RETRY_MAX_SECONDS)
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - spreading load, not a secret


ADDRESS = re.compile(r"[^\s<>]+@[^\s<>]+")  # what a server reply may echo of the envelope


def _mail_error(error: Exception) -> str:
    """What `mail.failed` keeps of the last error: its SMTP reply codes and text, never a
    address or anything of the message (SMTPRecipientsRefused's str names the recipients, a
    server's reply may quote them)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "recipient refused: " + ", ".join(str(c) for c, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        return f"{error.smtp_code} {ADDRESS.sub('<address>', text)}"[:500]
    return str(error)[:500]


@shared_task(bind=True, max_retries=None)
def mail_deliver(self: Task[Any, None], message: dict[str, Any]) -> None:
    """Send one rendered message (apps/core/mail.py) through the configured backend; on a
    network or SMTP error, retry with backoff up to settings.MAIL_RETRIES times, then record
    `mail.failed`. A refused recipient (SMTPRecipientsRefused) and refused credentials are
    retried too: a greylisting server refuses first and accepts later (RFC 6647 §2.1), and an
    operator can correct the password while messages wait."""
    mail = Message(**message)
    try:
        mail.email().send()
    except (OSError, smtplib.SMTPException) as error:
        attempt = self.request.retries
        if attempt < settings.MAIL_RETRIES:
            raise self.retry(countdown=mail_retry_countdown(attempt), exc=error) from error
        emit(
            EventType.MAIL_FAILED,
            success=False,
            resource_type="mail",
            error_code=type(error).__name__,
            error_message=_mail_error(error),
            metadata={"template": mail.template, "tries": attempt + 1},
        )
        raise
