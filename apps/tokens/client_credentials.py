"""The client_credentials grant (RFC 6749 §4.4), served without oauthlib.

It is the token request services make most, and the one with the least to decide: no user, no
session, no code, no stored token. Through django-oauth-toolkit and oauthlib it cost three
times the CPU of this module (a Server and a Request built per call, every parameter copied
and re-validated, a generic scope and grant machinery), which capped a core at a third of the
rate of a bare Django view. The other grants stay on DOT, which this module shares client
authentication (clients.basic_credentials / clients.authenticate), claims and signing with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from django.conf import settings
from django.http import HttpRequest, HttpResponse, QueryDict
from oauth2_provider.oauth2_validators import is_valid_resource_uri

from apps.core.events import EventType, emit
from apps.tokens import clients
from apps.tokens.claims import ACCESS_TOKEN_TYPE, access_token_claims, sign
from apps.tokens.errors import safe
from apps.tokens.models import Client
from apps.tokens.scopes import ScopeRefused, granted_scopes

GRANT_TYPE = "client_credentials"
# RFC 6749 §3.2: request parameters MUST NOT be included more than once (resource may:
# RFC 8707 §2 names one resource per parameter).
_SINGLE = ("grant_type", "scope", "client_id", "client_secret")


class _Refusal(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def is_client_credentials_request(request: HttpRequest) -> bool:
    return request.method == "POST" and request.POST.get("grant_type") == GRANT_TYPE


def token_response(request: HttpRequest) -> HttpResponse:
    """RFC 6749 §4.4.2 request → §4.4.3 / §5.1 response, or a §5.2 error."""
    try:
        client = _authenticated_client(request)
        scopes = _scopes(request.POST.get("scope", ""), client)
        audience = _audience(request.POST.getlist("resource"))
    except _Refusal as refusal:
        body = {"error": refusal.error, "error_description": safe(refusal.description)}
        return _json(body, refusal.status)
    claims = access_token_claims(
        client_id=client.client_id,
        user=None,
        scopes=scopes,
        session=None,
        audience=audience,
        refreshed=False,
    )
    access_token = sign(claims, alg=settings.ACCESS_TOKEN_ALG, typ=ACCESS_TOKEN_TYPE)
    scope = " ".join(scopes)
    # No token row: nothing refers to a client_credentials token (no session, no refresh
    # family); introspection and revocation work from the JWT itself. The event is the only
    # write, and one INSERT is atomic by itself.
    emit(
        EventType.TOKEN_ISSUED,
        resource_type="client",
        resource_id=client.client_id,
        metadata={"grant_type": GRANT_TYPE, "scope": scope},
    )
    answer: dict[str, object] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": settings.ACCESS_TOKEN_LIFETIME,
    }
    if scope:  # RFC 6749 §5.1: the scope granted; none asked and none granted, none said
        answer["scope"] = scope
    return _json(answer, 200)


def _authenticated_client(request: HttpRequest) -> Client:
    params: QueryDict = request.POST
    for name in _SINGLE:
        if len(params.getlist(name)) > 1:
            raise _Refusal("invalid_request", f"The {name} parameter is repeated.")
    credentials = clients.presented(
        request.headers.get("Authorization", ""),
        params.get("client_id"),
        params.get("client_secret"),
    )
    client = clients.authenticate_presented(credentials)
    if client is None:
        clients.authentication_failed(credentials, endpoint=request.path)
        # §5.2: 401 with a challenge (added by the token view for every grant)
        raise _Refusal("invalid_client", clients.AUTHENTICATION_FAILED, status=401)
    if GRANT_TYPE not in client.grant_type_set:
        raise _Refusal(
            "unauthorized_client", "This client is not registered for the client_credentials grant."
        )
    return client


def _scopes(requested: str, client: Client) -> list[str]:
    """RFC 6749 §3.3, §4.4.2: what the client may have of what it asked for; nothing asked,
    nothing granted (a service token carries no default scope, and never `openid`, which
    means a person signed in: apps/tokens/scopes.py)."""
    try:
        return granted_scopes(requested.split(), client=client, person=False)
    except ScopeRefused as refused:
        raise _Refusal("invalid_scope", str(refused)) from None


def _audience(resources: list[str]) -> list[str]:
    """RFC 8707 §2: each resource an absolute URI without a fragment, else invalid_target;
    the token's audience is the resources named, or the default audience."""
    for resource in resources:
        if not is_valid_resource_uri(resource):
            raise _Refusal(
                "invalid_target", "resource must be an absolute URI without userinfo or fragment."
            )
    return list(dict.fromkeys(resources)) or [settings.ACCESS_TOKEN_AUDIENCE]


def _json(body: Mapping[str, object], status: int) -> HttpResponse:
    response = HttpResponse(json.dumps(body), content_type="application/json", status=status)
    response["Cache-Control"] = "no-store"  # RFC 6749 §5.1
    response["Pragma"] = "no-cache"
    return response
