"""The authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1.2) as ordered, single-purpose
checks, each either passing or answering the request (node-oidc-provider's shape).

oauthlib validates the OAuth parameters (client, exact redirect URI, response type, scopes
against the client's allowed_scopes, PKCE presence); the checks here add the resource (RFC
8707) and what needs the browser session: login, prompt, max_age, id_token_hint, the
authentication level (acr_values, the client's MFA requirement) and consent. Every response
sent back to the client carries `iss` (RFC 9207).

A pushed request (RFC 9126, apps/tokens/par.py) arrives as `client_id` + `request_uri`;
check_pushed_request takes it (single use) and the checks run on the pushed parameters. The
browser's later round trips (sign-in, step-up, consent) carry them forward sealed (PUSHED_PARAM:
AES-256-GCM under the key-encryption key, unreadable by the browser), never the spent
request_uri.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render, resolve_url
from django.urls import reverse
from oauth2_provider.http import OAuth2ResponseRedirect
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauthlib.common import add_params_to_uri
from oauthlib.oauth2 import FatalClientError, OAuth2Error
from oauthlib.oauth2.rfc6749.errors import MissingCodeChallengeError

from apps.core.security_headers import leave_form_action_open
from apps.sessions.levels import LEVEL_ACR, LEVEL_MFA, acr_level
from apps.sessions.models import LoginSession
from apps.sessions.selectors import session_current
from apps.sessions.services import session_auth_time
from apps.tokens import id_tokens
from apps.tokens.clients import client_by_id
from apps.tokens.errors import describe
from apps.tokens.models import Client
from apps.tokens.pushed import (
    URN_PREFIX,
    PushedUnavailable,
    pushed_open,
    pushed_seal,
    pushed_take,
)
from apps.tokens.resources import resource_refusal
from apps.tokens.scopes import OFFLINE_ACCESS
from apps.tokens.selectors import consent_scopes
from apps.tokens.services import code_issue, consent_grant

# Marks a login as done for one authorization request (prompt=login); signed, short-lived.
LOGIN_MARK = "tessera_login_after"
# Marks a request already sent to step up once (check_acr); signed, short-lived. Not bound to
# the request: carried to another, it can only leave an asked level unmet (the tokens then
# say the session's real acr), never pass a required one.
STEP_UP_MARK = "tessera_step_up"
# The sign-in page's parameter naming the acr a request needs (docs/architecture.md).
STEP_UP_PARAM = "step_up"
MARK_MAX_AGE = 900
# A pushed request's parameters as the browser carries them after its request_uri is spent
# (sign-in, step-up and consent round trips); signed, MARK_MAX_AGE. It proves the push: a
# request carrying it satisfies "PAR required". Signed, not encrypted: the browser can read
# the parameters (as in any unpushed request), not change them (RFC 9126 §1: integrity).
PUSHED_PARAM = "tessera_pushed"
# Server-made marks a resumed pushed request keeps from the front channel (each signed).
_CARRIED_MARKS = ("tessera_login_after", "tessera_step_up")
PUSHED_EXPIRED = "This sign-in request has expired. Start again from the application."
PAR_REQUIRED = "pushed authorization request required (RFC 9126 section 5)."
REQUEST_URI_UNKNOWN = (
    "The application's pushed request is unknown or was used already. Start again from the "
    "application."
)
# The claims parameter's JSON (OIDC Core §5.5): a request for a few claims is well under it.
MAX_CLAIMS_REQUEST = 4096
CLAIMS_MALFORMED = "claims must be a JSON object as OpenID Connect Core section 5.5 defines."
CONSENT_SALT = "tessera.authorize.consent"
KNOWN_PROMPTS = {"none", "login", "consent", "select_account"}
# The value is not echoed: a description never reflects raw input (issue 20).
PROMPT_UNSUPPORTED = (
    f"prompt has a value this server does not support; it takes {', '.join(sorted(KNOWN_PROMPTS))}."
)
# OAuth 2.0 and OIDC Core §3.1.2.1 authorization request parameters, the only names an error
# description repeats back.
AUTHORIZE_PARAMS = frozenset(
    {
        "response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
        "code_challenge", "code_challenge_method", "prompt", "max_age", "login_hint",
        "id_token_hint", "acr_values", "claims", "ui_locales", "claims_locales", "display",
        "response_mode", "request", "request_uri", "resource", "registration",
    }
)  # fmt: skip
PKCE_REQUIRED = (
    "PKCE is required: send code_challenge with code_challenge_method=S256 (RFC 7636, "
    "RFC 9700 section 2.1.1)."
)


@dataclass(frozen=True)
class AcrClaim:
    """OIDC Core §5.5.1.1: the acr claim asked for the ID token through `claims`."""

    essential: bool
    values: tuple[str, ...]


@dataclass
class AuthorizationRequest:
    params: dict[str, str]
    repeated: frozenset[str] = frozenset()
    scopes: list[str] = field(default_factory=list)
    credentials: dict[str, Any] = field(default_factory=dict)
    client: Client | None = None
    session: LoginSession | None = None
    acr_claim: AcrClaim | None = None  # the claims parameter's id_token.acr (OIDC Core §5.5)
    # A pushed request (RFC 9126): what the browser carries instead of `params`.
    front: dict[str, str] | None = None
    _consented: frozenset[str] | None = None

    def carried(self) -> dict[str, str]:
        """The request as the browser carries it to its next round trip: the parameters, or
        for a pushed request its signed parameters and the marks (never the request_uri)."""
        if self.front is None:
            return dict(self.params)
        marks = {name: self.params[name] for name in _CARRIED_MARKS if name in self.params}
        return {**self.front, **marks}

    @property
    def consented(self) -> frozenset[str]:
        """What the signed-in person already allowed this client (read once)."""
        if self._consented is None:
            assert self.session is not None
            assert self.client is not None
            self._consented = consent_scopes(user_id=self.session.user_id, client=self.client)
        return self._consented

    @property
    def prompt(self) -> set[str]:
        return set(self.params.get("prompt", "").split())

    @property
    def redirect_uri(self) -> str:
        return str(self.credentials["redirect_uri"])


class Answer(Exception):
    """A check answered the request; the response goes back as it is. A refusal also names
    its OAuth error, for the pushed request endpoint (RFC 9126 §2.3) to answer in JSON."""

    def __init__(
        self, response: HttpResponse, error: str = "invalid_request", description: str = ""
    ) -> None:
        self.response = response
        self.error, self.description = error, description


def redirect_to_client(areq: AuthorizationRequest, params: dict[str, str]) -> HttpResponse:
    """RFC 9207 §2: `iss` in every authorization response, success and error alike."""
    state = areq.params.get("state")
    extra = list(params.items()) + ([("state", state)] if state else [])
    uri = add_params_to_uri(areq.redirect_uri, [*extra, ("iss", settings.ISSUER)])
    assert areq.client is not None
    response: HttpResponse = OAuth2ResponseRedirect(uri, areq.client.get_allowed_schemes())
    return response


def error_to_client(areq: AuthorizationRequest, error: str, description: str) -> Answer:
    description = describe(error, description)
    return Answer(
        redirect_to_client(areq, {"error": error, "error_description": description}),
        error,
        description,
    )


def refusal_page(request: HttpRequest, description: str) -> HttpResponse:
    """A request we refuse without sending the browser anywhere (RFC 6749 §4.1.2.1 for an
    unknown client or redirect URI; RP-Initiated Logout 1.0 for a foreign hint)."""
    return render(request, "tokens/authorize_error.html", {"description": description}, status=400)


def error_page(request: HttpRequest, description: str, error: str = "invalid_request") -> Answer:
    return Answer(refusal_page(request, description), error, description)


def _authorize_uri(params: dict[str, str]) -> str:
    return f"{settings.ISSUER}{reverse('tokens:authorize')}?{urlencode(params)}"


def check_oauth_request(request: HttpRequest, areq: AuthorizationRequest) -> None:
    server = get_oauthlib_core().server
    try:
        scopes, credentials = server.validate_authorization_request(
            _authorize_uri(areq.params), http_method="GET", body=None, headers={}
        )
    except FatalClientError as error:
        raise error_page(
            request, error.description or "The client or its redirect URI is not registered."
        ) from None
    except OAuth2Error as error:
        if not error.redirect_uri:
            code = error.error or "invalid_request"
            raise error_page(request, describe(code, error.description), code) from None
        areq.credentials = {"redirect_uri": error.redirect_uri}
        areq.client = client_by_id(areq.params["client_id"])
        code = error.error or "invalid_request"
        if code == "unauthorized_client" and areq.params.get("response_type") != "code":
            # RFC 6749 §4.1.2.1: implicit and hybrid response types are not offered at all.
            code, description = "unsupported_response_type", "Only response_type=code is supported."
        elif isinstance(error, MissingCodeChallengeError):
            description = PKCE_REQUIRED
        else:
            description = str(error.description)
        raise error_to_client(areq, code, description) from None
    areq.scopes = list(scopes)
    areq.credentials = credentials
    areq.client = credentials["request"].client


def check_pushed_request(request: HttpRequest, areq: AuthorizationRequest) -> None:
    """RFC 9126 §4: `client_id` and a request_uri of ours (or, on a later round trip, the
    sealed pushed parameters) stand for the pushed request; its parameters replace whatever
    else the front channel sent. A request_uri not ours is left to check_no_request_object."""
    request_uri = areq.params.get("request_uri", "")
    if request_uri.startswith(URN_PREFIX):
        params = _pushed_params(request, areq, request_uri)
        front = {"client_id": params["client_id"]}
        front[PUSHED_PARAM] = pushed_seal(params)
    elif PUSHED_PARAM in areq.params:
        front = {
            "client_id": areq.params.get("client_id", ""),
            PUSHED_PARAM: areq.params[PUSHED_PARAM],
        }
        opened = pushed_open(front[PUSHED_PARAM], max_age=MARK_MAX_AGE)
        if opened is None or opened.get("client_id") != front["client_id"]:
            raise error_page(request, PUSHED_EXPIRED)
        marks = {name: areq.params[name] for name in _CARRIED_MARKS if name in areq.params}
        params = {**opened, **marks}
    else:
        return
    areq.params, areq.repeated, areq.front = params, frozenset(), front


def _pushed_params(
    request: HttpRequest, areq: AuthorizationRequest, request_uri: str
) -> dict[str, str]:
    """The pushed parameters behind request_uri, taken (one use), for the client named."""
    client_id = areq.params.get("client_id")
    if not client_id or areq.repeated & {"client_id", "request_uri"}:
        # RFC 9126 §4: client_id is required beside request_uri, once.
        raise error_page(request, "client_id is required, once, beside request_uri.")
    try:
        pushed = pushed_take(request_uri)
    except PushedUnavailable:
        raise Answer(
            render(
                request,
                "tokens/authorize_error.html",
                {"description": "Signing in is unavailable right now. Try again in a moment."},
                status=503,
            ),
            "temporarily_unavailable",
        ) from None
    if pushed is None:
        raise error_page(request, REQUEST_URI_UNKNOWN, "invalid_request_uri")
    if pushed.client_id != client_id:
        # RFC 9126 §4: a request_uri is bound to the client that pushed it. Its redirect URI
        # is the other client's: nothing is sent there.
        raise error_page(
            request, "The pushed request belongs to another application.", "invalid_request_uri"
        )
    if pushed.expired:
        # RFC 9126 §2.2 expires_in; the redirect URI was validated when it was pushed
        # (RFC 6749 §4.1.2.1), so the error goes back to the client.
        expired = AuthorizationRequest(params=pushed.params, client=client_by_id(client_id))
        expired.credentials = {"redirect_uri": pushed.params.get("redirect_uri", "")}
        if expired.client is None or not expired.redirect_uri:
            raise error_page(request, REQUEST_URI_UNKNOWN, "invalid_request_uri")
        raise error_to_client(expired, "invalid_request_uri", "The request_uri has expired.")
    return pushed.params


def check_par_required(request: HttpRequest, areq: AuthorizationRequest) -> None:
    # RFC 9126 §5 (require_pushed_authorization_requests) and §6 (per client): an unpushed
    # request is refused once its client and redirect URI are known.
    assert areq.client is not None
    if areq.front is None and (settings.REQUIRE_PAR or areq.client.require_par):
        raise error_to_client(areq, "invalid_request", PAR_REQUIRED)


def check_no_repeats(request: HttpRequest, areq: AuthorizationRequest) -> None:
    # RFC 6749 §3.1: request parameters must not be included more than once.
    if areq.repeated:
        # Named only when it is one of ours: a description never reflects raw input.
        ours = sorted(areq.repeated & AUTHORIZE_PARAMS)
        raise error_to_client(
            areq,
            "invalid_request",
            f"Repeated parameter: {ours[0]}." if ours else "A parameter is repeated.",
        )


def check_no_request_object(request: HttpRequest, areq: AuthorizationRequest) -> None:
    # OIDC Core §6.1, §6.2: request objects are not supported (discovery says so).
    if "request" in areq.params:
        raise error_to_client(areq, "request_not_supported", "Request objects are not supported.")
    if "request_uri" in areq.params:
        raise error_to_client(areq, "request_uri_not_supported", "request_uri is not supported.")


def check_resource(request: HttpRequest, areq: AuthorizationRequest) -> None:
    # RFC 8707 §2 / ASVS 9.2.4: a resource the client is not registered for is refused here
    # already (invalid_target), pushed or not, rather than after the person signed in and
    # consented; the token request names its resources again and is checked the same way.
    assert areq.client is not None
    resource = areq.params.get("resource")
    refusal = resource_refusal(resource, client=areq.client) if resource is not None else ""
    if refusal:
        raise error_to_client(areq, "invalid_target", refusal)


def check_response_mode(request: HttpRequest, areq: AuthorizationRequest) -> None:
    # OAuth 2.0 Multiple Response Type Encoding Practices §2.1: code comes back in the query;
    # a client asking for form_post or fragment would wait for an answer it never gets.
    mode = areq.params.get("response_mode")
    if mode is not None and mode != "query":
        raise error_to_client(
            areq, "invalid_request", "response_mode must be query (the only one supported)."
        )


def check_pkce_s256(request: HttpRequest, areq: AuthorizationRequest) -> None:
    # RFC 9700 §2.1.1: S256 only; a missing method means "plain" (RFC 7636 §4.3).
    assert areq.client is not None
    if "code_challenge" in areq.params or areq.client.require_pkce:
        if areq.params.get("code_challenge_method") != "S256":
            raise error_to_client(areq, "invalid_request", PKCE_REQUIRED)
        return
    # A confidential client registered without PKCE binds its code to the ID token's nonce
    # instead (RFC 9700 §2.1.1), so the nonce cannot be left out.
    if not areq.params.get("nonce"):
        raise error_to_client(
            areq, "invalid_request", "nonce is required: this client does not use PKCE."
        )


def check_prompt(request: HttpRequest, areq: AuthorizationRequest) -> None:
    unknown = areq.prompt - KNOWN_PROMPTS
    if unknown:
        raise error_to_client(areq, "invalid_request", PROMPT_UNSUPPORTED)
    max_age = areq.params.get("max_age")
    # OIDC Core §3.1.2.1: a number of seconds, in ASCII digits (str.isdigit() alone is true
    # of "²" and other digits int() refuses)
    if max_age is not None and not (max_age.isascii() and max_age.isdigit() and len(max_age) <= 9):
        raise error_to_client(areq, "invalid_request", "max_age must be a number of seconds.")


def check_claims_request(request: HttpRequest, areq: AuthorizationRequest) -> None:
    """OIDC Core §5.5: `claims`, a JSON object with `id_token` and `userinfo` members. Of what
    it asks, the ID token's `acr` is acted on (§5.5.1.1, check_acr); the other claims are
    released by scope, as §5.5.1 allows (a claim not returned is never an error)."""
    raw = areq.params.get("claims")
    if raw is None:
        return
    try:
        if len(raw) > MAX_CLAIMS_REQUEST:
            raise ValueError(raw)
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        raise error_to_client(areq, "invalid_request", CLAIMS_MALFORMED) from None
    if not isinstance(parsed, dict):
        raise error_to_client(areq, "invalid_request", CLAIMS_MALFORMED)
    members = [parsed.get("id_token"), parsed.get("userinfo")]
    if not all(member is None or isinstance(member, dict) for member in members):
        raise error_to_client(areq, "invalid_request", CLAIMS_MALFORMED)
    acr = (members[0] or {}).get("acr")
    if acr is None:
        return  # not asked, or asked "in the default manner" (null)
    values = (
        acr.get("values", [acr["value"]] if "value" in acr else [])
        if isinstance(acr, dict)
        else None
    )
    if (
        not isinstance(acr, dict)
        or not isinstance(acr.get("essential", False), bool)
        or not isinstance(values, list)
        or not all(isinstance(value, str) for value in values)
    ):
        raise error_to_client(areq, "invalid_request", CLAIMS_MALFORMED)
    areq.acr_claim = AcrClaim(bool(acr.get("essential", False)), tuple(values))


def _login_is_fresh_enough(areq: AuthorizationRequest, session: LoginSession) -> bool:
    """OIDC Core §3.1.2.1: prompt=login and max_age ask for a login newer than the request
    (max_age=0 means the same as prompt=login); a login made after we sent the person to
    sign in for this very request (the signed mark) satisfies both."""
    login_at = session_auth_time(session).timestamp()
    max_age = areq.params.get("max_age")
    too_old = max_age is not None and login_at < time.time() - int(max_age)
    if not too_old and not areq.prompt & {"login", "select_account"}:
        return True
    mark = areq.params.get(LOGIN_MARK)
    try:
        asked_at = signing.loads(mark, salt=LOGIN_MARK, max_age=MARK_MAX_AGE) if mark else None
    except signing.BadSignature:
        asked_at = None
    return asked_at is not None and login_at >= asked_at


def _login_redirect(areq: AuthorizationRequest, *, fresh: bool = False) -> HttpResponse:
    params = areq.carried()
    if fresh or LOGIN_MARK not in params:
        params[LOGIN_MARK] = signing.dumps(time.time(), salt=LOGIN_MARK)
    next_url = f"{reverse('tokens:authorize')}?{urlencode(params)}"
    login_url = resolve_url(settings.LOGIN_URL)  # the hosted sign-in page (apps/signin)
    # The sign-in page's hints: login_hint (OIDC Core §3.1.2.1) fills the address in or, for
    # an address in an upstream provider's domains, goes to it; idp_hint (Keycloak's
    # kc_idp_hint) names the upstream provider to go to (apps/federation).
    hints = {
        name: areq.params[name][:254]
        for name in ("login_hint", "idp_hint", "kc_idp_hint")
        if areq.params.get(name)
    }
    if "kc_idp_hint" in hints:
        hints.setdefault("idp_hint", hints.pop("kc_idp_hint"))
    if hints:
        login_url += "?" + urlencode(hints)
    return redirect_to_login(next_url, login_url)


def check_login(request: HttpRequest, areq: AuthorizationRequest) -> None:
    session = session_current(request)
    hint_sub = _id_token_hint_subject(request, areq)
    if (
        session is not None
        and _login_is_fresh_enough(areq, session)
        and (hint_sub is None or hint_sub == str(session.user_id))
    ):
        areq.session = session
        return
    if "none" in areq.prompt:
        raise error_to_client(areq, "login_required", "The user must sign in.")
    raise Answer(_login_redirect(areq))


def _id_token_hint_subject(request: HttpRequest, areq: AuthorizationRequest) -> str | None:
    hint = areq.params.get("id_token_hint")
    if not hint:
        return None
    claims = id_tokens.verify_hint(hint)
    if claims is None:
        raise error_to_client(
            areq, "invalid_request", "id_token_hint is not an ID token of this issuer."
        )
    return str(claims["sub"])


def requested_levels(areq: AuthorizationRequest) -> tuple[int, int]:
    """The level the request asks for, and the level it requires (0: none).

    OIDC Core §3.1.2.1, §5.5.1.1: `acr_values` asks for the acr claim as a voluntary claim,
    values in order of preference; any of them is acceptable to the client, so the lowest of
    ours it names is the level that satisfies it, and values we do not know are ignored. The
    same from `claims` (id_token.acr), where `essential` makes it required: a level none of
    its values names cannot be met, and is refused at once. A client registered with
    require_mfa requires the MFA level on every authorization.
    """
    assert areq.client is not None
    asked = _lowest_known(areq.params.get("acr_values", "").split())
    required = LEVEL_MFA if areq.client.require_mfa else 0
    claim = areq.acr_claim
    if claim is not None and claim.values:
        level = _lowest_known(list(claim.values))
        if claim.essential:
            if not level:
                raise error_to_client(
                    areq,
                    "unmet_authentication_requirements",
                    "None of the essential acr values is one this server supports.",
                )
            required = max(required, level)
        asked = max(asked, level)
    return max(asked, required), required


def _lowest_known(values: list[str]) -> int:
    known = [level for level in map(acr_level, values) if level is not None]
    return min(known, default=0)


def token_acr(areq: AuthorizationRequest) -> str:
    """The ID token's acr: the session's, unless `claims` asked for it essential with values
    (OIDC Core §5.5.1.1: then one of them), the strongest the session's level satisfies."""
    assert areq.session is not None
    claim = areq.acr_claim
    if claim is None or not claim.essential or not claim.values:
        return ""
    levels = {value: acr_level(value) for value in claim.values}
    met = {
        level: value
        for value, level in levels.items()
        if level is not None and level <= areq.session.security_level
    }
    return met[max(met)] if met else ""


def _stepped_up_before(areq: AuthorizationRequest) -> bool:
    mark = areq.params.get(STEP_UP_MARK)
    if not mark:
        return False
    try:
        return bool(signing.loads(mark, salt=STEP_UP_MARK, max_age=MARK_MAX_AGE))
    except signing.BadSignature:
        return False


def check_acr(request: HttpRequest, areq: AuthorizationRequest) -> None:
    """A session below the level the request needs goes to step-up: the sign-in page, asked
    for the missing factor (`step_up=<acr>`), then this request again; not a new login.

    Once back from it (the signed mark) and still below: a voluntary acr is left unmet and
    the ID token's acr says what the session proves (OIDC Core §5.5.1.1); a required level
    is refused with unmet_authentication_requirements (OpenID Connect Core Error Code
    unmet_authentication_requirements 1.0 §2). With prompt=none nothing may be shown:
    login_required (OIDC Core §3.1.2.6).
    """
    assert areq.session is not None
    wanted, required = requested_levels(areq)
    if areq.session.security_level >= wanted:
        return
    if "none" in areq.prompt:
        raise error_to_client(
            areq, "login_required", "The user must authenticate with a stronger method."
        )
    if _stepped_up_before(areq):
        if areq.session.security_level >= required:
            return
        raise error_to_client(
            areq,
            "unmet_authentication_requirements",
            "This application requires multi-factor authentication.",
        )
    params = areq.carried()
    params[STEP_UP_MARK] = signing.dumps(True, salt=STEP_UP_MARK)
    next_url = f"{reverse('tokens:authorize')}?{urlencode(params)}"
    login_url = resolve_url(settings.LOGIN_URL)
    login_url += "?" + urlencode({STEP_UP_PARAM: LEVEL_ACR[wanted]})
    raise Answer(redirect_to_login(next_url, login_url))


def check_offline_access(request: HttpRequest, areq: AuthorizationRequest) -> None:
    # OIDC Core §11: offline_access needs prompt=consent, unless the person already allowed
    # it this client; otherwise the request for it is ignored (not refused).
    if OFFLINE_ACCESS not in areq.scopes or "consent" in areq.prompt:
        return
    if OFFLINE_ACCESS not in areq.consented:
        areq.scopes.remove(OFFLINE_ACCESS)


def check_consent(request: HttpRequest, areq: AuthorizationRequest) -> None:
    assert areq.client is not None
    assert areq.session is not None
    if areq.client.skip_authorization and "consent" not in areq.prompt:
        return  # first-party client
    if "consent" not in areq.prompt and set(areq.scopes) <= areq.consented:
        return
    if "none" in areq.prompt:
        raise error_to_client(areq, "consent_required", "The user must approve this client.")
    blob = signing.dumps(areq.carried(), salt=CONSENT_SALT, compress=True)
    context = {
        "client": areq.client,
        "scopes": describe_scopes(areq.scopes),
        "request_blob": blob,
        "redirect_origin": redirect_origin(areq.redirect_uri),
        # An application that named the person (id_token_hint) asked for that person only.
        "can_switch_account": "id_token_hint" not in areq.params,
    }
    # The consent form's answer is a redirect to the client (CSP form-action, Chromium).
    raise Answer(leave_form_action_open(render(request, "tokens/consent.html", context)))


def continuation_redirect_uri(next_url: str) -> str | None:
    """The redirect URI a sign-in page's `next` ends at when it is an authorization request
    of ours whose redirect URI is registered for its client (OAuth 2.0 §3.1.2.3: the one
    registered, when the request names none); else None. The port settings.CSP_CONTINUATION
    names: such a sign-in page's forms end at the client (apps/core/security_headers.py)."""
    try:
        parts = urlsplit(next_url)
    except ValueError:
        return None
    if parts.scheme or parts.netloc or parts.path != reverse("tokens:authorize"):
        return None
    query = QueryDict(parts.query)
    client = client_by_id(query.get("client_id", ""))
    if client is None:
        return None
    uri = query.get("redirect_uri", "")
    if not uri:
        return str(client.default_redirect_uri or "") or None
    return uri if client.redirect_uri_allowed(uri) else None


def redirect_origin(uri: str) -> str:
    """Where the answer sends the browser, as people read it: scheme://host[:port] of the
    validated redirect URI (RFC 6454 §4), or for a native app's private-use scheme (RFC 8252
    §7.1) the URI without its query."""
    parts = urlsplit(uri)
    if not parts.hostname:
        return uri.split("?", 1)[0].split("#", 1)[0]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def describe_scopes(scopes: list[str]) -> list[tuple[str, str]]:
    known = settings.SCOPES
    return [(scope, known.get(scope, scope)) for scope in scopes]


Check = Callable[[HttpRequest, AuthorizationRequest], None]


# The checks that need no browser: the pushed request endpoint runs them too (RFC 9126 §2.1).
def check_dpop_jkt(request: HttpRequest, areq: AuthorizationRequest) -> None:
    """RFC 9449 §10: dpop_jkt, when sent, is a JWK SHA-256 thumbprint (RFC 7638 §3: 43
    base64url characters); the code is then redeemed only with a DPoP proof of that key."""
    dpop_jkt = areq.params.get("dpop_jkt")
    if dpop_jkt is not None and not _JKT.fullmatch(dpop_jkt):
        raise error_to_client(
            areq, "invalid_request",
            "dpop_jkt must be the base64url SHA-256 JWK thumbprint of the DPoP key (RFC 9449 "
            "section 10).",
        )  # fmt: skip


_JKT = re.compile(r"[A-Za-z0-9_-]{43}")
REQUEST_CHECKS: list[Check] = [
    check_oauth_request,
    check_no_repeats,
    check_no_request_object,
    check_resource,
    check_response_mode,
    check_pkce_s256,
    check_prompt,
    check_claims_request,
    check_dpop_jkt,
]
CHECKS: list[Check] = [
    check_pushed_request,
    *REQUEST_CHECKS,
    check_par_required,
    check_login,
    check_acr,
    check_offline_access,
    check_consent,
]


def issue_code(request: HttpRequest, areq: AuthorizationRequest) -> HttpResponse:
    """RFC 6749 §4.1.2: every check has passed (oauthlib's among them, check_oauth_request),
    so the code is issued here rather than by oauthlib's create_authorization_response, which
    validated the whole request a second time (about 6.5 ms of a sign-in's CPU, measured by
    benchmarks/signin.py's in-process profile)."""
    assert areq.session is not None
    assert areq.client is not None
    credentials = areq.credentials
    code = code_issue(
        client=areq.client,
        session=areq.session,
        redirect_uri=str(credentials["redirect_uri"]),
        scopes=areq.scopes,
        code_challenge=str(credentials.get("code_challenge") or ""),
        code_challenge_method=str(credentials.get("code_challenge_method") or ""),
        nonce=str(credentials.get("nonce") or ""),
        acr=token_acr(areq),
        dpop_jkt=areq.params.get("dpop_jkt", ""),
    )
    return redirect_to_client(areq, {"code": code})


def authorize(request: HttpRequest, query: QueryDict) -> HttpResponse:
    """The authorization request from a query string or a form (OIDC Core §3.1.2.1)."""
    areq = AuthorizationRequest(
        params={key: str(query[key]) for key in query},
        repeated=frozenset(key for key in query if len(query.getlist(key)) > 1),
    )
    try:
        for check in CHECKS:
            check(request, areq)
        return issue_code(request, areq)
    except Answer as answer:
        return answer.response


CONSENT_EXPIRED = "This approval page has expired. Start signing in again."


def validate_pushed(
    request: HttpRequest, params: dict[str, str], *, repeated: frozenset[str]
) -> tuple[str, str] | None:
    """RFC 9126 §2.1: a pushed request's parameters checked as an authorization request is
    (REQUEST_CHECKS); the refusal's error and description, or None when they pass."""
    areq = AuthorizationRequest(params=params, repeated=repeated)
    try:
        for check in REQUEST_CHECKS:
            check(request, areq)
    except Answer as answer:
        return answer.error, describe(answer.error, answer.description)
    return None


def consent_request(blob: str) -> dict[str, str] | None:
    """The authorization request the consent form carries, None if forged or expired."""
    try:
        params: dict[str, str] = signing.loads(blob, salt=CONSENT_SALT, max_age=600)
    except signing.BadSignature:
        return None
    return params


def switch_account_login(params: dict[str, str]) -> HttpResponse:
    """ "Not you?": after the current login session has ended (the caller ends it), the
    sign-in page, then the same authorization request again for whoever signs in. The login
    hint named the previous person, so it is left out (OIDC Core §3.1.2.1: a hint only)."""
    params = {key: value for key, value in params.items() if key != "login_hint"}
    if PUSHED_PARAM in params:  # the pushed request's hint is inside its signed parameters
        pushed = pushed_open(params[PUSHED_PARAM], max_age=MARK_MAX_AGE)
        if pushed is not None:  # else the resumed request finds it expired and says so
            pushed.pop("login_hint", None)
            params[PUSHED_PARAM] = pushed_seal(pushed)
    return _login_redirect(AuthorizationRequest(params=params), fresh=True)


def consent_decision(request: HttpRequest, blob: str, allow: bool) -> HttpResponse:
    """The consent form's answer: re-run every check but consent, then issue or deny."""
    params = consent_request(blob)
    if params is None:
        return refusal_page(request, CONSENT_EXPIRED)
    areq = AuthorizationRequest(params=params)
    try:
        for check in CHECKS:
            if check is not check_consent:  # this is the consent's answer
                check(request, areq)
        assert areq.session is not None
        assert areq.client is not None
        if not allow:
            raise error_to_client(areq, "access_denied", "The user did not approve this client.")
        consent_grant(user_id=areq.session.user_id, client=areq.client, scopes=areq.scopes)
        return issue_code(request, areq)
    except Answer as answer:
        return answer.response
