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
    # Bound at login (apps.sessions.binding); checked on every request that uses the session.
    device_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    # Location (when GeoIP is configured), device, network, browser and security flags.
    context = models.JSONField(default=dict, blank=True)
    # What the amr proves (apps.sessions.levels): 1 one factor, 2 MFA, 3 MFA with a hardware
    # key; kept with acr by session_start and session_step_up, never set alone.
    security_level = models.PositiveSmallIntegerField(default=1)
    # OIDC Core §2 auth_time: the person's latest active authentication in this session (its
    # login, then each step-up); null only on sessions begun before it was kept (read
    # session_auth_time, which falls back to created_at).
    authenticated_at = models.DateTimeField(null=True, blank=True)
    threat_score = models.PositiveSmallIntegerField(default=0)  # 0-100, set by threat scoring
    compromised = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    last_active_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.Index(fields=["user", "-created_at"], name="loginsession_user_idx"),
            # The console: newest activity first (the id breaks ties for its keyset pages),
            # live sessions alone, and searches by IP address or device.
            models.Index(fields=["-last_active_at", "-id"], name="loginsession_active_idx"),
            models.Index(
                fields=["-last_active_at", "-id"],
                condition=models.Q(ended_at__isnull=True),
                name="loginsession_live_active_idx",
            ),
            models.Index(fields=["ip_address"], name="loginsession_ip_idx"),
            models.Index(fields=["device_id"], name="loginsession_device_idx"),
            # Live sessions of a user (the concurrent-session limit counts them at login).
            models.Index(
                fields=["user", "created_at"],
                condition=models.Q(ended_at__isnull=True),
                name="loginsession_user_live_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"session {self.id} of {self.user_id}"


class SessionClient(models.Model):
    """A client that received tokens under a login session: who to tell when it ends
    (OpenID Connect Back-Channel and Front-Channel Logout)."""

    session = models.ForeignKey(LoginSession, on_delete=models.CASCADE, related_name="clients")
    client_id = models.CharField(max_length=100)
    first_issued_at = models.DateTimeField()

    class Meta:
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(fields=["session", "client_id"], name="session_client_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} in {self.session_id}"
