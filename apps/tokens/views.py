from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import cache, wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.core import signing
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from oauth2_provider.http import OAuth2ResponseRedirect
from oauthlib.common import add_params_to_uri

from apps.accounts.selectors import user_token_claims
from apps.core.security_headers import allow_frames, leave_form_action_open
from apps.keys import keys
from apps.sessions.levels import ACR_VALUES_SUPPORTED
from apps.sessions.selectors import session_current
from apps.sessions.services import session_end
from apps.tokens import authorize as authorize_flow
from apps.tokens import clients, dpop, grants, id_tokens, logout_propagation, mtls, possession
from apps.tokens.activity import activity_report
from apps.tokens.authorize import refusal_page
from apps.tokens.claims import profile_claims
from apps.tokens.errors import safe
from apps.tokens.grants.base import Refused, authenticated_client, refusal_body
from apps.tokens.models import Client
from apps.tokens.par import push_response
from apps.tokens.services import token_introspect, token_revoke
from apps.tokens.validation import InsufficientScope, InvalidToken, bearer_user

# --- discovery and keys ------------------------------------------------------------------


@cache
def _metadata() -> bytes:
    """OIDC Discovery 1.0 §3 and RFC 8414 §2, built once per process."""
    issuer = settings.ISSUER
    # RFC 8705 §2: tls_client_auth and self_signed_tls_client_auth
    auth_methods = ["client_secret_basic", "client_secret_post", *mtls.CERTIFICATE_METHODS_ORDER]
    metadata = {
        "issuer": issuer,
        "authorization_endpoint": issuer + reverse("tokens:authorize"),
        "token_endpoint": issuer + reverse("tokens:token"),
        "userinfo_endpoint": issuer + reverse("tokens:userinfo"),
        "jwks_uri": issuer + reverse("tokens:jwks"),
        "end_session_endpoint": issuer + reverse("tokens:end_session"),
        "introspection_endpoint": issuer + reverse("tokens:introspect"),
        "revocation_endpoint": issuer + reverse("tokens:revoke"),
        # RFC 9126 §5: the pushed authorization request endpoint, and whether every request
        # must use it (a client's require_par is its own, RFC 9126 §6)
        "pushed_authorization_request_endpoint": issuer + reverse("tokens:par"),
        "require_pushed_authorization_requests": settings.REQUIRE_PAR,
        "scopes_supported": list(settings.SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg.value for alg in Client.SigningAlg],
        "token_endpoint_auth_methods_supported": [*auth_methods, "none"],
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": [*auth_methods, "none"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": sorted(authorize_flow.KNOWN_PROMPTS),
        # OIDC Discovery 1.0 §3; the levels are apps/sessions/levels.py's, lowest first
        "acr_values_supported": list(ACR_VALUES_SUPPORTED),
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "at_hash",
            "sid", "email", "email_verified", "name",
        ],
        # OIDC Core §5.5: accepted; the ID token's acr is acted on, the rest follows scopes
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,  # RFC 9207 §3
        # Back-Channel Logout 1.0 §2.1: Logout Tokens, always with sid
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        # Front-Channel Logout 1.0 §3: iframes on the signed-out page, with iss and sid
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
        "tls_client_certificate_bound_access_tokens": True,  # RFC 8705 §3.3
        # RFC 9449 §5.1: DPoP proofs accepted at the token endpoint and the resources
        "dpop_signing_alg_values_supported": list(settings.DPOP_SIGNING_ALGS),
    }  # fmt: skip
    aliases = mtls.endpoint_aliases()
    if aliases:  # RFC 8705 §5: where clients reach the endpoints over mutual TLS
        metadata["mtls_endpoint_aliases"] = aliases
    return json.dumps(metadata).encode()


def _public_document(request: HttpRequest, body: bytes, content_type: str) -> HttpResponse:
    """Metadata anyone may read and cache, browser apps included; HEAD gets the headers of
    GET without the body (RFC 9110 §9.3.2)."""
    response = HttpResponse(b"" if request.method == "HEAD" else body, content_type=content_type)
    response["Content-Length"] = str(len(body))
    response["Cache-Control"] = f"public, max-age={settings.JWKS_MAX_AGE}"
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_safe
def discovery(request: HttpRequest) -> HttpResponse:
    return _public_document(request, _metadata(), "application/json")


@require_safe
def jwks(request: HttpRequest) -> HttpResponse:
    return _public_document(request, keys.jwks_json(), "application/jwk-set+json")


# --- authorization -----------------------------------------------------------------------


@csrf_exempt  # OIDC Core §3.1.2.1: relying parties may POST the request from their own page
@never_cache
@require_http_methods(["GET", "POST"])
def authorize(request: HttpRequest) -> HttpResponse:
    query = request.GET if request.method == "GET" else request.POST
    return authorize_flow.authorize(request, query)


@never_cache
@require_POST
def consent(request: HttpRequest) -> HttpResponse:
    blob, decision = request.POST.get("request", ""), request.POST.get("decision")
    if decision == "switch_account":
        return _switch_account(request, blob)
    return authorize_flow.consent_decision(request, blob, allow=decision == "allow")


def _switch_account(request: HttpRequest, blob: str) -> HttpResponse:
    """The consent page's "Not you? Sign in as someone else" (a CSRF-checked POST): the login
    session ends as a sign-out ends it (RP-Initiated Logout's road: back- and front-channel
    logout for its applications), then the sign-in page leads back to the same request."""
    params = authorize_flow.consent_request(blob)
    if params is None:
        return refusal_page(request, authorize_flow.CONSENT_EXPIRED)
    iframes = _end_login_session(request)
    return _signed_out_response(
        request, iframes, authorize_flow.switch_account_login(params), switching=True
    )


def _client_auth_challenge(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """RFC 6749 §5.2: a 401 for failed client authentication challenges with the scheme
    clients authenticate with (HTTP Basic); oauthlib would send a Bearer challenge."""

    @wraps(view)
    def challenged(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if response.status_code == 401:
            response["WWW-Authenticate"] = f'Basic realm="{settings.ISSUER}"'
        return response

    return challenged


@csrf_exempt
@require_POST  # RFC 6749 §3.2: the client MUST use POST
@_client_auth_challenge
def token(request: HttpRequest) -> HttpResponse:
    return grants.token_response(request)


@csrf_exempt
@require_POST  # RFC 9126 §2: the client POSTs its parameters, form-encoded
@_client_auth_challenge
def par(request: HttpRequest) -> HttpResponse:
    return push_response(request)


_TOKEN_TYPE_HINTS = ("access_token", "refresh_token")


def _token_param(params: QueryDict) -> tuple[str, str | None]:
    """The token and its hint (RFC 7009 §2.1, RFC 7662 §2.1): one token, required; the hint
    only orders the search, and one we do not know is unsupported_token_type (§2.2.1)."""
    if len(params.getlist("token")) > 1:
        raise Refused("invalid_request", "The token parameter is repeated.")
    token = params.get("token", "")
    if not token:
        raise Refused("invalid_request", "The token parameter is missing.")
    hint = params.get("token_type_hint")
    if hint is not None and hint not in _TOKEN_TYPE_HINTS:
        raise Refused(
            "unsupported_token_type", "token_type_hint must be access_token or refresh_token."
        )
    return token, hint


def _refusal(refused: Refused) -> JsonResponse:
    return JsonResponse(refusal_body(refused), status=refused.status)


@csrf_exempt
@require_POST
@_client_auth_challenge
def revoke(request: HttpRequest) -> HttpResponse:
    """RFC 7009: a client revokes a token it holds; public clients name themselves (§2.1).
    An unknown or invalid token is not an error (§2.2): 200 either way."""
    params = request.POST
    response: HttpResponse
    try:
        token, _ = _token_param(params)
        client = authenticated_client(request, params, public=True)
    except Refused as refused:
        response = _refusal(refused)
    else:
        token_revoke(token=token, client=client)
        response = HttpResponse(status=200)
    response["Cache-Control"] = "no-store"
    return response


# --- resources -----------------------------------------------------------------------


def _bearer_error(
    status: int, error: str | None, description: str, *, dpop: bool = False
) -> JsonResponse:
    """RFC 6750 §3: the WWW-Authenticate challenge names the error; a request with no
    credentials at all gets no error code (§3.1), only the description of what to send, and
    both the Bearer and the DPoP challenge (RFC 9449 §7.1: either scheme is accepted). To a
    request made with the DPoP scheme (`dpop`), the DPoP challenge with the error, and the
    algorithms a proof may use (`algs`, RFC 9449 §7.1)."""
    description = safe(description)
    body = (
        {"error": error, "error_description": description}
        if error
        else {"error_description": description}
    )
    response = JsonResponse(body, status=status)
    algs = f'algs="{" ".join(settings.DPOP_SIGNING_ALGS)}"'
    challenge = f'{"DPoP" if dpop else "Bearer"} realm="{settings.ISSUER}"'
    if error:
        challenge += f', error="{error}", error_description="{description}"'
    if dpop:
        challenge += f", {algs}"
    elif not error:
        challenge += f', DPoP realm="{settings.ISSUER}", {algs}'
    response["WWW-Authenticate"] = challenge
    response["Cache-Control"] = "no-store"
    return response


FORM = "application/x-www-form-urlencoded"


def _bearer_token(request: HttpRequest) -> str | JsonResponse:
    """RFC 6750 §2: the access token from the Authorization header (§2.1) or a form-encoded
    POST body (§2.2); more than one method is invalid_request, and so is the URI query
    (§2.3; RFC 9700 §4.3.2 forbids it)."""
    header = request.headers.get("Authorization")
    in_body = (
        request.method == "POST" and request.content_type == FORM and "access_token" in request.POST
    )
    if "access_token" in request.GET:
        return _bearer_error(
            400, "invalid_request", "An access token in the URL is refused: send it in an "
            "Authorization: Bearer header or a form-encoded POST body."
        )  # fmt: skip
    if header is not None and in_body:
        return _bearer_error(
            400, "invalid_request", "Send the access token one way only: the Authorization "
            "header or the POST body, not both (RFC 6750 section 2)."
        )  # fmt: skip
    if in_body:
        if len(request.POST.getlist("access_token")) > 1:
            return _bearer_error(400, "invalid_request", "access_token is repeated.")
        token = request.POST["access_token"].strip()
    else:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() not in ("bearer", possession.DPOP_SCHEME):  # RFC 9449 §7.1
            token = ""
        token = token.strip()
    if not token:
        return _bearer_error(
            401, None, "Send the access token in an Authorization: Bearer header or as "
            "access_token in a form-encoded POST body."
        )  # fmt: skip
    return token


@csrf_exempt
@require_http_methods(["GET", "POST"])
def userinfo(request: HttpRequest) -> HttpResponse:
    """OIDC Core §5.3, with the token sent as RFC 6750 §2.1 or §2.2 allow, or as RFC 9449 §7.1
    (Authorization: DPoP with a DPoP proof); to a request with a DPoP proof, the current
    DPoP-Nonce when nonces are required (§9). A token whose revocation status is unknown
    (validation.RevocationStatusUnknown) is refused with 503 and Retry-After, not 401: it is
    not known bad (core.middleware.UnavailableMiddleware answers it)."""
    response = _userinfo(request)
    nonce = possession.dpop_nonce_header(request)
    if nonce:
        response["DPoP-Nonce"] = nonce
    return response


def _userinfo(request: HttpRequest) -> HttpResponse:
    token = _bearer_token(request)
    if isinstance(token, JsonResponse):
        return token
    dpop_scheme = possession.uses_dpop_scheme(request)
    try:
        presented = possession.resource_binding(request, token)
        user, claims = bearer_user(token, scope="openid", presented=presented)
    except dpop.InvalidProof as invalid:  # and UseNonce: RFC 9449 §7.1, §9
        return _bearer_error(401, invalid.error, str(invalid), dpop=True)
    except dpop.ReplayCacheUnavailable as unavailable:
        return _bearer_error(503, "temporarily_unavailable", str(unavailable), dpop=True)
    except InvalidToken as invalid:
        return _bearer_error(401, "invalid_token", str(invalid), dpop=dpop_scheme)
    except InsufficientScope as insufficient:
        return _bearer_error(403, "insufficient_scope", str(insufficient), dpop=dpop_scheme)
    scopes = str(claims["scope"]).split()
    _report_userinfo(user, claims)
    body = {"sub": str(user.pk), **profile_claims(user, scopes)}
    if claims.get("authz_truncated"):  # the token's _claim_sources point here (claims.bounded)
        body.update(user_token_claims(user=user))
    response = JsonResponse(body)
    response["Cache-Control"] = "no-store"
    return response


def _report_userinfo(user: Any, claims: dict[str, Any]) -> None:
    """A public client's userinfo call comes from the person's own device: session activity
    for threat scoring (apps/tokens/activity.py). A confidential client calls from its own
    servers, whose address says nothing of the person's."""
    client = clients.client_by_id(str(claims.get("client_id", "")))
    if client is None or client.client_type != Client.CLIENT_PUBLIC:
        return
    try:
        session_id = uuid.UUID(str(claims["sid"])) if claims.get("sid") else None
    except ValueError:
        session_id = None
    activity_report(
        kind="userinfo",
        user_id=user.pk,
        session_id=session_id,
        client_id=client.client_id,
        public_client=True,
    )


@csrf_exempt
@require_POST
@_client_auth_challenge
def introspect(request: HttpRequest) -> HttpResponse:
    """RFC 7662: confidential clients only (§2.1 requires the caller be authorized).
    Inactive is {"active": false} and nothing else (§2.2). A token whose revocation status
    this process cannot read (validation.RevocationStatusUnknown) is neither: §2.2's `active`
    says the token has not been revoked, which is unknown, and §4 lets the resource server
    cache the answer, so a false "inactive" would outlive the outage. It is answered 503
    temporarily_unavailable with Retry-After (core.views.unavailable_response), an error
    (§2.3), not an answer about the token."""
    params = request.POST
    try:
        token, hint = _token_param(params)
        authenticated_client(request, params, public=False)
    except Refused as refused:
        response = _refusal(refused)
    else:
        found = token_introspect(token=token, token_type_hint=hint)
        response = JsonResponse(found or {"active": False})
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


# --- logout (OpenID Connect RP-Initiated Logout 1.0) --------------------------------------

LOGOUT_SALT = "tessera.end_session"


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def end_session(request: HttpRequest) -> HttpResponse:
    params = request.GET if request.method == "GET" else request.POST
    hint = params.get("id_token_hint", "")
    claims = id_tokens.verify_hint(hint) if hint else None
    if hint and claims is None:  # §2: a hint that is not ours is refused outright
        return _logout_refused(
            request, "The application sent a sign-out request that Tessera did not issue."
        )
    audience = claims.get("aud") if claims else None
    client_id = params.get("client_id") or (audience if isinstance(audience, str) else None)
    if claims and params.get("client_id") and params.get("client_id") != audience:
        return _logout_refused(
            request, "The sign-out request names one application but comes from another."
        )
    redirect_uri = params.get("post_logout_redirect_uri", "")
    client = clients.client_by_id(client_id) if client_id else None
    if redirect_uri:  # §3: only an exactly registered URI of an identified client
        refused = _post_logout_redirect_refused(request, client, redirect_uri)
        if refused is not None:
            return refused
    target = {
        "redirect_uri": redirect_uri,
        "state": params.get("state", ""),
        "client_id": client_id or "",
    }
    session = session_current(request)
    if session is not None and (claims is None or claims.get("sid") != str(session.pk)):
        # Without a hint for this very session, ask: a cross-site link must not sign people out.
        page = render(
            request,
            "tokens/logout_confirm.html",
            {"request_blob": signing.dumps(target, salt=LOGOUT_SALT)},
        )
        # Its form ends at the post-logout redirect URI, checked above (CSP form-action).
        return leave_form_action_open(page) if redirect_uri else page
    return _sign_out(request, target)


@never_cache
@require_POST
def end_session_confirm(request: HttpRequest) -> HttpResponse:
    try:
        target = signing.loads(request.POST.get("request", ""), salt=LOGOUT_SALT, max_age=600)
    except signing.BadSignature:
        return _logout_refused(request, "This sign-out page has expired.")
    if request.POST.get("decision") != "logout":
        return render(request, "tokens/signed_out.html", {"stayed": True})
    return _sign_out(request, target)


def _post_logout_redirect_refused(
    request: HttpRequest, client: Client | None, redirect_uri: str
) -> HttpResponse | None:
    if client is None:
        return _logout_refused(
            request,
            "An application asked to send you to an address after sign-out without saying "
            "which application it is (or naming one Tessera does not know), so the address "
            "cannot be checked.",
            unregistered_redirect=True,
        )
    if redirect_uri not in client.post_logout_redirect_uris.split():
        return _logout_refused(
            request,
            f"{client.name or client.client_id} asked to send you to an address it has not "
            "registered for after sign-out, so you will not be sent there.",
            unregistered_redirect=True,
        )
    return None


def _logout_refused(
    request: HttpRequest, description: str, *, unregistered_redirect: bool = False
) -> HttpResponse:
    """RP-Initiated Logout 1.0 §2, §3: a sign-out request we do not follow (never redirecting
    to an unverified URI); the person is still signed in and may sign out here instead, with
    no redirect afterwards."""
    target = {"redirect_uri": "", "state": "", "client_id": ""}
    signed_in = session_current(request) is not None
    context = {
        "description": description,
        "unregistered_redirect": unregistered_redirect,
        "request_blob": signing.dumps(target, salt=LOGOUT_SALT) if signed_in else "",
    }
    return render(request, "tokens/logout_error.html", context, status=400)


# Seconds the signed-out page shows its front-channel iframes before it returns the person
# to the client; browsers count them from the page's load, iframes included.
FRONTCHANNEL_REDIRECT_DELAY = 2


def _end_login_session(request: HttpRequest) -> list[str]:
    """Ends the browser's login session (its tokens refused, back-channel logouts queued) and
    the Django session; returns the front-channel logout URIs to load."""
    session = session_current(request)
    iframes: list[str] = []
    if session is not None:
        session_end(session=session, reason="logout", actor_id=session.user_id)
        iframes = logout_propagation.frontchannel_logout_uris(session=session)
    logout(request)
    return iframes


def _sign_out(request: HttpRequest, target: dict[str, str]) -> HttpResponse:
    iframes = _end_login_session(request)
    return _signed_out_response(request, iframes, _post_logout_redirect(target))


def _signed_out_response(
    request: HttpRequest, iframes: list[str], redirect: HttpResponse | None, switching: bool = False
) -> HttpResponse:
    if redirect is not None and not iframes:
        return redirect
    # Front-Channel Logout 1.0 §4: the iframes load first, then the RP-Initiated Logout 1.0
    # §3 redirect follows; a Refresh header does that without script on our page.
    continue_uri = redirect["Location"] if redirect is not None else ""
    response = render(
        request,
        "tokens/signed_out.html",
        {
            "stayed": False,
            "frontchannel_logout_uris": iframes,
            "continue_uri": continue_uri,
            "switching": switching,
        },
    )
    allow_frames(response, iframes)
    if continue_uri:
        response["Refresh"] = f"{FRONTCHANNEL_REDIRECT_DELAY}; url={continue_uri}"
    return response


def _post_logout_redirect(target: dict[str, str]) -> HttpResponse | None:
    if not target["redirect_uri"]:
        return None
    client = clients.client_by_id(target["client_id"])
    assert client is not None  # checked by end_session, the target is signed
    uri = target["redirect_uri"]
    if target["state"]:
        uri = add_params_to_uri(uri, [("state", target["state"])])
    redirect: HttpResponse = OAuth2ResponseRedirect(uri, client.get_allowed_schemes())
    return redirect
