from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class LoginSession(models.Model):
    """One sign-in of one person: its id is the `sid` of every token issued under it.

    Begins at login, ends at logout, expiry or revocation; ended sessions are kept for the
    audit trail. `acr`/`amr` record how the person authenticated (OIDC Core §2, RFC 8176).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="login_sessions"
    )
    provider = models.CharField(max_length=64, default="local")
    acr = models.CharField(max_length=64)
    amr = models.JSONField(default=list)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.Index(fields=["user", "-created_at"], name="loginsession_user_idx"),
        ]

    def __str__(self) -> str:
        return f"session {self.id} of {self.user_id}"
