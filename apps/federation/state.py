"""A started upstream sign-in, kept server-side in Redis until its callback (issue 17).

What the callback needs — the provider, the PKCE verifier (RFC 7636 §4.1), the nonce (OIDC Core
§3.1.2.1), the original authorization request or page to return to, and, for a link from the
security page, the person — is stored under the SHA-256 of `state` with a TTL
(FEDERATION_STATE_SECONDS) and taken with one GETDEL, so a callback is honoured once: a replay,
a forged or expired state finds nothing (RFC 6749 §10.12, RFC 9700 §4.7.1: CSRF on the
redirection endpoint). The record is bound to this browser: its hash of a random cookie set
when the sign-in began must match the cookie the callback brings, so a state handed to
another browser (login CSRF, a victim made to finish the attacker's sign-in) is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

from apps.core.redis import get_redis

_KEY = "tessera:fed:state:"
COOKIE = "tessera_federation"
COOKIE_PATH = "/login/federated/"
MAX_STATE = 128  # characters of a `state` looked at; ours are 43
SIGN_IN, LINK = "signin", "link"


class StateUnavailable(Exception):
    """Redis could not be reached: no sign-in can begin or finish (fail closed)."""


@dataclass(frozen=True)
class FlowState:
    provider_id: str
    provider_slug: str
    code_verifier: str
    nonce: str
    next_url: str  # our own page or authorization request (checked when the flow began)
    mode: str  # SIGN_IN, or LINK from the security page
    user_id: str  # LINK: the signed-in person it began for
    browser: str  # SHA-256 of this browser's COOKIE
    started: float  # epoch seconds
    login_hint: str = ""


def browser_token(request: HttpRequest) -> str:
    """This browser's binding token: the one it has, or a new one (set by `bind_browser`)."""
    token = request.COOKIES.get(COOKIE, "")
    if len(token) == 43 and token.replace("-", "").replace("_", "").isalnum():
        return token
    return secrets.token_urlsafe(32)


def bind_browser(response: HttpResponse, request: HttpRequest, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=settings.FEDERATION_STATE_SECONDS,
        path=COOKIE_PATH,
        secure=request.is_secure() or settings.SESSION_COOKIE_SECURE,
        httponly=True,
        # Lax: sent on the upstream's top-level redirect back to the callback (a GET), not
        # on a cross-site subrequest.
        samesite="Lax",
    )


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def state_begin(
    *,
    provider_id: str,
    provider_slug: str,
    next_url: str,
    browser: str,
    mode: str = SIGN_IN,
    user_id: str = "",
    login_hint: str = "",
) -> tuple[str, FlowState]:
    """A new `state` (256 random bits) and its record, stored with its TTL."""
    state = secrets.token_urlsafe(32)
    record = FlowState(
        provider_id=provider_id,
        provider_slug=provider_slug,
        code_verifier=secrets.token_urlsafe(64)[:96],  # RFC 7636 §4.1: 43 to 128 characters
        nonce=secrets.token_urlsafe(32),
        next_url=next_url,
        mode=mode,
        user_id=user_id,
        browser=_digest(browser),
        started=time.time(),
        login_hint=login_hint,
    )
    try:
        get_redis().set(
            _KEY + _digest(state), json.dumps(asdict(record)), ex=settings.FEDERATION_STATE_SECONDS
        )
    except RedisError as error:
        raise StateUnavailable(str(error)) from None
    return state, record


def state_take(state: str) -> FlowState | None:
    """The record of `state`, deleted as it is read; None when there is none (never issued,
    used already, or expired) or it cannot be read."""
    if not state or len(state) > MAX_STATE:
        return None
    try:
        raw = get_redis().getdel(_KEY + _digest(state))
    except RedisError as error:
        raise StateUnavailable(str(error)) from None
    if raw is None:
        return None
    try:
        record = FlowState(**json.loads(raw))
    except (ValueError, TypeError):
        return None
    if time.time() - record.started > settings.FEDERATION_STATE_SECONDS:
        return None
    return record


def same_browser(record: FlowState, request: HttpRequest) -> bool:
    token = request.COOKIES.get(COOKIE, "")
    return bool(token) and hmac.compare_digest(record.browser, _digest(token))
