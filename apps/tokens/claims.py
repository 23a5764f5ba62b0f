"""What Tessera's tokens say: the RFC 9068 access-token claim set and its signing.

Access tokens carry the authorization picture a resource server needs without a call back
(organizations, workspaces, groups, permissions) plus the login session (`sid`) they belong
to, so revoking the session revokes them.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from django.conf import settings
from django.urls import reverse

from apps.accounts.models import User
from apps.accounts.selectors import user_token_claims
from apps.core import request_context
from apps.keys import keys
from apps.keys.jose import jws_sign
from apps.sessions.models import LoginSession
from apps.sessions.services import session_auth_time

# Raised when the claim set changes shape; validators refuse older versions (settings).
ACCESS_TOKEN_VERSION = 1
ACCESS_TOKEN_TYPE = "at+jwt"  # RFC 9068 §2.1 header typ


def new_jti() -> str:
    return secrets.token_urlsafe(16)  # 128 bits


# OIDC Core §5.4: the scope that releases each profile claim.
PROFILE_CLAIM_SCOPES = {"email": "email", "email_verified": "email", "name": "profile"}
# The profile claims an access token carries, by the same rule (email_verified stays with
# userinfo and the ID token: a resource server asks the person's address, not its proof).
ACCESS_TOKEN_PROFILE_CLAIMS = ("email", "name")


def profile_claims(user: User, scopes: list[str]) -> dict[str, Any]:
    """The user's claims that `scopes` release, for the ID token and userinfo alike."""
    claims = {"email": user.email, "email_verified": user.email_verified, "name": user.name}
    return {name: value for name, value in claims.items() if PROFILE_CLAIM_SCOPES[name] in scopes}


def authentication_claims(session: LoginSession) -> dict[str, Any]:
    """OIDC Core §2 (ID token) and RFC 9068 §2.2.1 (access token): when and how the person
    authenticated in this session (apps.sessions.levels reads amr as acr)."""
    return {
        "auth_time": int(session_auth_time(session).timestamp()),
        "acr": session.acr,
        "amr": session.amr,
    }


def access_token_claims(
    *,
    client_id: str,
    user: User | None,
    scopes: list[str],
    session: LoginSession | None,
    audience: list[str],
    refreshed: bool,
    offline: bool = False,
    cnf: dict[str, str] | None = None,
) -> dict[str, Any]:
    """RFC 9068 §2.2 claims plus Tessera's product claims, with their exact names.

    What describes the person is released by scope, as userinfo releases it (OIDC Core §5.4:
    `email` with email, `name` with profile); the authorization picture (orgs, workspaces,
    groups, perms) and the security context (sid, did, ver, login_at, refresh_at) always;
    with a person, how they authenticated (RFC 9068 §2.2.1: auth_time, acr, amr, as the ID
    token says them, so a resource server can demand a level without a call back).
    A token of an offline grant (OIDC Core §11) carries no `sid`: it belongs to the grant,
    which outlives the sign-in, and is revoked with the grant (by jti), not with the session.
    """
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.ISSUER,
        # RFC 9068 §2.2: without a user (client_credentials) the subject is the client.
        "sub": str(user.pk) if user else client_id,
        "aud": audience[0] if len(audience) == 1 else audience,
        "exp": now + settings.ACCESS_TOKEN_LIFETIME,
        "iat": now,
        "nbf": now,
        "jti": new_jti(),
        "client_id": client_id,
        "scope": " ".join(scopes),
        "typ": "access",
        "ver": ACCESS_TOKEN_VERSION,
        # The login session's device (apps.sessions.binding); "" for a login without one.
        "did": session.device_id if session else "",
        "sid": str(session.pk) if session and not offline else None,
        "login_at": int(session.created_at.timestamp()) if session else None,
        "refresh_at": now if refreshed else None,
    }
    if session is not None:
        claims.update(authentication_claims(session))
    if cnf:  # RFC 7800 §3.1, RFC 8705 §3.1, RFC 9449 §6.1: the key or certificate it is bound to
        claims["cnf"] = cnf
    if settings.ACCESS_TOKEN_IP_CLAIM:  # personal data: only when the operator asks for it
        context = request_context.current()
        claims["ip"] = context.client_ip if context else None
    if user is None:
        claims.update(uid=None, provider=None, orgs=[], workspaces=[], groups=[], perms=[])
        return claims
    released = profile_claims(user, scopes)
    claims.update(
        {name: released[name] for name in ACCESS_TOKEN_PROFILE_CLAIMS if name in released}
    )
    claims.update(uid=str(user.pk), provider=session.provider if session else "local")
    claims.update(user_token_claims(user=user))
    return bounded(claims)


# What a token over ACCESS_TOKEN_MAX_BYTES leaves out, in this order, until it fits.
AUTHZ_DETAIL = ("workspaces", "groups", "perms", "orgs")
AUTHZ_SOURCE = "authz"
# Room for the JWS header segment, the two dots and the signature: an RS256 (2048-bit)
# signature is 342 base64url characters, our header about 110.
JWS_OVERHEAD = 512


def bounded(claims: dict[str, Any]) -> dict[str, Any]:
    """The claims, fitting ACCESS_TOKEN_MAX_BYTES once signed (a person in 500 workspaces
    would otherwise send a 60 KB header, which servers refuse). Over it, the authorization
    detail goes, most voluminous first, and the token says so: `authz_truncated: true`, and
    what is missing where, as OIDC Core §5.6.2 distributed claims (`_claim_names` →
    `_claim_sources`) name it, as Microsoft Entra ID's group-overage claim does; the source
    is our userinfo endpoint, which returns the full picture (as JSON) to this token."""
    budget = (settings.ACCESS_TOKEN_MAX_BYTES - JWS_OVERHEAD) * 3 // 4  # base64url: 4 per 3
    if _json_size(claims) <= budget:
        return claims
    claims = dict(claims)
    claims["authz_truncated"] = True
    claims["_claim_names"] = {}
    claims["_claim_sources"] = {
        AUTHZ_SOURCE: {"endpoint": settings.ISSUER + reverse("tokens:userinfo")}
    }
    for name in AUTHZ_DETAIL:
        del claims[name]
        claims["_claim_names"][name] = AUTHZ_SOURCE
        if _json_size(claims) <= budget:
            break
    return claims


# One more serialization per token: measured 49 µs for a 1.6 KB claim set on the shared
# 2-core test machine, against milliseconds for the token endpoint's statements and signing.
def _json_size(claims: dict[str, Any]) -> int:
    return len(json.dumps(claims, separators=(",", ":")).encode())  # as jose.jws_sign encodes


def sign(claims: dict[str, Any], *, alg: str, typ: str) -> str:
    """A compact JWS with the key that signs `alg` now (apps.keys.jose: measured cheaper
    than PyJWT's encode)."""
    key = keys.signing_key(alg)
    return jws_sign(claims, private_key=key.private_key, alg=key.alg, kid=key.kid, typ=typ)
