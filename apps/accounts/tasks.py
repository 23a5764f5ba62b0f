"""Scheduled work of accounts (beat: idp/settings.py CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import user_unblock

log = logging.getLogger("tessera.accounts")


@shared_task
def lift_expired_blocks() -> int:
    """Lifts each block whose `blocked_until` has passed, through user_unblock with no actor,
    so `user.unblocked` (reason "expired") is recorded and the person's page no longer shows
    it. Sign-in does not wait for this: User.is_blocked() already ignores an expired block.
    Each person is re-read under lock first: one blocked again meanwhile, for longer or
    until unblocked, stays blocked. Returns how many were lifted."""
    now = timezone.now()
    due = User.objects.filter(blocked_at__isnull=False, blocked_until__lte=now)
    lifted = 0
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            user = User.objects.select_for_update().filter(pk=pk).first()
            if user is None or user.blocked_until is None or user.blocked_until > now:
                continue
            lifted += user_unblock(user=user, actor_id=None)
    if lifted:
        log.info("lifted %d expired block(s)", lifted)
    return lifted
