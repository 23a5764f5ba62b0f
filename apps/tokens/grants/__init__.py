"""The token endpoint (RFC 6749 §3.2), one road for every grant: the request is parsed and
its client authenticated once, then the grant type is looked up in HANDLERS and its module
runs its checks and issues (node-oidc-provider's lib/actions/grants, STYLE.md). A new grant
(device_code, token exchange) is one more module and one more line here."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse

from apps.keys.keys import KeyUnsealError, SigningKeyError
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

log = logging.getLogger(__name__)

# RFC 9110 §10.2.3: seconds a client waits before it retries while no token can be signed.
SIGNING_RETRY_AFTER = 30


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
    except SigningKeyError as error:
        response = _signing_unavailable(error)
    else:
        response = _json(answer, 200)
    nonce = possession.dpop_nonce_header(request)
    if nonce:
        response["DPoP-Nonce"] = nonce  # RFC 9449 §8.2: on errors and successes alike
    return response


def _signing_unavailable(error: SigningKeyError) -> HttpResponse:
    """No token can be signed (every grant's road ends in claims.sign): RFC 6749 §5.2
    temporarily_unavailable, 503 with Retry-After, never a 500. The grant's transaction has
    rolled back, so the same code or refresh token works once the key opens again."""
    hint = (
        "check that this process's IDP_KEY_ENCRYPTION_KEY (or IDP_KEY_ENCRYPTION_KEYS_OLD) "
        "holds the key-encryption key that sealed the signing keys; `manage.py reseal --check` "
        "lists the keys rows name"
        if isinstance(error, KeyUnsealError)
        else "run `manage.py rotate_keys --scheduled`"
    )
    log.error("token endpoint answered 503, no token can be signed: %s; %s", error, hint)
    response = _json(
        {
            "error": "temporarily_unavailable",
            "error_description": "The server cannot sign tokens right now. Try again later.",
        },
        503,
    )
    response["Retry-After"] = str(SIGNING_RETRY_AFTER)
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
