"""Issuance, shared by every grant that acts for a person: the RFC 9068 access token, the
rotated refresh token, the ID token (OIDC Core §3.1.3.3, §12.2), their rows and the event,
in one transaction. client_credentials issues no rows (grants/client_credentials.py)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import set_token_value

from apps.accounts.models import User
from apps.core.commit import after_commit
from apps.core.events import EventType, emit
from apps.sessions.models import LoginSession
from apps.sessions.services import session_client_record, session_is_live
from apps.tokens import services
from apps.tokens.activity import activity_report
from apps.tokens.binding import UNBOUND, Binding
from apps.tokens.claims import (
    ACCESS_TOKEN_TYPE,
    access_token_claims,
    authentication_claims,
    profile_claims,
    sign,
)
from apps.tokens.models import AccessToken, Client, RefreshToken


@dataclass(frozen=True)
class Issuance:
    """What a grant handler decided: who gets what, under which sign-in and authorization."""

    grant_type: str
    client: Client
    user: User
    session: LoginSession | None
    scopes: list[str]
    family: uuid.UUID
    audience: list[str]
    offline: bool = False  # OIDC Core §11: the refresh chain is an offline grant
    nonce: str = ""  # OIDC Core §3.1.3.6: the authorization request's, for a code's ID token
    # OIDC Core §5.5.1.1: the ID token's acr when asked essential with values ("": the session's)
    acr: str = ""
    previous: RefreshToken | None = None  # the refresh token this rotates (refresh grant)
    binding: Binding = UNBOUND  # what the token request proved possession of (binding.py)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits (RFC 6749 §10.10: infeasible to guess)


def tokens_issue(issuance: Issuance) -> dict[str, object]:
    """The RFC 6749 §5.1 answer: an access token, a refresh token when the client is
    registered for the refresh grant, and an ID token when `openid` was granted."""
    refreshed = issuance.previous is not None
    claims = access_token_claims(
        client_id=issuance.client.client_id,
        user=issuance.user,
        scopes=issuance.scopes,
        session=issuance.session,
        audience=issuance.audience,
        refreshed=refreshed,
        offline=issuance.offline,
        cnf=issuance.binding.cnf(),
    )
    access_token = sign(claims, alg=settings.ACCESS_TOKEN_ALG, typ=ACCESS_TOKEN_TYPE)
    scope = " ".join(issuance.scopes)
    answer: dict[str, object] = {
        "access_token": access_token,
        "expires_in": settings.ACCESS_TOKEN_LIFETIME,
        "token_type": issuance.binding.token_type,
        "scope": scope,
    }
    # Joins the handler's transaction (its claim of the code or refresh token) when there is
    # one: a savepoint would cost two more statements per token.
    with transaction.atomic(savepoint=False):
        access = AccessToken(
            user=issuance.user,
            scope=scope,
            expires=timezone.now() + timedelta(seconds=settings.ACCESS_TOKEN_LIFETIME),
            application=issuance.client,
            source_refresh_token=issuance.previous,
            jti=claims["jti"],
            session=issuance.session,
            token_family=issuance.family,
        )
        set_token_value(access, access_token)
        access.save(force_insert=True)
        if "refresh_token" in issuance.client.grant_type_set:
            answer["refresh_token"] = _refresh_token_create(issuance, access)
        if issuance.grant_type == "authorization_code" and issuance.session is not None:
            # Who to tell when the session ends (logout propagation); a refresh keeps the
            # session and client of its code's exchange.
            session_client_record(session=issuance.session, client_id=issuance.client.client_id)
        if issuance.offline and refreshed:
            services.offline_grant_used(family=issuance.family)
        emit(
            EventType.TOKEN_REFRESHED if refreshed else EventType.TOKEN_ISSUED,
            user_id=issuance.user.pk,
            session_id=issuance.session.pk if issuance.session else None,
            resource_type="client",
            resource_id=issuance.client.client_id,
            metadata={"grant_type": issuance.grant_type, "scope": scope, "jti": claims["jti"]},
        )
    if "openid" in issuance.scopes:
        answer["id_token"] = _id_token(issuance, access_token)
    _report_activity(issuance)
    return answer


def _report_activity(issuance: Issuance) -> None:
    """A public client's code exchange or refresh comes from the person's own device (a
    native app, a browser application): session activity that threat scoring judges later
    (apps/tokens/activity.py), handed over once the tokens are committed. A confidential
    client calls from its own servers, whose address says nothing of the person's."""
    if issuance.client.client_type != Client.CLIENT_PUBLIC:
        return
    session = issuance.session
    after_commit(
        activity_report,
        kind="refresh" if issuance.previous is not None else "code",
        user_id=issuance.user.pk,
        session_id=session.pk if session is not None else None,
        session_ip=session.ip_address if session is not None else None,
        client_id=issuance.client.client_id,
        family=issuance.family,
        public_client=True,
    )


def tokens_issue_claimed(claim: Callable[[], bool], issuance: Issuance) -> dict[str, object] | None:
    """tokens_issue() once `claim` (spending the code, rotating the refresh token) succeeds,
    committing both together: a concurrent second use waits on the claimed row, then finds it
    spent (None here) and revokes what the first issued."""
    with transaction.atomic():
        return tokens_issue(issuance) if claim() else None


def _refresh_token_create(issuance: Issuance, access: AccessToken) -> str:
    if issuance.previous is not None:
        family_expires_at: datetime = issuance.previous.family_expires_at
    elif issuance.offline:  # OIDC Core §11: the first token of an offline grant
        grant = services.offline_grant_create(
            family=issuance.family,
            user=issuance.user,
            client=issuance.client,
            session=issuance.session,
            scope=" ".join(issuance.scopes),
        )
        family_expires_at = grant.expires_at
    else:
        family_expires_at = timezone.now() + timedelta(seconds=settings.REFRESH_TOKEN_LIFETIME)
    value = new_refresh_token()
    # RFC 9449 §5 / RFC 8705 §4: a public client's refresh token is bound to what its token
    # request proved (a confidential client's is bound by its own authentication).
    bound = issuance.binding if issuance.client.client_type == Client.CLIENT_PUBLIC else UNBOUND
    refresh = RefreshToken(
        user=issuance.user,
        application=issuance.client,
        access_token=access,
        token_family=issuance.family,
        session=issuance.session,
        family_expires_at=family_expires_at,
        offline=issuance.offline,
        cnf_jkt=bound.jkt,
        cnf_x5t_s256=bound.x5t_s256,
    )
    set_token_value(refresh, value)  # RFC 9700 §4: stored as its SHA-256 only
    refresh.save(force_insert=True)
    return value


# OIDC Core §3.1.3.6: at_hash uses the hash of the ID token's alg; for EdDSA (Ed25519) the
# OpenID Foundation's registration of EdDSA says SHA-512, as node-oidc-provider does.
_AT_HASH = {"RS256": hashlib.sha256, "ES256": hashlib.sha256, "EdDSA": hashlib.sha512}


def at_hash(access_token: str, alg: str) -> str:
    digest = _AT_HASH[alg](access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def _id_token(issuance: Issuance, access_token: str) -> str:
    """OIDC Core §2 and §3.1.3.6; on a refresh §12.2: the same auth_time, no nonce. A refresh
    of an offline grant after its sign-in ended says no sid: the relying party was told that
    session is over (Back-Channel Logout 1.0)."""
    alg = issuance.client.id_token_signed_response_alg
    now = int(time.time())
    session = issuance.session
    claims: dict[str, Any] = {
        "iss": settings.ISSUER,
        "sub": str(issuance.user.pk),
        "aud": issuance.client.client_id,
        "exp": now + settings.ID_TOKEN_LIFETIME,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "at_hash": at_hash(access_token, alg),
        **profile_claims(issuance.user, issuance.scopes),
    }
    if session is not None:
        claims.update(authentication_claims(session))
        if issuance.acr:
            claims["acr"] = issuance.acr
        if session_is_live(session):
            claims["sid"] = str(session.pk)
    if issuance.nonce:
        claims["nonce"] = issuance.nonce
    return sign(claims, alg=alg, typ="JWT")
