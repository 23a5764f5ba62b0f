"""django-oauth-toolkit's validator, extended, for the one flow that runs through oauthlib:
the authorization endpoint. The token, introspection and revocation endpoints do not (their
client authentication and grant handlers are apps/tokens/grants)."""

from __future__ import annotations

from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors

from apps.tokens import clients
from apps.tokens.models import Client
from apps.tokens.scopes import ScopeRefused, granted_scopes

# oauthlib's Request, carrying what the authorize flow adds to it (client, user,
# login_session): dynamic by oauthlib's design.
OAuthRequest = Any


class TesseraValidator(OAuth2Validator):
    # --- authorization (the token endpoint is apps/tokens/grants, without oauthlib) ---------

    def is_pkce_required(self, client_id: str, request: OAuthRequest) -> bool:
        # RFC 9700 §2.1.1: always, but for a confidential client registered to use nonce
        # instead (the authorize checks then demand the nonce).
        client = request.client or clients.client_by_id(client_id)
        return client is None or bool(client.require_pkce)

    def validate_scopes(
        self,
        client_id: str,
        scopes: list[str],
        client: Any,
        request: OAuthRequest,
        *a: Any,
        **k: Any,
    ) -> bool:
        # OIDC Core §3.1.2.1: scope values the server does not understand are ignored, and
        # one the rules keep from this client is dropped the same way (RFC 6749 §3.3: the
        # token response's `scope` says what was granted); one not on its allowed_scopes
        # (ASVS 10.4.11), or nothing left, is invalid_scope (apps/tokens/scopes.py).
        try:
            request.scopes = granted_scopes(scopes, client=client)
        except ScopeRefused as refused:
            raise errors.InvalidScopeError(description=str(refused), request=request) from None
        return True

    def _load_application(self, client_id: str, request: OAuthRequest) -> Client | None:
        client = clients.client_by_id(client_id)
        if client is None or not client.is_usable(request):
            return None
        request.client = client
        return client

    def get_default_redirect_uri(
        self, client_id: str, request: OAuthRequest, *args: Any, **kw: Any
    ) -> None:
        # OIDC Core §3.1.2.1: redirect_uri is required; no falling back to a registered one.
        return None

    # The authorize view decides login, consent and id_token_hint with the browser session,
    # which oauthlib cannot see (OIDC Core §3.1.2.1 prompt=none, §3.1.2.3).
    def validate_silent_login(self, request: OAuthRequest) -> bool:
        return True

    def validate_silent_authorization(self, request: OAuthRequest) -> bool:
        return True

    def validate_user_match(
        self, id_token_hint: str | None, scopes: Any, claims: Any, request: OAuthRequest
    ) -> bool:
        return True
