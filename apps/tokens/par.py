"""The pushed authorization request endpoint (RFC 9126 §2): POST /oauth/par.

The client authenticates as at the token endpoint (apps/tokens/grants/base.py: the same
failed-authentication events, lockout and rate limits, group "par"); its parameters are
checked by authorize's checks that need no browser (authorize.validate_pushed, RFC 9126
§2.1: as any authorization request is), then kept (apps/tokens/pushed.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.request import RawPostDataException

from apps.tokens import authorize, possession
from apps.tokens.grants.base import Refused, authenticated_client, check_params, refusal_body
from apps.tokens.pushed import PushedUnavailable, pushed_store

FORM = "application/x-www-form-urlencoded"
# Not authorization request parameters: the client's credentials (RFC 6749 §2.3.1).
_CREDENTIALS = ("client_secret",)


def _json(body: Mapping[str, object], status: int) -> HttpResponse:
    response = HttpResponse(json.dumps(body), content_type="application/json", status=status)
    response["Cache-Control"] = "no-store"  # RFC 9126 §2.2, as RFC 6749 §5.1
    return response


def _form(request: HttpRequest) -> QueryDict:
    """RFC 9126 §2.1: the parameters form-encoded in the body; anything else invalid_request."""
    if request.content_type != FORM:
        raise Refused(
            "invalid_request",
            "Send the parameters form-encoded (application/x-www-form-urlencoded).",
        )
    try:
        return request.POST
    except (RequestDataTooBig, TooManyFieldsSent, RawPostDataException):
        raise Refused("invalid_request", "The request body is too large.") from None


def _bind_dpop_key(request: HttpRequest, pushed: dict[str, str]) -> None:
    """RFC 9449 §10.1: a DPoP proof sent with the push binds the code to its key, as dpop_jkt
    does; both at once must name the same key. Raises Refused."""
    jkt = possession.proven_jkt(request, required=False)
    if not jkt:
        return
    if pushed.setdefault("dpop_jkt", jkt) != jkt:
        raise Refused("invalid_dpop_proof", "dpop_jkt names another key than the DPoP proof's.")


def push_response(request: HttpRequest) -> HttpResponse:
    """RFC 9126 §2: 201 with request_uri and expires_in, or a §2.3 error (as RFC 6749 §5.2);
    to a request with a DPoP proof, the current DPoP-Nonce (RFC 9449 §8.2)."""
    response = _pushed(request)
    nonce = possession.dpop_nonce_header(request)
    if nonce:
        response["DPoP-Nonce"] = nonce
    return response


def _pushed(request: HttpRequest) -> HttpResponse:
    try:
        params = _form(request)
        check_params(params)
        client = authenticated_client(request, params, public=True)
        if "request_uri" in params:
            raise Refused(
                "invalid_request", "request_uri must not be pushed (RFC 9126 section 2.1)."
            )
        pushed = {name: str(params[name]) for name in params if name not in _CREDENTIALS}
        pushed["client_id"] = client.client_id
        _bind_dpop_key(request, pushed)
        answer = authorize.validate_pushed(
            request, pushed, repeated=frozenset(n for n in params if len(params.getlist(n)) > 1)
        )
        if answer is not None:
            raise Refused(*answer)
        request_uri, lifetime = pushed_store(client_id=client.client_id, params=pushed)
    except Refused as refused:
        return _json(refusal_body(refused), refused.status)
    except PushedUnavailable:
        return _json(
            {"error": "temporarily_unavailable",
             "error_description": "The server cannot keep pushed requests right now; try again."},
            503,
        )  # fmt: skip
    return _json({"request_uri": request_uri, "expires_in": lifetime}, 201)
