from __future__ import annotations

from typing import Any

from django.db import models
from oauth2_provider.models import AbstractApplication


class Client(AbstractApplication):
    """An OAuth 2.0 / OIDC relying party (replaces django-oauth-toolkit's Application).

    DOT allows one grant type per application; a client here holds a set (`grant_types`,
    space-separated, OIDC Dynamic Client Registration §2 spelling) and `authorization_grant_type`
    keeps the first one for DOT's own code paths.
    """

    class SigningAlg(models.TextChoices):
        RS256 = "RS256", "RS256 (RSA PKCS#1 v1.5 with SHA-256, the OIDC default)"
        ES256 = "ES256", "ES256 (ECDSA P-256 with SHA-256)"
        EDDSA = "EdDSA", "EdDSA (Ed25519)"

    grant_types = models.CharField(max_length=200, default="authorization_code refresh_token")
    # OIDC Dynamic Client Registration 1.0 §2: per-client ID-token algorithm.
    id_token_signed_response_alg = models.CharField(
        max_length=8, choices=SigningAlg.choices, default=SigningAlg.RS256
    )

    class Meta(AbstractApplication.Meta):
        db_table = "tokens_client"
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"

    @property
    def grant_type_set(self) -> frozenset[str]:
        return frozenset(self.grant_types.split())

    def allows_grant_type(self, *grant_types: Any) -> bool:
        """DOT asks with its own constants ("authorization-code"); we store wire names."""
        wanted = {_DOT_GRANT_NAMES.get(grant, grant) for grant in grant_types}
        return not self.grant_type_set.isdisjoint(wanted)


_DOT_GRANT_NAMES = {
    AbstractApplication.GRANT_AUTHORIZATION_CODE: "authorization_code",
    AbstractApplication.GRANT_CLIENT_CREDENTIALS: "client_credentials",
}
