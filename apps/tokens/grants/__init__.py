"""The token endpoint (RFC 6749 §3.2), one road for every grant: the request is parsed and
its client authenticated once, then the grant type is looked up in HANDLERS and its module
runs its checks and issues (node-oidc-provider's lib/actions/grants, STYLE.md). A new grant
(device_code, token exchange) is one more module and one more line here."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse

from apps.tokens import possession
from apps.tokens.grants import authorization_code, client_credentials, refresh_token
from apps.tokens.grants.base import (
    Refused,
    TokenRequest,
    authenticated_client,
    check_params,
    refusal_body,
    require,
)


@dataclass(frozen=True)
class GrantHandler:
    required: tuple[str, ...]  # parameters it cannot go without (invalid_request)
    public: bool  # whether a public client (no secret) may use it
    issue: Callable[[TokenRequest], dict[str, object]]


HANDLERS: Mapping[str, GrantHandler] = {
    module.GRANT_TYPE: GrantHandler(module.REQUIRED, module.PUBLIC_CLIENTS, module.issue)
    for module in (authorization_code, refresh_token, client_credentials)
}


def token_response(request: HttpRequest) -> HttpResponse:
    """A POSTed token request → RFC 6749 §5.1 answer, or a §5.2 error."""
    params = request.POST
    try:
        handler = _handler(params.getlist("grant_type"))
        check_params(params)
        require(params, *handler.required)
        client = authenticated_client(request, params, public=handler.public)
        grant_type = params["grant_type"]
        if grant_type not in client.grant_type_set:
            raise Refused(
                "unauthorized_client", f"This client is not registered for the {grant_type} grant."
            )
        # RFC 8705 §3 / RFC 9449 §5: the tokens are bound to what the request proves.
        binding = possession.token_endpoint_binding(request, client)
        answer = handler.issue(TokenRequest(request, params, client, binding=binding))
    except Refused as refused:
        response = _json(refusal_body(refused), refused.status)
    else:
        response = _json(answer, 200)
    nonce = possession.dpop_nonce_header(request)
    if nonce:
        response["DPoP-Nonce"] = nonce  # RFC 9449 §8.2: on errors and successes alike
    return response


def _handler(grant_types: list[str]) -> GrantHandler:
    """RFC 6749 §5.2: only the grants we offer. Never the password grant (RFC 9700 §2.4:
    it tests passwords past the sign-in page) nor implicit (§2.1.2)."""
    if len(grant_types) > 1:
        raise Refused("invalid_request", "grant_type is repeated.")
    if not grant_types:
        raise Refused(
            "invalid_request",
            "grant_type is missing: the token request is a form-encoded POST "
            "(application/x-www-form-urlencoded) with grant_type.",
        )
    handler = HANDLERS.get(grant_types[0])
    if handler is None:
        raise Refused("unsupported_grant_type", f"grant_type must be one of {', '.join(HANDLERS)}.")
    return handler


def _json(body: Mapping[str, object], status: int) -> HttpResponse:
    response = HttpResponse(json.dumps(body), content_type="application/json", status=status)
    response["Cache-Control"] = "no-store"  # RFC 6749 §5.1
    response["Pragma"] = "no-cache"
    return response
