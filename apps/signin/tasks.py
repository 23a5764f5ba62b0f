"""The worker's half of a password-reset request (apps.signin.recovery): the request only
queues this, for every address, so its answer and its timing say nothing about which
addresses have accounts (OWASP Forgot Password Cheat Sheet)."""

from __future__ import annotations

from celery import shared_task

from apps.accounts.models import User
from apps.signin.recovery import password_reset_mail


@shared_task
def password_reset_mail_task(user_id: str, ip: str) -> bool:
    """Mail the account `user_id` (the nil UUID for an address without one: nothing is sent)
    a reset link made now, from its current password. True when a message was queued."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return False
    password_reset_mail(user, ip=ip)
    return True
