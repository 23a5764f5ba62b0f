"""The client_credentials grant (RFC 6749 §4.4): a service's token, for no person.

It is the token request services make most, and the one with the least to decide: no user,
no session, no code, no stored token. Nothing refers to such a token (no session, no refresh
family): introspection and revocation work from the JWT itself, so it costs no SQL statement;
its event goes to the process's audit journal (apps/core)."""

from __future__ import annotations

from django.conf import settings

from apps.core.events import EventType, emit
from apps.tokens.claims import ACCESS_TOKEN_TYPE, access_token_claims, sign
from apps.tokens.grants.base import Refused, TokenRequest, audience
from apps.tokens.scopes import ScopeRefused, granted_scopes

GRANT_TYPE = "client_credentials"
PUBLIC_CLIENTS = False  # RFC 6749 §4.4: confidential clients only
REQUIRED: tuple[str, ...] = ()


def issue(request: TokenRequest) -> dict[str, object]:
    """RFC 6749 §4.4.2 request → §4.4.3 / §5.1 answer."""
    scopes = _scopes(request)
    claims = access_token_claims(
        client_id=request.client.client_id,
        user=None,
        scopes=scopes,
        session=None,
        audience=audience(request.params, request.client),
        refreshed=False,
        cnf=request.binding.cnf(),
    )
    access_token = sign(claims, alg=settings.ACCESS_TOKEN_ALG, typ=ACCESS_TOKEN_TYPE)
    scope = " ".join(scopes)
    emit(
        EventType.TOKEN_ISSUED,
        resource_type="client",
        resource_id=request.client.client_id,
        metadata={"grant_type": GRANT_TYPE, "scope": scope, "jti": claims["jti"]},
    )
    answer: dict[str, object] = {
        "access_token": access_token,
        "expires_in": settings.ACCESS_TOKEN_LIFETIME,
        "token_type": request.binding.token_type,
    }
    if scope:  # RFC 6749 §5.1: the scope granted; none asked and none granted, none said
        answer["scope"] = scope
    return answer


def _scopes(request: TokenRequest) -> list[str]:
    """RFC 6749 §3.3, §4.4.2: what the client may have of what it asked for; nothing asked,
    nothing granted (a service token carries no default scope, and never `openid`, which
    means a person signed in: apps/tokens/scopes.py)."""
    try:
        return granted_scopes(
            (request.get("scope") or "").split(), client=request.client, person=False
        )
    except ScopeRefused as refused:
        raise Refused("invalid_scope", str(refused)) from None
