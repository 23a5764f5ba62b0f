"""The admin API's JSON shapes (read-only: every change goes through a service)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.accounts.models import User
from apps.core.models import SecurityEvent
from apps.sessions.models import LoginSession, SessionClient
from apps.sessions.services import session_is_live


class UserSerializer(serializers.ModelSerializer[User]):
    class Meta:
        model = User
        fields = ("id", "email", "name", "is_active", "is_staff", "date_joined")


class SessionClientSerializer(serializers.ModelSerializer[SessionClient]):
    class Meta:
        model = SessionClient
        fields = ("client_id", "first_issued_at")


class SessionSerializer(serializers.ModelSerializer[LoginSession]):
    user_email = serializers.EmailField(source="user.email")
    live = serializers.SerializerMethodField()
    clients = SessionClientSerializer(many=True)

    class Meta:
        model = LoginSession
        fields = (
            "id", "user", "user_email", "live", "provider", "acr", "amr", "device_id",
            "ip_address", "user_agent", "context", "security_level", "threat_score",
            "compromised", "created_at", "last_active_at", "expires_at", "ended_at",
            "end_reason", "clients",
        )  # fmt: skip

    def get_live(self, session: LoginSession) -> bool:
        return session_is_live(session)


class SessionPageSerializer(serializers.Serializer[Any]):
    results = SessionSerializer(many=True)
    next = serializers.CharField(
        allow_null=True, help_text="Pass as `after` for the next page; null on the last page."
    )


class SecurityEventSerializer(serializers.ModelSerializer[SecurityEvent]):
    class Meta:
        model = SecurityEvent
        fields = (
            "id", "occurred_at", "event_type", "user_id", "actor_id", "session_id",
            "resource_type", "resource_id", "success", "ip_address", "user_agent",
            "request_id", "metadata",
        )  # fmt: skip


class SessionsEndedSerializer(serializers.Serializer[Any]):
    ended = serializers.IntegerField(help_text="How many live sessions this request ended.")
