"""Upstream identity providers and the identities people link to their accounts.

A provider is data (issue 17): administrators create, edit, enable and disable them in the
console, the admin API or `manage.py federation_provider`; apps.federation.providers is the only
writer. Its client secret (or, for private_key_jwt, its private key in PEM) is sealed under the
key-encryption key (apps.core.sealing) with associated data naming the row, like TOTP secrets.

A person is known to a provider by (provider, upstream subject), never by e-mail alone
(OIDC Core §5.7: only `iss` with `sub` is stable and unique) — the e-mail is
kept for the person's and operators' pages.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class ProviderKind(models.TextChoices):
    OIDC = "oidc", "OpenID Connect"
    GITHUB = "github", "GitHub"
    GOOGLE = "google", "Google"


class ClientAuthMethod(models.TextChoices):
    """How Tessera authenticates to the upstream token endpoint (OIDC Core §9)."""

    CLIENT_SECRET_BASIC = "client_secret_basic", "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post", "client_secret_post"
    PRIVATE_KEY_JWT = "private_key_jwt", "private_key_jwt"


class Provider(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # In the callback's path (/login/federated/<slug>/callback): one redirect URI per
    # provider, so a response is only ever taken for the provider it was sent to
    # (RFC 9700 §4.4.2: per-issuer redirect URIs against mix-up).
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)  # on the sign-in button: "Sign in with <name>"
    kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    # OIDC: the issuer its discovery document is read from (OIDC Discovery 1.0 §4) and the
    # `iss` every ID token must carry. Google: https://accounts.google.com. GitHub: empty.
    issuer = models.URLField(max_length=500, blank=True)
    client_id = models.CharField(max_length=255)
    client_auth_method = models.CharField(
        max_length=32,
        choices=ClientAuthMethod.choices,
        default=ClientAuthMethod.CLIENT_SECRET_BASIC,
    )
    # 96-bit nonce + AES-256-GCM ciphertext of the client secret, or of the PEM private key
    # for private_key_jwt (apps.core.sealing; AAD names this row).
    sealed_secret = models.BinaryField()
    kek_id = models.CharField(max_length=8)
    scopes = models.CharField(max_length=500, default="openid email profile")
    # Added to the authorization request (e.g. {"prompt": "select_account"}); the protocol's
    # own parameters (state, nonce, code_challenge, redirect_uri …) cannot be overridden.
    extra_params = models.JSONField(default=dict, blank=True)
    # OIDC: also read the userinfo endpoint (OIDC Core §5.3) and merge what it says.
    use_userinfo = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # Create an account at a first sign-in whose verified e-mail has none (just-in-time
    # provisioning). Off by default: otherwise anyone with an account upstream has one here.
    jit_provisioning = models.BooleanField(default=False)
    # Google's `hd` (hosted domain): when set, only ID tokens whose hd is one of these are
    # taken (Google's "Authenticate with a backend server": check hd, not the e-mail).
    hosted_domains = models.JSONField(default=list, blank=True)
    # E-mail domains whose `login_hint` on an authorization request sends the person straight
    # to this provider (home-realm discovery), as `idp_hint=<slug>` does.
    login_domains = models.JSONField(default=list, blank=True)
    # Organization memberships from upstream claims, applied at each sign-in
    # (apps.federation.mapping): [{"claim", "value", "organization", "role"}].
    mapping_rules = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class FederatedIdentity(models.Model):
    """An upstream identity linked to an account: who `subject` is at `provider`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="federated_identities"
    )
    # PROTECT: a provider with linked people is disabled, not deleted.
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="identities")
    subject = models.CharField(max_length=255)  # OIDC Core §2: at most 255 ASCII characters
    # What the provider said at the last sign-in (shown on pages; never used to find anyone).
    email = models.EmailField(blank=True)
    email_verified = models.BooleanField(default=False)
    display = models.CharField(max_length=200, blank=True)  # GitHub login, upstream name
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("created_at",)
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(
                fields=["provider", "subject"], name="federation_identity_subject_uniq"
            ),
        ]
        indexes = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.Index(fields=["user"], name="federation_identity_user_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider_id}:{self.subject}"
