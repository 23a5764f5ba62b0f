"""The worker's half of threat alerts (apps/threat/alerts.py): the signed webhook, retried
with exponential backoff and jitter, then given up with a log line (`threat.webhook_failed`),
as apps/core/tasks.py gives up a message and records `mail.failed`."""

from __future__ import annotations

import http.client
import logging
import random
import time
import urllib.error
import urllib.request
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from apps.threat.activity import activity_assess
from apps.threat.alerts import SIGNATURE_HEADER, body_of, sign

log = logging.getLogger("tessera.threat")

# Retries (settings.THREAT_WEBHOOK_RETRIES, THREAT_WEBHOOK_RETRY_BASE_SECONDS): 10 s, 20 s,
# 40 s … capped at 10 min, each less up to half at random (8 retries: 23 to 30 min in all).
RETRY_MAX_SECONDS = 600


def retry_countdown(retries: int) -> float:
    """Seconds before retry number `retries + 1`: exponential backoff with "equal jitter", so
    alerts queued while the receiver was down do not all come back in the same second."""
    delay: float = min(settings.THREAT_WEBHOOK_RETRY_BASE_SECONDS * 2**retries, RETRY_MAX_SECONDS)
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - spreading load, not a secret


class WebhookRefused(Exception):
    """The receiver answered, but not with 2xx."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure, not followed: the signed alert goes to the configured URL
    only."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def webhook_post(url: str, payload: dict[str, Any]) -> int:
    """POSTs the alert, signed now (each attempt gets a fresh timestamp); returns the status.
    Raises WebhookRefused for an answer other than 2xx, OSError for the network."""
    body = body_of(payload)
    secrets = (settings.THREAT_WEBHOOK_SECRET, settings.THREAT_WEBHOOK_SECRET_PREVIOUS)
    request = urllib.request.Request(  # noqa: S310 - https, or http to loopback (settings)
        url,
        data=body,
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Tessera-Threat-Alerts/1",
            SIGNATURE_HEADER: sign(body, timestamp=int(time.time()), secrets=secrets),
            "Tessera-Alert-Id": str(payload["id"]),
        },
        method="POST",
    )
    try:
        with _opener.open(request, timeout=settings.THREAT_WEBHOOK_TIMEOUT) as response:
            status = int(response.status)
    except urllib.error.HTTPError as refused:
        refused.close()
        status = refused.code
    except http.client.HTTPException as broken:
        raise OSError(f"{type(broken).__name__}: {broken}") from broken
    if not 200 <= status < 300:
        raise WebhookRefused(f"HTTP {status}")
    return status


@shared_task(bind=True, max_retries=None)
def webhook_deliver(self: Task[Any, int | None], url: str, payload: dict[str, Any]) -> int | None:
    """Delivers one alert to `url` (settings.THREAT_WEBHOOK_URL when it was queued); on a
    network error, a timeout or a non-2xx answer, retries up to THREAT_WEBHOOK_RETRIES times,
    then logs `threat.webhook_failed` (the alert's id, the tries and the last error; the
    alert itself stays in the audit store as threat.alerted). Returns the receiver's status,
    None when given up."""
    try:
        return webhook_post(url, payload)
    except (OSError, WebhookRefused) as error:
        attempt = self.request.retries
        if attempt < settings.THREAT_WEBHOOK_RETRIES:
            raise self.retry(countdown=retry_countdown(attempt), exc=error) from error
        log.error(
            "threat.webhook_failed: alert %s not delivered after %d tries: %s",
            payload.get("id"),
            attempt + 1,
            f"{type(error).__name__}: {error}"[:500],
            extra={"event": "threat.webhook_failed", "alert_id": payload.get("id")},
        )
        return None


@shared_task(ignore_result=True)
def assess_activity(payload: dict[str, Any]) -> None:
    """Session activity handed over by a request (apps/threat/activity.py)."""
    activity_assess(payload)


# --- Baselines (apps/threat/baselines.py; beat: THREAT_BASELINE_REBUILD_HOUR in settings) ---
# A separate block, its imports inside the task: nothing above is shared with it.


@shared_task(bind=True, max_retries=3, default_retry_delay=600)
def rebuild_baselines(self: Task[Any, dict[str, int]]) -> dict[str, int]:
    """Beat runs this daily: rebuilds every person's baseline from the audit trail
    (baselines.baselines_rebuild). The audit store, Redis or the database down: tried again
    in 10 minutes, three times, then left to the next day (sign-in keeps learning
    meanwhile)."""
    from django.db import DatabaseError
    from redis import RedisError

    from apps.core.signin_history import SignInHistoryUnavailable
    from apps.threat.baselines import baselines_rebuild

    try:
        report = baselines_rebuild()
    except (SignInHistoryUnavailable, RedisError, DatabaseError) as error:
        log.warning("threat: baseline rebuild failed, trying again later: %s", error)
        raise self.retry(exc=error) from error
    return {
        "people": report.people,
        "sign_ins": report.sign_ins,
        "written": report.written,
        "kept_newer": report.kept_newer,
        "removed": report.removed,
        "no_account": report.no_account,
    }
