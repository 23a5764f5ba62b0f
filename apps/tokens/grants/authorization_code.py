"""The authorization_code grant (RFC 6749 §4.1.3, OIDC Core §3.1.3): checks in order, the
first failure answers; then issuance (grants/issue.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import NoReturn

from django.utils import timezone

from apps.sessions.services import session_is_live
from apps.tokens import services
from apps.tokens.grants.base import Refused, TokenRequest, audience, invalid_grant
from apps.tokens.grants.issue import Issuance, tokens_issue_claimed
from apps.tokens.models import Grant
from apps.tokens.scopes import OFFLINE_ACCESS, client_scopes

GRANT_TYPE = "authorization_code"
PUBLIC_CLIENTS = True  # RFC 6749 §4.1.3, with PKCE (RFC 9700 §2.1.1)
REQUIRED = ("code", "redirect_uri")
# RFC 7636 §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def issue(request: TokenRequest) -> dict[str, object]:
    grant = _code(request)
    if grant.used_at is not None:
        _replayed(grant)
    try:
        _check_redirect_uri(request, grant)
        _check_pkce(request, grant)
        _check_dpop_jkt(request, grant)
        _check_sign_in(grant)
    except Refused:
        _spend(grant)  # a failed exchange spends the code too: no second guess at the verifier
        raise
    scopes = _still_allowed(request, grant)
    issuance = Issuance(
        grant_type=GRANT_TYPE,
        client=request.client,
        user=grant.user,
        session=grant.session,
        scopes=scopes,
        family=grant.token_family,
        audience=audience(request.params, request.client),
        # OIDC Core §11: the authorize checks granted the scope only where allowed.
        offline=OFFLINE_ACCESS in scopes,
        nonce=grant.nonce,
        acr=_requested_acr(grant.claims),
        binding=request.binding,
    )
    answer = tokens_issue_claimed(lambda: _spend(grant), issuance)
    if answer is None:
        _replayed(grant)
    return answer


def _still_allowed(request: TokenRequest, grant: Grant) -> list[str]:
    """The code's scopes the client is still registered for (ASVS 10.4.11: an operator may
    have narrowed allowed_scopes since the authorization request; RFC 6749 §3.3: the
    answer's `scope` says what was granted). Nothing left is invalid_scope (the code is
    spent: a new authorization request is the way on)."""
    allowed = client_scopes(request.client)
    granted = grant.scope.split()
    scopes = [scope for scope in granted if scope in allowed]
    if granted and not scopes:
        _spend(grant)
        raise Refused(
            "invalid_scope", "None of the scopes of this code is still allowed to this client."
        )
    return scopes


def _requested_acr(claims: str) -> str:
    """The ID token's acr the authorize checks chose (services.code_issue), or ""."""
    acr = json.loads(claims or "{}").get("acr", "")
    return acr if isinstance(acr, str) else ""


def _code(request: TokenRequest) -> Grant:
    """RFC 6749 §4.1.3: a code we issued, to this client (a code of another client is
    unknown to it), unexpired (§4.1.2: short-lived)."""
    grant: Grant | None = (
        Grant.objects.filter(code=request.get("code"), application=request.client)
        .select_related("session", "user")
        .first()
    )
    if grant is None or grant.is_expired():
        raise invalid_grant("The authorization code is unknown or has expired.")
    return grant


def _spend(grant: Grant) -> bool:
    """RFC 6749 §4.1.2: a code is used once; True for the one request that spends it."""
    spent: int = Grant.objects.filter(pk=grant.pk, used_at__isnull=True).update(
        used_at=timezone.now()
    )
    return spent == 1


def _replayed(grant: Grant) -> NoReturn:
    """RFC 6749 §4.1.2 / RFC 9700 §4.14: a second use revokes what the first issued."""
    services.token_family_revoke(family=grant.token_family, reason="code_reuse")
    raise invalid_grant(
        "The authorization code was already used; the tokens issued from it are revoked."
    )


def _check_redirect_uri(request: TokenRequest, grant: Grant) -> None:
    """RFC 6749 §4.1.3: identical to the authorization request's (OIDC Core §3.1.2.1
    requires one there), else invalid_grant (§5.2)."""
    if request.get("redirect_uri") != grant.redirect_uri:
        raise invalid_grant("redirect_uri differs from the one of the authorization request.")


def _check_pkce(request: TokenRequest, grant: Grant) -> None:
    """RFC 7636 §4.6 with S256 only (RFC 9700 §2.1.1). A code issued with a challenge needs
    its verifier; one issued without (a client registered for nonce instead) refuses any
    verifier (RFC 9700 §4.8.2: PKCE downgrade)."""
    verifier = request.get("code_verifier")
    if not grant.code_challenge:
        if verifier is not None:
            raise invalid_grant("code_verifier sent for a code issued without code_challenge.")
        return
    if verifier is None:
        raise Refused(
            "invalid_request", "code_verifier is missing: this code was issued with PKCE."
        )
    if grant.code_challenge_method != "S256" or not _VERIFIER.fullmatch(verifier):
        raise invalid_grant("The code_verifier does not match the code_challenge.")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    if not hmac.compare_digest(computed, grant.code_challenge):
        raise invalid_grant("The code_verifier does not match the code_challenge.")


def _check_dpop_jkt(request: TokenRequest, grant: Grant) -> None:
    """RFC 9449 §10: a code issued for a dpop_jkt is redeemed only with a DPoP proof of that
    key; whoever stole the code has not got the key (the code is spent either way)."""
    if grant.dpop_jkt and not hmac.compare_digest(request.binding.jkt, grant.dpop_jkt):
        raise invalid_grant(
            "This authorization code is bound to a DPoP key (dpop_jkt): redeem it with a DPoP "
            "proof of that key."
        )


def _check_sign_in(grant: Grant) -> None:
    """OIDC Core §3.1.3.2: the code still belongs to a live authentication of an active
    person."""
    if grant.session is None or not session_is_live(grant.session):
        raise invalid_grant("The sign-in this code was issued in has ended.")
    if not grant.user.is_active:
        raise invalid_grant("The person this code was issued to is deactivated.")
