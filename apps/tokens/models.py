from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from oauth2_provider.models import (
    AbstractAccessToken,
    AbstractApplication,
    AbstractGrant,
    AbstractIDToken,
    AbstractRefreshToken,
)

from apps.core import revocation
from apps.keys.models import SigningAlg as _SigningAlg


class Client(AbstractApplication):
    """An OAuth 2.0 / OIDC relying party (replaces django-oauth-toolkit's Application).

    DOT allows one grant type per application; a client here holds a set (`grant_types`,
    space-separated, OIDC Dynamic Client Registration §2 spelling) and `authorization_grant_type`
    keeps the first one for DOT's own code paths.
    """

    SigningAlg = _SigningAlg  # the algorithms apps.keys keeps a key chain for

    grant_types = models.CharField(max_length=200, default="authorization_code refresh_token")
    # RFC 9700 §2.1.1: PKCE S256 on every authorization request. Off only for a confidential
    # OpenID Connect client that binds its codes with `nonce` instead (a library without
    # PKCE); a code_challenge it does send is still enforced.
    require_pkce = models.BooleanField(default=True)
    # OIDC Dynamic Client Registration 1.0 §2: per-client ID-token algorithm.
    id_token_signed_response_alg = models.CharField(
        max_length=8, choices=SigningAlg.choices, default=SigningAlg.RS256
    )
    # Back-Channel Logout 1.0 §2.2: where the worker POSTs a Logout Token; blank for none.
    backchannel_logout_uri = models.CharField(max_length=2000, blank=True)
    backchannel_logout_session_required = models.BooleanField(default=True)
    # Front-Channel Logout 1.0 §2: shown in an iframe on the signed-out page; blank for none.
    frontchannel_logout_uri = models.CharField(max_length=2000, blank=True)
    # §3: when set, the iframe URL carries `iss` and `sid`.
    frontchannel_logout_session_required = models.BooleanField(default=True)
    # Set by an operator: the client is refused everywhere (as if unknown) until enabled
    # again; its refresh tokens are kept, its access tokens were revoked (clients_admin).
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Every authorization for this client needs the MFA level (apps/sessions/levels.py):
    # a session below it steps up first (apps/tokens/authorize.py check_acr).
    require_mfa = models.BooleanField(default=False)
    # Every authorization request for this client must be pushed (RFC 9126 §6,
    # require_pushed_authorization_requests): apps/tokens/authorize.py check_par_required.
    require_par = models.BooleanField(default=False)
    # OWASP ASVS 10.4.11, RFC 7591 §2 `scope`: the scopes this client may be granted, space-
    # separated; a defined scope not on it is refused with invalid_scope (apps/tokens/scopes.py).
    # Empty: none. client_create gives a new client what its registration implies
    # (scopes.default_allowed_scopes); migration 0012 gave each client that existed before what
    # it could be granted then, so no deployed relying party lost a scope.
    allowed_scopes = models.TextField(blank=True, default="", db_default="")
    # OWASP ASVS 9.2.4, RFC 8707 §2: the resources (absolute URIs, matched exactly) this
    # client may name as `resource`, space-separated, besides the default audience
    # (ACCESS_TOKEN_AUDIENCE), which it always may. Empty: the default audience only (a new
    # client's default); "*" alone: any absolute URI, as before 0012 (what that migration
    # gave existing clients, for an operator to narrow).
    allowed_resources = models.TextField(blank=True, default="", db_default="")

    class AuthMethod(models.TextChoices):
        """How a confidential client authenticates at the token, introspection, revocation
        and PAR endpoints (RFC 7591 §2 token_endpoint_auth_method)."""

        SECRET = "", "client secret (HTTP Basic or in the body)"  # RFC 6749 §2.3.1
        TLS = "tls_client_auth", "mutual TLS, PKI certificate"  # RFC 8705 §2.1
        SELF_SIGNED = "self_signed_tls_client_auth", "mutual TLS, self-signed certificate"  # §2.2

    token_endpoint_auth_method = models.CharField(
        max_length=40, choices=AuthMethod.choices, default=AuthMethod.SECRET, blank=True
    )
    # RFC 8705 §2.1.2: exactly one of these names the certificate a tls_client_auth client
    # presents (its subject DN, RFC 4514 string, or one subjectAltName entry).
    tls_client_auth_subject_dn = models.CharField(max_length=1000, blank=True)
    tls_client_auth_san_dns = models.CharField(max_length=255, blank=True)
    tls_client_auth_san_uri = models.CharField(max_length=2000, blank=True)
    tls_client_auth_san_ip = models.CharField(max_length=45, blank=True)
    tls_client_auth_san_email = models.CharField(max_length=254, blank=True)
    # RFC 7591 §2 jwks: for self_signed_tls_client_auth (RFC 8705 §2.2.2), the keys whose
    # x5c certificates the client may present.
    jwks = models.JSONField(null=True, blank=True)
    # RFC 8705 §3.4 / RFC 9449 §5.2 client metadata: every access token of this client must be
    # bound to its certificate / to a DPoP key; a request without the proof is refused.
    tls_client_certificate_bound_access_tokens = models.BooleanField(default=False)
    dpop_bound_access_tokens = models.BooleanField(default=False)

    class Meta(AbstractApplication.Meta):
        db_table = "tokens_client"
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"

    @property
    def grant_type_set(self) -> frozenset[str]:
        return frozenset(self.grant_types.split())

    @property
    def allowed_scope_set(self) -> frozenset[str]:
        return frozenset(self.allowed_scopes.split())

    @property
    def allowed_resource_list(self) -> list[str]:
        return self.allowed_resources.split()

    def allows_grant_type(self, *grant_types: Any) -> bool:
        """DOT asks with its own constants ("authorization-code"); we store wire names."""
        wanted = {DOT_GRANT_NAMES.get(grant, grant) for grant in grant_types}
        return not self.grant_type_set.isdisjoint(wanted)


# DOT's grant constants and the OAuth wire names a Client stores.
DOT_GRANT_NAMES = {
    AbstractApplication.GRANT_AUTHORIZATION_CODE: "authorization_code",
    AbstractApplication.GRANT_CLIENT_CREDENTIALS: "client_credentials",
}


def _session_link() -> models.ForeignKey[Any]:
    """The login session a token was issued under (its `sid`); kept when the session row goes."""
    return models.ForeignKey(
        "login_sessions.LoginSession",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )


class Grant(AbstractGrant):
    """An authorization code. Kept after use (used_at) so that a replay is recognised and
    the tokens issued from it are revoked (RFC 6749 §4.1.2)."""

    session = models.ForeignKey(
        "login_sessions.LoginSession", on_delete=models.CASCADE, null=True, related_name="+"
    )
    token_family = models.UUIDField(default=uuid.uuid4)
    used_at = models.DateTimeField(null=True, blank=True)
    # RFC 9449 §10: the authorization request's dpop_jkt; the code is redeemed only with a
    # DPoP proof of that key. Blank: unbound.
    dpop_jkt = models.CharField(max_length=64, blank=True)

    class Meta(AbstractGrant.Meta):
        db_table = "tokens_grant"
        swappable = "OAUTH2_PROVIDER_GRANT_MODEL"


class AccessToken(AbstractAccessToken):
    """The record of an issued RFC 9068 JWT: its jti (for the revocation list), the login
    session it belongs to, and the authorization (token family) it came from."""

    jti = models.CharField(max_length=64, unique=True)
    session = _session_link()
    token_family = models.UUIDField(null=True, blank=True, db_index=True)

    class Meta(AbstractAccessToken.Meta):
        db_table = "tokens_access_token"
        swappable = "OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL"

    def revoke(self) -> None:
        """DOT deletes the row (its admin's revoke action, a revoked refresh token's access
        token): the JWT lives on without the revocation list, so list its jti first."""
        remaining = int((self.expires - timezone.now()).total_seconds())
        revocation.revoke_jti(self.jti, expires_in=remaining)  # an expired one is not listed
        super().revoke()


class RefreshToken(AbstractRefreshToken):
    """Opaque, rotated on every use; the whole chain dies at family_expires_at (absolute) or
    when its login session ends, unless it belongs to an offline grant (`offline`), which
    outlives the session and ends by its own lifetimes or by revocation."""

    session = _session_link()
    family_expires_at = models.DateTimeField()
    # OIDC Core §11: the chain is the OfflineGrant whose id is its token_family.
    offline = models.BooleanField(default=False)
    # What the chain is bound to (apps/tokens/binding.py): a public client's refresh token is
    # redeemed only with a proof of the same DPoP key (RFC 9449 §5) or the same client
    # certificate (RFC 8705 §4). Blank: unbound.
    cnf_jkt = models.CharField(max_length=64, blank=True)
    cnf_x5t_s256 = models.CharField(max_length=64, blank=True)

    class Meta(AbstractRefreshToken.Meta):
        db_table = "tokens_refresh_token"
        swappable = "OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL"


def offline_idle_since(now: datetime) -> datetime:
    """An offline grant last used at or before this moment has ended, unused too long."""
    return now - timedelta(seconds=settings.OFFLINE_ACCESS_IDLE_TIMEOUT)


class OfflineGrantQuerySet(models.QuerySet["OfflineGrant"]):
    def live(self) -> OfflineGrantQuerySet:
        """Not revoked, within their lifetime, used within their idle timeout."""
        now = timezone.now()
        return self.filter(
            revoked_at__isnull=True, expires_at__gt=now, last_used_at__gt=offline_idle_since(now)
        )


class OfflineGrant(models.Model):
    """Offline access a person gave a client (OIDC Core §11, scope offline_access): the
    refresh-token chain whose token_family is this id, which outlives the login session it
    began in. It ends at expires_at, after OFFLINE_ACCESS_IDLE_TIMEOUT unused, or when
    revoked (one by one or all of a person's, by an operator or the person's account
    changes); the row stays, revoked, for the record."""

    id = models.UUIDField(primary_key=True, editable=False)  # the chain's token_family
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="offline_grants"
    )
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="+")
    # The sign-in it was given in; the grant does not end with it.
    session = _session_link()
    scope = models.TextField()
    created_at = models.DateTimeField()
    last_used_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=64, blank=True)

    objects = OfflineGrantQuerySet.as_manager()

    class Meta:
        db_table = "tokens_offline_grant"
        indexes = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.Index(
                fields=["user", "-created_at"],
                condition=models.Q(revoked_at__isnull=True),
                name="offline_grant_user_live_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"offline grant {self.id} of {self.user_id} to {self.client_id}"

    @property
    def is_live(self) -> bool:
        now = timezone.now()
        return (
            self.revoked_at is None
            and self.expires_at > now
            and self.last_used_at > offline_idle_since(now)
        )


class IDToken(AbstractIDToken):
    session = _session_link()

    class Meta(AbstractIDToken.Meta):
        db_table = "tokens_id_token"
        swappable = "OAUTH2_PROVIDER_ID_TOKEN_MODEL"


class Consent(models.Model):
    """What a user allowed a client, remembered so they are not asked again."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    client = models.ForeignKey(Client, on_delete=models.CASCADE)
    scopes = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(fields=["user", "client"], name="consent_user_client_uniq"),
        ]

    def __str__(self) -> str:
        return f"consent of {self.user_id} for {self.client_id}"


class BackchannelLogoutDelivery(models.Model):
    """One Logout Token owed to one client for one ended session (Back-Channel Logout 1.0
    §2.7), and how its delivery went, so that operators can see the relying parties that
    were not told."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (queued or between retries)"
        DELIVERED = "delivered", "Delivered (the client answered 200 or 204)"
        FAILED = "failed", "Failed (every attempt was refused or went unanswered)"

    session = models.ForeignKey(
        "login_sessions.LoginSession", on_delete=models.CASCADE, related_name="+"
    )
    client_id = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "tokens_backchannel_logout_delivery"
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(
                fields=["session", "client_id"], name="backchannel_delivery_session_client_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"logout of {self.session_id} to {self.client_id}: {self.status}"
