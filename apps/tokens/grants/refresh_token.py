"""The refresh_token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700
§4.14.2): checks in order, the first failure answers; then issuance (grants/issue.py)."""

from __future__ import annotations

from typing import NoReturn

from django.db.models import QuerySet
from django.utils import timezone

from apps.core.precompiled import Precompiled
from apps.sessions.services import session_is_live
from apps.tokens import services
from apps.tokens.binding import Binding, mismatch
from apps.tokens.grants.base import Refused, TokenRequest, audience, invalid_grant
from apps.tokens.grants.issue import Issuance, tokens_issue_claimed
from apps.tokens.models import AccessToken, RefreshToken
from apps.tokens.scopes import OFFLINE_ACCESS, client_scopes

GRANT_TYPE = "refresh_token"
PUBLIC_CLIENTS = True  # RFC 6749 §6; RFC 9700 §4.14.2: rotated
REQUIRED = ("refresh_token",)


def issue(request: TokenRequest) -> dict[str, object]:
    token = _stored(request)
    _check_not_spent(token)
    _check_client(request, token)
    _check_binding(request, token)
    _check_lifetimes(token)
    _check_offline_still_allowed(request, token)
    scopes = _scopes(request, token)
    issuance = Issuance(
        grant_type=GRANT_TYPE,
        client=request.client,
        user=token.user,
        session=token.session,
        scopes=scopes,
        family=token.token_family,
        audience=audience(request.params, request.client),
        offline=token.offline,
        previous=token,
        binding=request.binding,
    )
    answer = tokens_issue_claimed(lambda: _rotate(token), issuance)
    if answer is None:
        _reused(token)
    return answer


def _stored(request: TokenRequest) -> RefreshToken:
    """The refresh token row by its SHA-256 (RFC 9700 §4: never stored in clear), with what
    the later checks read, in one statement."""
    found = _BY_CHECKSUM.models(services.token_checksum(request.get("refresh_token") or ""))
    if not found:
        raise invalid_grant("The refresh token is unknown, revoked or expired.")
    return found[0]


def _by_checksum(checksum: str) -> QuerySet[RefreshToken]:
    found: QuerySet[RefreshToken] = RefreshToken.objects.filter(
        token_checksum=checksum
    ).select_related("session", "user", "access_token")
    return found[:1]


# Compiled once per process: the ORM took longer to compile this join than to run it.
_BY_CHECKSUM: Precompiled[RefreshToken] = Precompiled(
    _by_checksum,
    field=RefreshToken._meta.get_field("token_checksum"),
    samples=("0" * 64, "1" * 64),
)


def _check_not_spent(token: RefreshToken) -> None:
    """RFC 9700 §4.14.2: a rotated token presented again means it leaked. A token whose
    grant was revoked as a whole (logout, RFC 7009, an operator) is only late news."""
    if token.revoked is None:
        return
    if not services.token_family_goes_on(token.token_family):
        raise invalid_grant("The refresh token was revoked; sign in again.")
    _reused(token)


def _reused(token: RefreshToken) -> NoReturn:
    """The whole grant is revoked, access tokens included, and the event says why."""
    services.token_family_revoke(family=token.token_family, reason="refresh_reuse")
    raise invalid_grant(
        "The refresh token was already used; every token of its grant is now revoked. "
        "Sign in again."
    )


def _check_client(request: TokenRequest, token: RefreshToken) -> None:
    """RFC 6749 §6: the refresh token was issued to the authenticated client."""
    if token.application_id != request.client.pk:
        raise invalid_grant("The refresh token is unknown, revoked or expired.")


def _check_binding(request: TokenRequest, token: RefreshToken) -> None:
    """RFC 9449 §5 / RFC 8705 §4: a bound refresh token (a public client's) is redeemed only
    by a request proving the same key or certificate; invalid_grant otherwise (RFC 9449 §5:
    the token is not valid for this request). A confidential client's is bound by its own
    authentication and may be refreshed with a new key (RFC 9449 §5)."""
    why = mismatch(Binding(x5t_s256=token.cnf_x5t_s256, jkt=token.cnf_jkt), request.binding)
    if why:
        raise invalid_grant(f"The refresh token is bound: {why}")


def _check_lifetimes(token: RefreshToken) -> None:
    """Its absolute lifetime, its sign-in (or for an offline grant its idle timeout), and
    its person still active."""
    refusal = services.refresh_token_refusal(token)
    if refusal:
        raise invalid_grant(refusal)
    if not token.user.is_active:
        raise invalid_grant("The person this refresh token was issued to is deactivated.")


def _scopes(request: TokenRequest, token: RefreshToken) -> list[str]:
    """RFC 6749 §6: never wider than the grant. What is asked beyond it (libraries resend
    the scope they first asked for) is dropped, as OIDC Core §3.1.2.1 drops it at
    authorization; nothing left is invalid_scope."""
    access = token.access_token
    if access is None:  # the row of the token it came with is gone: its successor's scope
        access = AccessToken.objects.filter(source_refresh_token=token).first()
    # ASVS 10.4.11: an operator may have narrowed the client's allowed_scopes since the grant
    # was made; what it may no longer have is gone from every refresh (RFC 6749 §3.3: the
    # answer's `scope` says so), and a refresh cannot bring it back.
    allowed = client_scopes(request.client)
    granted = [scope for scope in access.scope.split() if scope in allowed] if access else []
    asked = request.get("scope")
    if asked is None:
        if access is not None and access.scope.split() and not granted:
            raise Refused(
                "invalid_scope",
                "None of the scopes of this refresh token is still allowed to this client.",
            )
        return granted
    kept = [scope for scope in dict.fromkeys(asked.split()) if scope in granted]
    if not kept:
        raise Refused(
            "invalid_scope",
            "None of the scopes asked for was granted to this refresh token, or is still "
            "allowed to this client.",
        )
    return kept


def _check_offline_still_allowed(request: TokenRequest, token: RefreshToken) -> None:
    """OIDC Core §11, ASVS 10.4.11: an offline grant outlives its sign-in only while its
    client may still have offline_access; taken off its list, the chain is an ordinary one,
    which ends with its sign-in."""
    if not token.offline or OFFLINE_ACCESS in client_scopes(request.client):
        return
    if token.session is None or not session_is_live(token.session):
        raise invalid_grant(
            "This client may no longer have offline_access and the sign-in this refresh token "
            "belongs to has ended; sign in again."
        )


def _rotate(token: RefreshToken) -> bool:
    """RFC 9700 §4.14.2: the token is spent now; True for the one request that spends it."""
    rotated: int = RefreshToken.objects.filter(pk=token.pk, revoked__isnull=True).update(
        revoked=timezone.now()
    )
    return rotated == 1
