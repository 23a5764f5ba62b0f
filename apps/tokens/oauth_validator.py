"""django-oauth-toolkit's validator, extended: every storage call and policy decision of the
OAuth 2.0 / OIDC flows goes through here (the seam DOT designs for)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors

from apps.core.events import EventType, emit
from apps.sessions.services import session_client_record, session_is_live
from apps.tokens import clients, services
from apps.tokens.claims import access_token_claims, profile_claims, sign
from apps.tokens.models import AccessToken, Client, Grant, IDToken, RefreshToken
from apps.tokens.scopes import OFFLINE_ACCESS, ScopeRefused, granted_scopes

# oauthlib's Request, carrying what the flows add to it (client, user, login_session,
# token_family, access_token_jti, id_token_instance): dynamic by oauthlib's design.
OAuthRequest = Any


class TesseraValidator(OAuth2Validator):
    # --- grants ---------------------------------------------------------------------------

    def validate_grant_type(
        self,
        client_id: str,
        grant_type: str,
        client: Any,
        request: OAuthRequest,
        *args: Any,
        **kw: Any,
    ) -> bool:
        # A client may use exactly the grants it was registered with (DOT would let every
        # authorization-code client refresh); password and implicit are never registrable.
        if grant_type not in client.grant_type_set:
            raise errors.UnauthorizedClientError(
                description=f"This client is not registered for the {grant_type} grant.",
                request=request,
            )
        return True

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
        # one this client may not have is dropped the same way (RFC 6749 §3.3: the token
        # response's `scope` says what was granted); nothing left is invalid_scope.
        try:
            request.scopes = granted_scopes(scopes, client=client)
        except ScopeRefused as refused:
            raise errors.InvalidScopeError(description=str(refused), request=request) from None
        return True

    def _create_authorization_code(
        self, request: OAuthRequest, code: dict[str, str], expires: Any = None
    ) -> Grant:
        # RFC 9700 §2.1.1: S256 only; the authorize view refuses anything else before this.
        grant: Grant = Grant.objects.create(
            application=request.client,
            user=request.user,
            session=request.login_session,
            token_family=uuid.uuid4(),
            code=code["code"],
            expires=timezone.now() + timedelta(seconds=settings.AUTHORIZATION_CODE_LIFETIME),
            redirect_uri=request.redirect_uri,
            scope=" ".join(request.scopes),
            code_challenge=request.code_challenge or "",
            code_challenge_method=request.code_challenge_method or "",
            nonce=request.nonce or "",
            claims="{}",
        )
        return grant

    def validate_code(
        self, client_id: str, code: str, client: Any, request: OAuthRequest, *args: Any, **kw: Any
    ) -> bool:
        grant = (
            Grant.objects.filter(code=code, application=client).select_related("session").first()
        )
        if grant is None or grant.is_expired():
            raise _invalid_grant(request, "The authorization code is unknown or has expired.")
        # RFC 6749 §4.1.2 / RFC 9700 §4.14: a code is used once; claim it atomically so two
        # concurrent exchanges cannot both succeed, and on reuse revoke what it produced.
        claimed = Grant.objects.filter(pk=grant.pk, used_at__isnull=True).update(
            used_at=timezone.now()
        )
        if not claimed:
            services.token_family_revoke(family=grant.token_family, reason="code_reuse")
            raise _invalid_grant(
                request,
                "The authorization code was already used; the tokens issued from it are revoked.",
            )
        if request.redirect_uri != grant.redirect_uri:
            # RFC 6749 §4.1.3, §5.2: the same redirect URI as in the authorization request,
            # or invalid_grant (and the code stays spent).
            raise _invalid_grant(
                request, "redirect_uri differs from the one of the authorization request."
            )
        if grant.session is None or not session_is_live(grant.session):
            raise _invalid_grant(request, "The sign-in this code was issued in has ended.")
        request.scopes = grant.scope.split()
        request.user = grant.user
        request.nonce = grant.nonce or None
        request.login_session = grant.session
        request.token_family = grant.token_family
        # OIDC Core §11: the scope was granted only as the authorize checks allowed it.
        request.offline = OFFLINE_ACCESS in request.scopes
        return True

    def authenticate_client(self, request: OAuthRequest, *args: Any, **kw: Any) -> bool:
        credentials = clients.presented(
            request.headers.get("HTTP_AUTHORIZATION", ""), request.client_id, request.client_secret
        )
        client = clients.authenticate_presented(credentials)
        if client is None:
            _client_auth_failed(request, credentials)
        request.client = client
        return True

    def authenticate_client_id(
        self, client_id: str, request: OAuthRequest, *args: Any, **kw: Any
    ) -> bool:
        # RFC 6749 §3.2.1: a public client names itself; a confidential one must authenticate.
        client = self._load_application(client_id, request)
        if client is None or client.client_type == Client.CLIENT_CONFIDENTIAL:
            _client_auth_failed(request, clients.Presented(client_id or "", None, "none"))
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

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: OAuthRequest, *args: Any, **kw: Any
    ) -> None:
        pass  # kept, marked used by validate_code, so that a replay can be recognised

    def validate_refresh_token(
        self, refresh_token: str, client: Any, request: OAuthRequest, *args: Any, **kw: Any
    ) -> bool:
        # RFC 9700 §4.14.2: a rotated (or revoked) token presented again means it leaked;
        # revoke the whole grant, access tokens included, before DOT deletes their rows.
        spent = services.refresh_token_spent(refresh_token)
        if spent is not None:
            if not services.token_family_goes_on(spent.token_family):
                raise _invalid_grant(request, "The refresh token was revoked; sign in again.")
            services.token_family_revoke(family=spent.token_family, reason="refresh_reuse")
            raise _invalid_grant(
                request,
                "The refresh token was already used; every token of its grant is now revoked. "
                "Sign in again.",
            )
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kw):
            raise _invalid_grant(request, "The refresh token is unknown, revoked or expired.")
        token: RefreshToken = request.refresh_token_instance
        refusal = services.refresh_token_refusal(token)
        if refusal:
            raise _invalid_grant(request, refusal)
        request.login_session = token.session
        request.token_family = token.token_family
        request.offline = token.offline
        return True

    def is_within_original_scope(
        self,
        request_scopes: list[str],
        refresh_token: str,
        request: OAuthRequest,
        *a: Any,
        **k: Any,
    ) -> bool:
        # RFC 6749 §6: a refresh never widens the grant. What it asks beyond the grant (say a
        # scope the authorization request had dropped, which libraries ask again) is dropped
        # the same way (OIDC Core §3.1.2.1); nothing left is invalid_scope.
        original = self.get_original_scopes(refresh_token, request)
        granted = set(original.split() if isinstance(original, str) else original)
        kept = [scope for scope in dict.fromkeys(request_scopes) if scope in granted]
        if not kept:
            raise errors.InvalidScopeError(
                description="None of the scopes asked for was granted to this refresh token.",
                request=request,
            )
        request.scopes = kept
        return True

    # --- tokens ---------------------------------------------------------------------------

    def save_bearer_token(
        self, token: dict[str, Any], request: OAuthRequest, *args: Any, **kw: Any
    ) -> None:
        if "refresh_token" not in request.client.grant_type_set:
            token.pop("refresh_token", None)  # only clients registered for refresh get one
        with transaction.atomic():
            super().save_bearer_token(token, request, *args, **kw)
            session = getattr(request, "login_session", None)
            # Who to tell when the session ends (logout propagation): recorded when the code
            # is exchanged; a refresh keeps the session and client of its code's exchange.
            if session is not None and request.grant_type == "authorization_code":
                session_client_record(session=session, client_id=request.client.client_id)
            if getattr(request, "offline", False) and request.grant_type == "refresh_token":
                services.offline_grant_used(family=request.token_family)
            self._emit_issued(token, request)

    def _emit_issued(self, token: dict[str, Any], request: OAuthRequest) -> None:
        refreshed = request.grant_type == "refresh_token"
        session = getattr(request, "login_session", None)
        emit(
            EventType.TOKEN_REFRESHED if refreshed else EventType.TOKEN_ISSUED,
            user_id=request.user.pk if request.user else None,
            session_id=session.pk if session else None,
            resource_type="client",
            resource_id=request.client.client_id,
            metadata={"grant_type": request.grant_type, "scope": token.get("scope", "")},
        )

    def _create_access_token(
        self,
        expires: Any,
        request: OAuthRequest,
        token: dict[str, Any],
        source_refresh_token: Any = None,
    ) -> AccessToken:
        id_token = getattr(request, "id_token_instance", None)
        access_token = AccessToken(
            user=request.user,
            scope=token["scope"],
            expires=expires,
            id_token=id_token,
            application=request.client,
            source_refresh_token=source_refresh_token,
            jti=request.access_token_jti,
            session=getattr(request, "login_session", None),
            token_family=getattr(request, "token_family", None),
        )
        self._set_token_value(access_token, token["access_token"])
        access_token.save()
        return access_token

    def _create_refresh_token(
        self,
        request: OAuthRequest,
        refresh_token_code: str,
        access_token: Any,
        previous_refresh_token: Any,
    ) -> RefreshToken:
        session = getattr(request, "login_session", None)
        offline = getattr(request, "offline", False)
        if previous_refresh_token:
            family_expires_at = previous_refresh_token.family_expires_at
        elif offline:  # OIDC Core §11: the first token of an offline grant
            grant = services.offline_grant_create(
                family=request.token_family,
                user=request.user,
                client=request.client,
                session=session,
                scope=" ".join(request.scopes),
            )
            family_expires_at = grant.expires_at
        else:
            family_expires_at = timezone.now() + timedelta(seconds=settings.REFRESH_TOKEN_LIFETIME)
        refresh_token = RefreshToken(
            user=request.user,
            application=request.client,
            access_token=access_token,
            token_family=request.token_family,
            session=session,
            family_expires_at=family_expires_at,
            offline=offline,
        )
        self._set_token_value(refresh_token, refresh_token_code)
        refresh_token.save()
        return refresh_token

    def revoke_token(
        self, token: str, token_type_hint: str | None, request: OAuthRequest, *args: Any, **kw: Any
    ) -> None:
        services.token_revoke(token=token, client=request.client)

    # --- OpenID Connect -------------------------------------------------------------------

    # The claims are released by scope in profile_claims, not by DOT's oidc_claim_scope.
    oidc_claim_scope = None

    def get_additional_claims(self, request: OAuthRequest) -> dict[str, Any]:
        return profile_claims(request.user, list(request.scopes))

    def finalize_id_token(
        self,
        id_token: dict[str, Any],
        token: dict[str, Any],
        token_handler: Any,
        request: OAuthRequest,
    ) -> str:
        """OIDC Core §2: signed with our key for the client's algorithm, with the session's
        auth_time, acr, amr and sid. An offline grant's refresh after its session ended says
        no sid: the relying party was told that session is over (Back-Channel Logout 1.0)."""
        session = request.login_session
        now = int(time.time())
        claims, expires = self.get_id_token_dictionary(token, token_handler, request)
        id_token.update(claims)
        id_token.update(
            iat=now,
            auth_time=int(session.created_at.timestamp()),
            acr=session.acr,
            amr=session.amr,
        )
        if session_is_live(session):
            id_token["sid"] = str(session.pk)
        if "nonce" not in id_token and request.nonce:
            id_token["nonce"] = request.nonce
        request.id_token_instance = IDToken.objects.create(
            user=request.user,
            scope=" ".join(request.scopes),
            expires=expires,
            jti=id_token["jti"],
            application=request.client,
            session=session,
        )
        return sign(id_token, alg=request.client.id_token_signed_response_alg, typ="JWT")

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

    # --- introspection (RFC 7662) ---------------------------------------------------------

    def introspect_token(
        self, token: str, token_type_hint: str | None, request: OAuthRequest, *args: Any, **kw: Any
    ) -> dict[str, Any] | None:
        return services.token_introspect(token=token, token_type_hint=token_type_hint)


def generate_access_token(request: OAuthRequest) -> str:
    """DOT's ACCESS_TOKEN_GENERATOR: an RFC 9068 JWT, not an opaque string."""
    resource = getattr(request, "resource", None) or [settings.ACCESS_TOKEN_AUDIENCE]
    claims = access_token_claims(
        client_id=request.client.client_id,
        user=request.user,
        scopes=list(request.scopes),
        session=getattr(request, "login_session", None),
        audience=list(resource),
        refreshed=request.grant_type == "refresh_token",
        offline=getattr(request, "offline", False),
    )
    request.access_token_jti = claims["jti"]
    return sign(claims, alg=settings.ACCESS_TOKEN_ALG, typ="at+jwt")


def _invalid_grant(request: OAuthRequest, description: str) -> errors.InvalidGrantError:
    """RFC 6749 §5.2 invalid_grant, saying which of its causes it is."""
    return errors.InvalidGrantError(description=description, request=request)


def _client_auth_failed(request: OAuthRequest, credentials: clients.Presented) -> None:
    """RFC 6749 §5.2 invalid_client, recorded as client.auth_failed; raised, because oauthlib
    would answer a bare False without a description."""
    clients.authentication_failed(credentials, endpoint=urlsplit(request.uri).path)
    raise errors.InvalidClientError(description=clients.AUTHENTICATION_FAILED, request=request)
