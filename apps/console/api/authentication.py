"""Access tokens for the admin API, beside DRF's staff session login: Bearer (RFC 6750) and
DPoP-bound (RFC 9449 §7: `Authorization: DPoP` with a DPoP proof)."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import APIException, AuthenticationFailed, PermissionDenied
from rest_framework.request import Request

from apps.accounts.models import User
from apps.tokens import dpop, possession
from apps.tokens.scopes import ADMIN_SCOPE
from apps.tokens.validation import InsufficientScope, InvalidToken, bearer_user


def _challenge(scheme: str = "Bearer", **params: str) -> str:
    """RFC 6750 §3 / RFC 9449 §7.1: the WWW-Authenticate value, naming the error when there
    is one."""
    return ", ".join(
        [f'{scheme} realm="{settings.ISSUER}"', *(f'{k}="{v}"' for k, v in params.items())]
    )


class ProofsUncheckable(APIException):
    """The DPoP replay cache cannot be reached: no proof is accepted (fail closed)."""

    status_code = 503
    default_code = "temporarily_unavailable"


class AdminScopeMissing(PermissionDenied):
    """RFC 6750 §3.1 insufficient_scope: 403, with the challenge saying which scope."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.auth_header = _challenge(error="insufficient_scope", scope=ADMIN_SCOPE)


class AdminBearerAuthentication(BaseAuthentication):
    """A Tessera access token (apps.tokens.validation) carrying the admin scope, issued to a
    person. Tokens of client_credentials grants act for no one and are refused: an admin
    action is always recorded against the person who did it (OWASP ASVS 7.2.2). Whether that
    person is active staff with a role is the permissions' business (console.permissions), as
    for sessions. A token whose revocation status is unknown (validation.RevocationStatusUnknown)
    is not caught here: DRF passes it on and core.middleware.UnavailableMiddleware answers 503
    with Retry-After, not 401 (the token is not known bad)."""

    def authenticate(self, request: Request) -> tuple[User, dict[str, Any]] | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", possession.DPOP_SCHEME):
            return None  # no token: the next authenticator (the session) may know the caller
        token = token.strip()
        try:
            # RFC 9449 §7.1: with the DPoP scheme, the proof (with ath) proves the token's key.
            # No server nonce is demanded here: a DRF authenticator cannot hand one out with
            # the answer, and the proof's jti and iat window still stop replays (§11.1).
            presented = possession.resource_binding(request._request, token, nonce=False)
            return bearer_user(token, scope=ADMIN_SCOPE, presented=presented)
        except dpop.InvalidProof as invalid:
            cast(Any, request._request).tessera_dpop_error = invalid.error
            raise AuthenticationFailed(str(invalid)) from None
        except dpop.ReplayCacheUnavailable as unavailable:
            raise ProofsUncheckable(str(unavailable)) from None
        except InvalidToken as invalid:
            raise AuthenticationFailed(str(invalid)) from None
        except InsufficientScope as insufficient:
            raise AdminScopeMissing(str(insufficient)) from None

    def authenticate_header(self, request: Request) -> str:
        """401 answers carry the challenge (RFC 6750 §3), which also makes DRF answer 401,
        not 403, to a request without credentials. A 401 to a request that sent a bearer
        token means the token was refused (§3.1 invalid_token); to one that sent a DPoP
        token, the DPoP challenge names the proof's error or invalid_token, with the
        algorithms a proof may use (RFC 9449 §7.1)."""
        sent_token = request.headers.get("Authorization", "").partition(" ")[0].lower()
        if sent_token == possession.DPOP_SCHEME:
            error = getattr(request._request, "tessera_dpop_error", "invalid_token")
            return _challenge("DPoP", error=error, algs=" ".join(settings.DPOP_SIGNING_ALGS))
        return _challenge(error="invalid_token") if sent_token == "bearer" else _challenge()


class AdminBearerScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """How the OpenAPI document describes AdminBearerAuthentication."""

    target_class = AdminBearerAuthentication
    name = "adminBearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "A Tessera access token with the admin scope, of an active staff user; a "
                "DPoP-bound one as Authorization: DPoP with a DPoP proof (RFC 9449)."
            ),
        }
