"""The admin API's JSON shapes (read-only: every change goes through a service)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.fields import empty

from apps.accounts.models import User
from apps.mfa.models import FactorKind
from apps.ratelimit.services import KEY_KINDS_SHOWN, KINDS, BadBlockKey, block_key
from apps.sessions.models import LoginSession, SessionClient
from apps.sessions.services import session_is_live
from apps.tokens.models import OfflineGrant


class StrictBoolean(serializers.BooleanField):
    """JSON true or false and nothing else: DRF's BooleanField would also take "yes", "on",
    1 or "0", and a security switch should not be flipped by a guess at what was meant
    (OWASP ASVS 5.1.3: input checked against what is expected).

    Missing from a form-encoded body, it is missing (required, or its default): DRF's
    BooleanField reads an absent HTML checkbox as false, which let a form body with no
    mfa_required at all switch the requirement off (found by schemathesis, tests/schema)."""

    default_empty_html = empty

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError(
                "Must be true or false (a JSON boolean).", code="invalid"
            )
        return data


class UserSerializer(serializers.ModelSerializer[User]):
    class Meta:
        model = User
        fields = (
            "id", "email", "email_verified", "name", "is_active", "is_staff", "staff_role",
            "date_joined", "mfa_required", "mfa_required_by",
        )  # fmt: skip


class FactorSerializer(serializers.Serializer[Any]):
    """One second factor as apps.mfa.selectors.factors_of describes it: never a secret, a
    public key or a code hash."""

    kind = serializers.ChoiceField(choices=FactorKind.choices)
    id = serializers.UUIDField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    passkey = serializers.BooleanField(
        help_text="WebAuthn: backup-eligible, may be synced between devices."
    )
    cloned = serializers.BooleanField(
        help_text="WebAuthn: its signature counter went backwards (a cloned authenticator); "
        "refused as a second factor."
    )
    remaining = serializers.IntegerField(
        allow_null=True, help_text="Recovery codes: how many are left unused; null otherwise."
    )


class MfaOrganizationSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    name = serializers.CharField()


class MfaRequiredBySerializer(serializers.Serializer[Any]):
    person = serializers.BooleanField(help_text="Their own flag (User.mfa_required).")
    set_by = serializers.CharField(
        help_text='Who set their own flag: "operator", "threat", or "" when it is off.'
    )
    organizations = MfaOrganizationSerializer(
        many=True, help_text="Their organizations whose policy requires a second factor."
    )
    everyone = serializers.BooleanField(help_text="IDP_MFA_REQUIRED: required of everyone.")


class FactorListSerializer(serializers.Serializer[Any]):
    results = FactorSerializer(many=True)
    mfa_required = serializers.BooleanField(
        help_text="A second factor is required of them at sign-in, for any of the reasons in "
        "required_by (without one, they enrol one at their next sign-in)."
    )
    required_by = MfaRequiredBySerializer()


class FactorResetSerializer(serializers.Serializer[Any]):
    end_sessions = StrictBoolean(
        default=True,
        help_text="Also end every live session of theirs (default true: a reset usually "
        "answers a lost or stolen device, which may hold a signed-in browser).",
    )


class FactorsResetSerializer(serializers.Serializer[Any]):
    removed = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="How many went, by kind: totp, webauthn, recovery_codes (sets).",
    )
    sessions_ended = serializers.IntegerField()


class MfaRequiredSerializer(serializers.Serializer[Any]):
    mfa_required = StrictBoolean(help_text="true: require a second factor; false: stop.")


class MfaRequiredSetSerializer(serializers.Serializer[Any]):
    user = UserSerializer()
    changed = serializers.BooleanField(help_text="False when it was so already.")


class MailSentSerializer(serializers.Serializer[dict[str, Any]]):
    sent = serializers.BooleanField(help_text="Whether a message was queued for delivery.")
    detail = serializers.CharField(help_text="What happened, for a person to read.")


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


class AuditEventSerializer(serializers.Serializer[Any]):
    """An apps.audit.store.AuditEvent: the record the exports write, field for field."""

    id = serializers.UUIDField()
    occurred_at = serializers.DateTimeField()
    event_type = serializers.CharField(help_text="A type of the catalog (apps.core.events).")
    user_id = serializers.CharField(help_text="The person concerned; anon:… once erased.")
    actor_id = serializers.CharField(help_text="Who acted, when not the person themselves.")
    session_id = serializers.CharField()
    resource_type = serializers.CharField()
    resource_id = serializers.CharField()
    action = serializers.CharField()
    success = serializers.BooleanField()
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    ip_address = serializers.CharField(allow_null=True)
    user_agent = serializers.CharField()
    request_id = serializers.CharField()
    duration_ms = serializers.FloatField(allow_null=True)
    metadata = serializers.DictField()
    severity = serializers.CharField()
    compliance_tags = serializers.ListField(child=serializers.CharField())


class AuditEventPageSerializer(serializers.Serializer[Any]):
    results = AuditEventSerializer(many=True)
    next = serializers.CharField(
        allow_null=True, help_text="Pass as `after` for older events; null on the last page."
    )


class ErasedSerializer(serializers.Serializer[Any]):
    pseudonym = serializers.CharField(help_text="What the person's events now carry.")


class SessionsEndedSerializer(serializers.Serializer[Any]):
    ended = serializers.IntegerField(help_text="How many live sessions this request ended.")


class OfflineGrantSerializer(serializers.ModelSerializer[OfflineGrant]):
    """Offline access a person gave a client (OIDC Core §11)."""

    user_email = serializers.EmailField(source="user.email")
    client_id = serializers.CharField(source="client.client_id")
    client_name = serializers.CharField(source="client.name")
    scopes = serializers.SerializerMethodField()
    live = serializers.SerializerMethodField()
    session = serializers.UUIDField(
        source="session_id", allow_null=True, help_text="The sign-in it was given in."
    )

    class Meta:
        model = OfflineGrant
        fields = (
            "id", "user", "user_email", "client_id", "client_name", "scopes", "live", "session",
            "created_at", "last_used_at", "expires_at", "revoked_at", "revoke_reason",
        )  # fmt: skip

    def get_scopes(self, grant: OfflineGrant) -> list[str]:
        return grant.scope.split()

    def get_live(self, grant: OfflineGrant) -> bool:
        return grant.is_live


class OfflineGrantsRevokedSerializer(serializers.Serializer[Any]):
    revoked = serializers.IntegerField(help_text="How many offline grants this request ended.")


class EverythingRevokedSerializer(serializers.Serializer[Any]):
    sessions_ended = serializers.IntegerField()
    offline_grants_revoked = serializers.IntegerField()


class LockoutSerializer(serializers.Serializer[Any]):
    """A failed-attempt counter (apps.ratelimit.services.Lockout)."""

    kind = serializers.ChoiceField(
        choices=KINDS,
        help_text="login: an email address; client: a client id; mfa: an account id (its "
        "second factor).",
    )
    identifier = serializers.CharField(
        help_text="Normalized (an email address case-folded); longer than 128 characters: "
        "sha256-<hex> of it. What /lockouts/unlock takes back."
    )
    ip = serializers.CharField(
        help_text="The counter of attempts from this address (IPv6: its /64); empty for the "
        "identifier's own counter."
    )
    failures = serializers.IntegerField(help_text="Failed attempts since the last lockout.")
    lockouts = serializers.IntegerField(help_text="Lockouts so far (the wait grows with them).")
    locked = serializers.BooleanField()
    permanent = serializers.BooleanField(help_text="Locked until an operator unlocks it.")
    locked_for = serializers.IntegerField(
        help_text="Seconds the lock has left; -1 permanent; 0 not locked."
    )


class LockoutListSerializer(serializers.Serializer[Any]):
    results = LockoutSerializer(many=True)
    truncated = serializers.BooleanField(
        help_text="More were locked than `limit`: these are the first found, not all."
    )
    limit = serializers.IntegerField()


class LockoutUnlockSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=KINDS)
    identifier = serializers.CharField(
        max_length=254,
        help_text="An email address (kind login), a client id (kind client) or an account id "
        "(kind mfa).",
    )


class LockoutsClearedSerializer(serializers.Serializer[Any]):
    cleared = serializers.IntegerField(help_text="How many failed-attempt counters were cleared.")


class BlockSerializer(serializers.Serializer[Any]):
    """A rate-limit key refusing requests now (apps.ratelimit.services.Block)."""

    rule = serializers.CharField(help_text="The rule's name, e.g. login.account, token.ip.")
    kind = serializers.ChoiceField(
        choices=KEY_KINDS_SHOWN,
        help_text="What `value` is: an IP address (IPv6: its network), an email address as "
        "typed, a client id; empty for an endpoint's or the global rule.",
    )
    value = serializers.CharField(
        help_text="Normalized (an email case-folded; longer than 128 characters: sha256-<hex> "
        "of it). What /ratelimit/blocks/clear takes back."
    )
    retry_after = serializers.IntegerField(help_text="Seconds until it lets a request through.")
    violations = serializers.IntegerField(
        help_text="Refusals counted (less one per period since the last): backoff grows with it."
    )
    penalty = serializers.BooleanField(
        help_text="Refused by its backoff penalty, not only because its quota is spent."
    )


class BlockListSerializer(serializers.Serializer[Any]):
    results = BlockSerializer(many=True)
    truncated = serializers.BooleanField(
        help_text="More keys refused than `limit`: these are the first found, not all."
    )
    limit = serializers.IntegerField()


class BlockClearSerializer(serializers.Serializer[Any]):
    rule = serializers.CharField(max_length=64, help_text="A configured rule's name.")
    value = serializers.CharField(
        max_length=254,
        required=False,
        default="",
        allow_blank=True,
        help_text="An IP address or network, an email address or a client id, by the rule's "
        "kind; empty (or absent) for an endpoint's or the global rule.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            block_key(rule=attrs["rule"], value=attrs["value"])
        except BadBlockKey as error:
            raise serializers.ValidationError({error.field: [error.message]}) from None
        return attrs


class BlockClearedSerializer(serializers.Serializer[Any]):
    cleared = serializers.BooleanField(help_text="Whether the key existed (false: nothing to do).")
