from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from oauth2_provider.validators import AllowedURIValidator

from apps.accounts.models import User
from apps.core import revocation
from apps.core.events import EventType, emit
from apps.sessions.models import LoginSession
from apps.sessions.services import session_end_all, session_is_live
from apps.tokens import mtls
from apps.tokens.binding import Binding
from apps.tokens.models import (
    DOT_GRANT_NAMES,
    AccessToken,
    Client,
    Consent,
    Grant,
    OfflineGrant,
    RefreshToken,
    offline_idle_since,
)
from apps.tokens.resources import check_allowed_resources
from apps.tokens.scopes import check_allowed_scopes, default_allowed_scopes
from apps.tokens.validation import InvalidToken, validate_access_token


def token_checksum(token: str) -> str:
    """How tokens are stored and looked up (RFC 9700 §4: never in clear)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _revoke_access_tokens(tokens: Any) -> None:
    """Deletes the rows and lists each live jti: a JWT needs the list to die early."""
    now = timezone.now()
    for jti, expires in tokens.values_list("jti", "expires"):
        revocation.revoke_jti(jti, expires_in=int((expires - now).total_seconds()))
    tokens.delete()


# Token lookups, by the fields an offline grant spells them with.
_GRANT_FIELDS = {"token_family": "id", "application": "client", "user_id": "user_id"}


def _revoke_tokens(*, reason: str, **lookup: Any) -> int:
    """Every refresh and access token matching `lookup` (one authorization's token_family, or
    a user's tokens for a client), and the offline grants they make up; returns how many of
    those grants this ended."""
    now = timezone.now()
    RefreshToken.objects.filter(revoked__isnull=True, **lookup).update(revoked=now)
    _revoke_access_tokens(AccessToken.objects.filter(**lookup))
    grants = {_GRANT_FIELDS[field]: value for field, value in lookup.items()}
    ended: int = OfflineGrant.objects.filter(revoked_at__isnull=True, **grants).update(
        revoked_at=now, revoke_reason=reason
    )
    return ended


def client_tokens_revoke(*, client: Client) -> None:
    """Every token of the client (before it is deleted: the cascade would drop the rows but
    leave the JWTs valid until they expire)."""
    _revoke_tokens(application=client, reason="client_deleted")


def client_access_tokens_revoke(*, client: Client) -> None:
    """The client's stored access tokens, on the revocation list (a disabled client's)."""
    _revoke_access_tokens(AccessToken.objects.filter(application=client))


def token_family_revoke(*, family: uuid.UUID | None, reason: str) -> None:
    """RFC 9700 §4.14.2 / RFC 6749 §4.1.2: a replayed code or refresh token kills every token
    issued from the same authorization, and says so in a security event."""
    if family is None:
        return
    with transaction.atomic():
        sample = (
            RefreshToken.objects.filter(token_family=family).select_related("application").first()
        )
        _revoke_tokens(token_family=family, reason=reason)
        emit(
            EventType.TOKEN_REUSE_DETECTED,
            user_id=sample.user_id if sample else None,
            session_id=sample.session_id if sample else None,
            resource_type="token_family",
            resource_id=family,
            success=False,
            metadata={
                "reason": reason,
                "client_id": sample.application.client_id if sample else "",
            },
        )


def token_family_goes_on(family: uuid.UUID | None) -> bool:
    """Whether the grant a spent refresh token belongs to still has a live one: then the
    spent one was rotated away and came back (a replay, RFC 9700 §4.14.2); otherwise the
    whole grant was revoked (logout of an offline grant, RFC 7009, consent, an operator)
    and the client is only late to learn it."""
    return bool(RefreshToken.objects.filter(token_family=family, revoked__isnull=True).exists())


def refresh_token_refusal(token: RefreshToken) -> str:
    """Why an unrevoked refresh token may no longer be used (its absolute lifetime, its
    login session, or for an offline grant its idle timeout), or "" when it may."""
    now = timezone.now()
    if token.family_expires_at <= now:
        return "The refresh token has reached the end of its lifetime; sign in again."
    if token.offline:  # OIDC Core §11: the grant outlives the sign-in, not its own limits
        # the chain's newest token was issued at its last use (OfflineGrant.last_used_at)
        if token.created <= offline_idle_since(now):
            return "The offline grant went unused for too long and has ended; sign in again."
        return ""
    if token.session_id is not None and not session_is_live(token.session, now=now):
        return "The sign-in this refresh token belongs to has ended; sign in again."
    return ""


def offline_grant_create(
    *,
    family: uuid.UUID,
    user: User,
    client: Client,
    session: LoginSession | None,
    scope: str,
) -> OfflineGrant:
    """OIDC Core §11: the offline grant a code exchange with offline_access begins, in the
    transaction that stores its first refresh token."""
    now = timezone.now()
    grant = OfflineGrant.objects.create(
        id=family,
        user=user,
        client=client,
        session=session,
        scope=scope,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(seconds=settings.OFFLINE_ACCESS_LIFETIME),
    )
    emit(
        EventType.OFFLINE_ACCESS_GRANTED,
        user_id=user.pk,
        session_id=session.pk if session else None,
        resource_type="offline_grant",
        resource_id=grant.pk,
        metadata={"client_id": client.client_id, "scope": scope},
    )
    return grant


def offline_grant_used(*, family: uuid.UUID) -> None:
    """A refresh of the grant: it was used now (its idle timeout starts again)."""
    OfflineGrant.objects.filter(pk=family).update(last_used_at=timezone.now())


def offline_grant_revoke(*, grant: OfflineGrant, reason: str, actor_id: object = None) -> bool:
    """Ends one offline grant: its refresh token is refused and its access tokens go on the
    revocation list. False when it had already ended."""
    with transaction.atomic():
        if not _revoke_tokens(token_family=grant.pk, reason=reason):
            return False
        emit(
            EventType.OFFLINE_ACCESS_REVOKED,
            user_id=grant.user_id,
            actor_id=actor_id,
            resource_type="offline_grant",
            resource_id=grant.pk,
            metadata={"reason": reason, "client_id": grant.client.client_id},
        )
    return True


def offline_grants_revoke_all(
    *, user: User, reason: str, actor_id: object = None, session: LoginSession | None = None
) -> int:
    """Ends every live offline grant of the person (only those given in `session`, when
    named); returns how many ended."""
    grants = OfflineGrant.objects.live().filter(user=user)
    if session is not None:
        grants = grants.filter(session=session)
    live = list(grants.select_related("client"))
    return sum(offline_grant_revoke(grant=g, reason=reason, actor_id=actor_id) for g in live)


@dataclass(frozen=True)
class AccessRevoked:
    sessions_ended: int
    offline_grants_revoked: int


def user_access_revoke_all(*, user: User, reason: str, actor_id: object = None) -> AccessRevoked:
    """Revoke everything a person holds: every login session (with the tokens issued under
    it) and every offline grant. For an operator's "revoke everything", a deactivated or
    erased account and a changed password (OWASP ASVS 3.3.3)."""
    with transaction.atomic():
        sessions = session_end_all(user=user, reason=reason, actor_id=actor_id)
        grants = offline_grants_revoke_all(user=user, reason=reason, actor_id=actor_id)
    return AccessRevoked(sessions_ended=sessions, offline_grants_revoked=grants)


def user_access_tokens_revoke(*, user_id: object, reason: str, actor_id: object = None) -> int:
    """Lists the jti of each of the person's live access tokens (core.revocation's
    UserAccessRevoker port), so they are refused within a second; returns how many. By jti,
    not by login session (sid): the person keeps their sessions and refresh tokens, and the
    next refreshed token, with a new jti, carries what they may do now; a revoked sid would
    refuse those too until ACCESS_TOKEN_LIFETIME passed. Offline-grant tokens (no sid) are
    covered as well."""
    now = timezone.now()
    live = list(
        AccessToken.objects.filter(user_id=user_id, expires__gt=now).values_list("jti", "expires")
    )
    for jti, expires in live:
        revocation.revoke_jti(jti, expires_in=int((expires - now).total_seconds()))
    if live:
        emit(
            EventType.TOKEN_REVOKED,
            user_id=user_id,
            actor_id=actor_id,
            resource_type="user",
            resource_id=user_id,
            metadata={"reason": reason, "access_tokens": len(live)},
        )
    return len(live)


def token_revoke(*, token: str, client: Client) -> None:
    """RFC 7009 §2.1: revoke a token this client holds; unknown tokens are not an error.
    Revoking an access token also revokes the refresh token it came with, and vice versa."""
    checksum = token_checksum(token)
    with transaction.atomic():
        access = AccessToken.objects.filter(token_checksum=checksum, application=client).first()
        refresh = RefreshToken.objects.filter(
            token_checksum=checksum, application=client, revoked__isnull=True
        ).first()
        if access is None and refresh is None:
            _revoke_unstored_access_token(token=token, client=client)
            return
        _revoke_tokens(token_family=(access or refresh).token_family, reason="rfc7009")
        emit(
            EventType.TOKEN_REVOKED,
            user_id=(access or refresh).user_id,
            resource_type="client",
            resource_id=client.client_id,
            metadata={"token_type": "access_token" if access else "refresh_token"},
        )


def _revoke_unstored_access_token(*, token: str, client: Client) -> None:
    """client_credentials tokens have no row: the verified JWT says whose it is."""
    try:
        claims = validate_access_token(token, any_audience=True, presented=None)
    except InvalidToken:
        return  # RFC 7009 §2.2: an invalid token is not an error
    if claims["client_id"] != client.client_id:
        return  # §2.1: only the client the token was issued to may revoke it
    revocation.revoke_jti(claims["jti"], expires_in=int(claims["exp"] - time.time()))
    emit(
        EventType.TOKEN_REVOKED,
        resource_type="client",
        resource_id=client.client_id,
        metadata={"token_type": "access_token", "grant_type": "client_credentials"},
    )


def token_introspect(*, token: str, token_type_hint: str | None) -> dict[str, Any] | None:
    """RFC 7662 §2.2: the claims of an active token, None (inactive) for anything else.
    The hint only orders the search (§2.1: the server must look further when it is wrong).
    Raises RevocationStatusUnknown (503) for an access token whose revocation is unknown."""
    lookups = [_introspect_access, _introspect_refresh]
    if token_type_hint == "refresh_token":
        lookups.reverse()
    for lookup in lookups:
        found = lookup(token)
        if found is not None:
            return found
    return None


def _introspect_access(token: str) -> dict[str, Any] | None:
    try:
        claims = validate_access_token(token, presented=None)  # cnf is reported, not checked
    except InvalidToken:
        return None
    token_type = Binding.of_claims(claims).token_type  # RFC 9449 §6.2: DPoP when jkt-bound
    return {**claims, "token_type": token_type, "active": True}


def _introspect_refresh(token: str) -> dict[str, Any] | None:
    refresh = (
        RefreshToken.objects.filter(token_checksum=token_checksum(token), revoked__isnull=True)
        .select_related("application", "session")
        .first()
    )
    if refresh is None or refresh_token_refusal(refresh):
        return None  # the token endpoint would refuse it too
    return {
        "active": True,
        "token_type": "refresh_token",
        "client_id": refresh.application.client_id,
        "sub": str(refresh.user_id),
        "exp": int(refresh.family_expires_at.timestamp()),
        # An offline grant's tokens belong to the grant, not to a sign-in (claims.py).
        "sid": str(refresh.session_id) if refresh.session_id and not refresh.offline else None,
        "offline_access": refresh.offline,
    }


def consent_grant(*, user_id: Any, client: Client, scopes: list[str]) -> None:
    """Remembered per user and client; a later grant widens it."""
    with transaction.atomic():
        consent, _ = Consent.objects.select_for_update().get_or_create(
            user_id=user_id, client=client, defaults={"scopes": ""}
        )
        consent.scopes = " ".join(sorted(set(consent.scopes.split()) | set(scopes)))
        consent.save(update_fields=["scopes", "updated_at"])
        emit(
            EventType.CONSENT_GRANTED,
            user_id=user_id,
            resource_type="client",
            resource_id=client.client_id,
            metadata={"scopes": consent.scopes},
        )


def consent_revoke(*, user_id: Any, client: Client, actor_id: object = None) -> bool:
    """Withdraws what the user allowed the client (GDPR Art. 7(3)): the consent is forgotten,
    so the client must ask again, and every token and unused authorization code the client
    holds for the user is revoked. False when there was no consent."""
    with transaction.atomic():
        consent = Consent.objects.select_for_update().filter(user_id=user_id, client=client).first()
        if consent is None:
            return False
        consent.delete()
        Grant.objects.filter(user_id=user_id, application=client, used_at__isnull=True).delete()
        _revoke_tokens(user_id=user_id, application=client, reason="consent_revoked")
        emit(
            EventType.CONSENT_REVOKED,
            user_id=user_id,
            actor_id=actor_id,
            resource_type="client",
            resource_id=client.client_id,
            metadata={"scopes": consent.scopes},
        )
    return True


GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
CLIENT_NAME_MAX = 255  # DOT's column
# A supplied client id: 100 is the column that names clients in sessions and deliveries.
CLIENT_ID_FORM = re.compile(r"[A-Za-z0-9._~-]{1,100}")
# The grant that can stand as DOT's single authorization_grant_type, by wire name.
_DOT_PRIMARY_GRANT = {wire: dot for dot, wire in DOT_GRANT_NAMES.items()}


def client_create(
    *,
    name: str,
    redirect_uris: list[str],
    post_logout_redirect_uris: list[str] | None = None,
    grant_types: list[str] | None = None,
    public: bool = False,
    skip_consent: bool = False,
    client_id: str | None = None,
    client_secret: str | None = None,
    id_token_alg: str = Client.SigningAlg.RS256,
    backchannel_logout_uri: str = "",
    backchannel_logout_session_required: bool = True,
    frontchannel_logout_uri: str = "",
    frontchannel_logout_session_required: bool = True,
    require_pkce: bool = True,
    require_mfa: bool = False,
    require_par: bool = False,
    token_endpoint_auth_method: str = "",
    tls_client_auth_subject_dn: str = "",
    tls_client_auth_san_dns: str = "",
    tls_client_auth_san_uri: str = "",
    tls_client_auth_san_ip: str = "",
    tls_client_auth_san_email: str = "",
    jwks: Any = None,
    tls_client_certificate_bound_access_tokens: bool = False,
    allowed_scopes: list[str] | None = None,
    allowed_resources: list[str] | None = None,
    actor_id: object = None,
) -> tuple[Client, str | None]:
    """Registers a client; returns it with its secret in clear (shown once, stored hashed).

    Secrets are 256-bit random unless one is supplied (for migrations from another IdP).
    `require_pkce=False` is for a confidential client whose library cannot do PKCE: its
    authorization requests must then carry a nonce (RFC 9700 §2.1.1). `require_mfa=True`: every
    authorization needs the MFA level (apps/tokens/authorize.py check_acr); `require_par=True`:
    every authorization request must be pushed (RFC 9126 §6). A client registered for
    mutual-TLS authentication (token_endpoint_auth_method, RFC 8705 §2: mtls.registration_set)
    gets no secret. `allowed_scopes` None: what the grants and type imply
    (scopes.default_allowed_scopes); `allowed_resources` None: the default audience only
    (resources.py). Errors are keyed by the field at fault (ValidationError.message_dict), as
    client_configure raises them.
    """
    if client_secret is not None and (public or len(client_secret) < 32):
        raise ValidationError(
            {
                "client_secret": "A supplied client secret needs at least 32 characters "
                "(and a confidential client)."
            }
        )
    by_certificate = token_endpoint_auth_method in mtls.CERTIFICATE_METHODS
    if client_secret is not None and by_certificate:
        raise ValidationError(
            {"client_secret": "A client authenticating with its certificate has no secret."}
        )
    secret = None if public or by_certificate else (client_secret or secrets.token_urlsafe(32))
    client = Client(
        client_type=Client.CLIENT_PUBLIC if public else Client.CLIENT_CONFIDENTIAL,
        # a certificate client stores a secret nobody was given (mtls.secret_nobody_knows)
        client_secret=secret or (mtls.secret_nobody_knows() if by_certificate else ""),
    )
    if client_id:
        if not CLIENT_ID_FORM.fullmatch(client_id):
            raise ValidationError(
                {
                    "client_id": "A client id is 1 to 100 letters, digits and . _ ~ - "
                    "(RFC 6749 §2.2 allows more; these survive every URL and log unescaped)."
                }
            )
        client.client_id = client_id
    grants = client_configure(
        client,
        name=name,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout_redirect_uris or [],
        grant_types=grant_types,
        skip_consent=skip_consent,
        id_token_alg=id_token_alg,
        backchannel_logout_uri=backchannel_logout_uri,
        backchannel_logout_session_required=backchannel_logout_session_required,
        frontchannel_logout_uri=frontchannel_logout_uri,
        frontchannel_logout_session_required=frontchannel_logout_session_required,
        require_pkce=require_pkce,
        require_mfa=require_mfa,
        require_par=require_par,
        token_endpoint_auth_method=token_endpoint_auth_method,
        tls_client_auth_subject_dn=tls_client_auth_subject_dn,
        tls_client_auth_san_dns=tls_client_auth_san_dns,
        tls_client_auth_san_uri=tls_client_auth_san_uri,
        tls_client_auth_san_ip=tls_client_auth_san_ip,
        tls_client_auth_san_email=tls_client_auth_san_email,
        jwks=jwks,
        tls_client_certificate_bound_access_tokens=tls_client_certificate_bound_access_tokens,
        allowed_scopes=allowed_scopes,
        allowed_resources=allowed_resources or [],
    )
    with transaction.atomic():
        if Client.objects.filter(client_id=client.client_id).exists():
            raise ValidationError(
                {"client_id": f"A client with id {client.client_id!r} already exists."}
            )
        client.save()
        emit(
            EventType.CLIENT_CREATED,
            actor_id=actor_id,
            resource_type="client",
            resource_id=client.client_id,
            metadata={
                "name": name,
                "grant_types": grants,
                "public": public,
                "require_pkce": require_pkce,
                "require_mfa": require_mfa,
                "require_par": require_par,
                "token_endpoint_auth_method": client.token_endpoint_auth_method,
                "tls_client_certificate_bound_access_tokens": (
                    client.tls_client_certificate_bound_access_tokens
                ),
                "allowed_scopes": client.allowed_scopes.split(),
                "allowed_resources": client.allowed_resources.split(),
            },
        )
    return client, secret


def client_configure(
    client: Client,
    *,
    name: str,
    redirect_uris: list[str],
    post_logout_redirect_uris: list[str],
    grant_types: list[str] | None,
    skip_consent: bool,
    id_token_alg: str,
    backchannel_logout_uri: str,
    backchannel_logout_session_required: bool,
    frontchannel_logout_uri: str,
    frontchannel_logout_session_required: bool,
    require_pkce: bool,
    require_mfa: bool | None = None,
    require_par: bool | None = None,
    token_endpoint_auth_method: str = "",
    tls_client_auth_subject_dn: str = "",
    tls_client_auth_san_dns: str = "",
    tls_client_auth_san_uri: str = "",
    tls_client_auth_san_ip: str = "",
    tls_client_auth_san_email: str = "",
    jwks: Any = None,
    tls_client_certificate_bound_access_tokens: bool = False,
    allowed_scopes: list[str] | None = None,
    allowed_resources: list[str] | None = None,
) -> list[str]:
    """Checks a client's registration and sets it on `client` (a new one, or one being
    edited: its client type stays), unsaved; returns its grant types. The one set of rules
    for `createclient`, the console and the admin API. Raises ValidationError keyed by the
    field at fault (the keyword argument's name). `require_mfa` / `require_par` None leaves it
    as it is; `allowed_scopes` None gives the registration's defaults
    (scopes.default_allowed_scopes), `allowed_resources` None leaves them as they are. The
    mutual-TLS metadata (RFC 8705) is mtls.registration_set's to check."""
    public = client.client_type == Client.CLIENT_PUBLIC
    grants = list(dict.fromkeys(grant_types or ["authorization_code", "refresh_token"]))
    unknown = set(grants) - set(GRANT_TYPES)
    if unknown:
        raise ValidationError(
            {
                "grant_types": f"Unknown grant type {sorted(unknown)[0]!r}: use "
                f"{', '.join(GRANT_TYPES)}."
            }
        )
    primary = next((g for g in grants if g in _DOT_PRIMARY_GRANT), None)
    if primary is None:
        raise ValidationError(
            {"grant_types": "A client needs authorization_code or client_credentials."}
        )
    if public and not require_pkce:
        raise ValidationError({"require_pkce": "A public client must use PKCE (RFC 9700 §2.1.1)."})
    if public and "client_credentials" in grants:
        raise ValidationError(
            {"grant_types": "A public client cannot use client_credentials (RFC 6749 §4.4)."}
        )
    if "authorization_code" in grants and not redirect_uris:
        raise ValidationError(
            {"redirect_uris": "authorization_code needs at least one --redirect-uri."}
        )
    for field, uris in (
        ("redirect_uris", redirect_uris),
        ("post_logout_redirect_uris", post_logout_redirect_uris),
    ):
        for uri in uris:
            if urlsplit(uri).fragment or "#" in uri:
                raise ValidationError(
                    {field: f"{uri!r} has a fragment (RFC 6749 §3.1.2 forbids it)."}
                )
    if id_token_alg not in Client.SigningAlg.values:
        raise ValidationError(
            {"id_token_alg": f"Use one of {', '.join(Client.SigningAlg.values)}."}
        )
    if not name.strip() or len(name) > CLIENT_NAME_MAX:
        raise ValidationError(
            {"name": f"A client needs a name, of at most {CLIENT_NAME_MAX} characters."}
        )
    # OWASP ASVS 10.4.11 / 9.2.4: what the client may be granted, checked against the
    # grants and type just checked (an edit that drops refresh_token or first-party while
    # the list still needs them is refused on allowed_scopes)
    if allowed_scopes is None:
        allowed_scopes = default_allowed_scopes(grant_types=grants, first_party=skip_consent)
    scopes = check_allowed_scopes(allowed_scopes, grant_types=grants, first_party=skip_consent)
    resources = None if allowed_resources is None else check_allowed_resources(allowed_resources)
    client.name = name
    client.allowed_scopes = " ".join(scopes)
    if resources is not None:
        client.allowed_resources = " ".join(resources)
    client.authorization_grant_type = _DOT_PRIMARY_GRANT[primary]
    client.grant_types = " ".join(grants)
    client.redirect_uris = " ".join(redirect_uris)
    client.post_logout_redirect_uris = " ".join(post_logout_redirect_uris)
    client.skip_authorization = skip_consent
    client.id_token_signed_response_alg = id_token_alg
    client.backchannel_logout_uri = backchannel_logout_uri
    client.backchannel_logout_session_required = backchannel_logout_session_required
    client.frontchannel_logout_uri = frontchannel_logout_uri
    client.frontchannel_logout_session_required = frontchannel_logout_session_required
    client.require_pkce = require_pkce
    if require_mfa is not None:
        client.require_mfa = require_mfa
    if require_par is not None:
        client.require_par = require_par
    mtls.registration_set(
        client,
        token_endpoint_auth_method=token_endpoint_auth_method,
        tls_client_auth_subject_dn=tls_client_auth_subject_dn,
        tls_client_auth_san_dns=tls_client_auth_san_dns,
        tls_client_auth_san_uri=tls_client_auth_san_uri,
        tls_client_auth_san_ip=tls_client_auth_san_ip,
        tls_client_auth_san_email=tls_client_auth_san_email,
        jwks=jwks,
        tls_client_certificate_bound_access_tokens=tls_client_certificate_bound_access_tokens,
    )
    client.clean()  # DOT's own checks: redirect URI schemes and form, keyed by field
    _check_logout_uri(client, "backchannel_logout_uri", backchannel_logout_uri)
    _check_logout_uri(client, "frontchannel_logout_uri", frontchannel_logout_uri)
    return grants


def _check_logout_uri(client: Client, name: str, uri: str) -> None:
    """Back-Channel Logout 1.0 §2.2, Front-Channel Logout 1.0 §2: an absolute URI, query
    allowed, no fragment, in a scheme the client's redirect URIs may use (https; http only
    with IDP_ALLOW_HTTP_REDIRECT_URIS), checked by the validator DOT checks those with."""
    if not uri:
        return
    schemes = client.get_allowed_schemes()
    try:
        AllowedURIValidator(schemes, name, allow_path=True, allow_query=True)(uri)
    except ValidationError:
        raise ValidationError(
            {
                name: f"{name} {uri!r} must be an absolute {' or '.join(schemes)} URL "
                "without a fragment."
            }
        ) from None


def code_issue(
    *,
    client: Client,
    session: LoginSession,
    redirect_uri: str,
    scopes: list[str],
    code_challenge: str,
    code_challenge_method: str,
    nonce: str,
    acr: str = "",
    dpop_jkt: str = "",
) -> str:
    """An authorization code for a request the authorize checks accepted (RFC 6749 §4.1.2):
    256 random bits (RFC 6749 §10.10), single use and short-lived (AUTHORIZATION_CODE_LIFETIME,
    RFC 6749 §4.1.2 recommends at most 10 minutes), bound to the client, the exact redirect
    URI, the PKCE challenge (RFC 7636 §4.4; S256 only, RFC 9700 §2.1.1), the nonce (OIDC Core
    §3.1.2.1) and the login session, and the start of a token family. `acr`: the ID token's
    acr when the request asked it essential with values (OIDC Core §5.5.1.1; in `claims`).
    `dpop_jkt`: the DPoP key the code may only be redeemed with (RFC 9449 §10)."""
    code = secrets.token_urlsafe(32)
    Grant.objects.create(
        application=client,
        user=session.user,
        session=session,
        token_family=uuid.uuid4(),
        code=code,
        expires=timezone.now() + timedelta(seconds=settings.AUTHORIZATION_CODE_LIFETIME),
        redirect_uri=redirect_uri,
        scope=" ".join(scopes),
        code_challenge=code_challenge,
        code_challenge_method=code_challenge_method,
        nonce=nonce,
        claims=json.dumps({"acr": acr}) if acr else "{}",
        dpop_jkt=dpop_jkt,
    )
    return code
