from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings

from apps.tokens.logout_propagation import (
    RETRY_BACKOFF,
    backchannel_logout_deliver,
    departed_client_logouts_deliver,
    stalled_deliveries_claim,
)


@shared_task(bind=True, max_retries=len(RETRY_BACKOFF))
def deliver_backchannel_logout(self: Task[Any, Any], delivery_id: int) -> None:
    """Back-Channel Logout 1.0 §2.7: one Logout Token to one client, retried with exponential
    backoff while the client does not answer 200 (§2.8); runs only in the worker, so a slow
    relying party never holds up a logout."""
    attempt = self.request.retries
    final = attempt >= len(RETRY_BACKOFF)
    if not backchannel_logout_deliver(delivery_id=delivery_id, final_attempt=final):
        raise self.retry(countdown=settings.BACKCHANNEL_RETRY_BASE_SECONDS * RETRY_BACKOFF[attempt])


@shared_task
def redeliver_stalled_backchannel_logouts() -> int:
    """Beat runs this every 5 minutes: queues again the deliveries that lost their task (a
    broker outage at logout, a worker killed mid-delivery). Returns how many."""
    stalled = stalled_deliveries_claim()
    for delivery_id in stalled:
        deliver_backchannel_logout.delay(delivery_id)
    return len(stalled)


@shared_task(bind=True, max_retries=len(RETRY_BACKOFF))
def deliver_departed_client_logouts(
    self: Task[Any, Any], client_id: str, uri: str, alg: str, sessions: list[list[str]]
) -> int:
    """Back-Channel Logout 1.0 §2.5 to a client an operator deleted, for a batch of the live
    sessions it held tokens in; the sessions not accepted are retried with the same backoff
    as any delivery. Returns how many were accepted in this attempt."""
    pending = [(sid, sub) for sid, sub in sessions]
    failed = departed_client_logouts_deliver(
        client_id=client_id, uri=uri, alg=alg, sessions=pending
    )
    attempt = self.request.retries
    if failed and attempt < len(RETRY_BACKOFF):
        raise self.retry(
            args=(client_id, uri, alg, [list(s) for s in failed]),
            countdown=settings.BACKCHANNEL_RETRY_BASE_SECONDS * RETRY_BACKOFF[attempt],
        )
    return len(pending) - len(failed)
