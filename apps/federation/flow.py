"""An upstream sign-in from its start to the sign-in pipeline (issue 17), as ordered checks.

begin: the state, PKCE verifier and nonce stored server-side (apps.federation.state), the
browser bound by a cookie, then off to the provider's authorization endpoint (Authlib,
apps.federation.upstream).

callback, read top to bottom — each check refuses with a `Failure` (a page for the person,
a federation.failed event; never a session):
    the state is known, unused, unexpired (taken once) → it was issued for this provider's
    callback (mix-up) → to this browser → the provider is still enabled → `iss`, where sent,
    is the provider's (RFC 9207) → no error answer → a code → the code exchanged and the ID
    token validated (upstream.complete) → who the identity is here (apps.federation.linking)
then the sign-in pipeline's steps after the first factor (apps.signin.pipeline
.sign_in_federated: blocks, risk, a second factor when owed, device, session), with amr
["fed"] and the provider's slug on the login session and in tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from redis.exceptions import RedisError

from apps.accounts.models import User
from apps.core.events import EventType, emit
from apps.core.revocation import RevocationUnavailable
from apps.federation import linking, upstream
from apps.federation.mapping import mapping_apply
from apps.federation.models import Provider
from apps.federation.selectors import identity_of, provider_enabled
from apps.federation.state import LINK, SIGN_IN, FlowState, same_browser, state_begin, state_take
from apps.signin import pipeline

MAX_PARAM = 2048  # characters of a callback parameter looked at (a code, a state)
# RFC 6749 §4.1.2.1's error codes: what a refusal page may name (anything else is "an error").
OAUTH_ERRORS = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "login_required",
        "consent_required",
        "interaction_required",
        "account_selection_required",
    }
)
EXPIRED = "This sign-in has expired or was used already. Start again from the sign-in page."


@dataclass(frozen=True)
class Failure:
    code: str  # federation.failed error_code
    message: str  # for the person: what happened and what to do
    status: int = 400
    detail: str = ""  # for the event: never a secret, a code or a token
    next_url: str = ""  # where "try again" leads (the sign-in page with this next)


@dataclass(frozen=True)
class Done:
    """What the callback ends in: the pipeline's outcome, a pending link to prove, or a link
    made from the security page."""

    outcome: pipeline.Attempt | pipeline.Refusal | pipeline.Interaction | None = None
    pending: linking.PendingLink | None = None
    linked: bool = False
    next_url: str = ""


def redirect_uri(provider: Provider) -> str:
    """One callback per provider (RFC 9700 §4.4.2: per-issuer redirect URIs against mix-up)."""
    return settings.ISSUER + reverse("federation:callback", args=[provider.slug])


def begin(
    *,
    provider: Provider,
    next_url: str,
    browser: str,
    mode: str = SIGN_IN,
    user_id: str = "",
    login_hint: str = "",
) -> str:
    """The provider's authorization URL for a new sign-in (or link). Raises
    state.StateUnavailable, upstream.UpstreamError."""
    state, record = state_begin(
        provider_id=str(provider.pk),
        provider_slug=provider.slug,
        next_url=next_url,
        browser=browser,
        mode=mode,
        user_id=user_id,
        login_hint=login_hint,
    )
    return upstream.authorization_url(
        provider,
        redirect_uri=redirect_uri(provider),
        state=state,
        nonce=record.nonce,
        code_verifier=record.code_verifier,
        login_hint=login_hint,
    )


def _param(request: HttpRequest, name: str) -> str:
    value = request.GET.get(name, "")
    return value[:MAX_PARAM] if value.isprintable() else ""


def callback(request: HttpRequest, *, slug: str) -> Done | Failure:
    """The checks of the module's docstring, in order."""
    record = state_take(_param(request, "state"))
    if record is None:
        return _failed(request, slug, Failure("state", EXPIRED))
    if record.provider_slug != slug:
        # RFC 9700 §4.4: a response for one provider brought to another's callback.
        return _failed(
            request, slug, Failure("provider_mismatch", EXPIRED, detail=record.provider_slug)
        )
    if not same_browser(record, request):
        return _failed(
            request,
            slug,
            Failure(
                "browser",
                "This sign-in was started in another browser. Start again here.",
                detail="binding cookie missing or different",
            ),
        )
    provider = provider_enabled(slug)
    if provider is None or str(provider.pk) != record.provider_id:
        return _failed(
            request,
            slug,
            Failure("provider_disabled", "This sign-in option is no longer available."),
        )
    retry = record.next_url
    name = provider.name
    try:
        issuer_sent = _param(request, "iss")
        if issuer_sent or upstream.iss_parameter_required(provider):
            expected = upstream.metadata(provider).get("issuer", provider.issuer)
            if issuer_sent != expected:
                # RFC 9207 §2.4: the response names another issuer (mix-up) or none where
                # this provider always names itself.
                return _failed(
                    request,
                    slug,
                    Failure(
                        "issuer_mismatch",
                        f"The answer did not come from {name}. Start again.",
                        detail=f"iss {issuer_sent[:200]!r}",
                        next_url=retry,
                    ),
                )
        error = _param(request, "error")
        if error:
            shown = error if error in OAUTH_ERRORS else "error"
            message = (
                f"You did not allow the sign-in at {name}."
                if error == "access_denied"
                else f"{name} refused the sign-in ({shown}). Try again, or sign in another way."
            )
            return _failed(
                request,
                slug,
                Failure("upstream_error", message, detail=shown, next_url=retry),
            )
        code = _param(request, "code")
        if not code:
            return _failed(
                request,
                slug,
                Failure(
                    "invalid_response",
                    f"{name} sent no sign-in code back. Start again.",
                    next_url=retry,
                ),
            )
        identity = upstream.complete(
            provider,
            redirect_uri=redirect_uri(provider),
            code=code,
            code_verifier=record.code_verifier,
            nonce=record.nonce,
        )
    except upstream.UpstreamError as error:
        status = 502 if error.code in {"unavailable", "invalid_response"} else 400
        return _failed(
            request,
            slug,
            Failure(error.code, error.message, status=status, detail=error.detail, next_url=retry),
        )
    if record.mode == LINK:
        return _link_from_security_page(request, provider, record, identity)
    found = linking.resolve(provider=provider, identity=identity, next_url=record.next_url)
    if isinstance(found, linking.Refused):
        return _failed(
            request,
            slug,
            Failure(found.code, found.message, status=403, next_url=retry),
            user_id=None,
        )
    if isinstance(found, linking.PendingLink):
        linking.pending_save(request, found)
        return Done(pending=found)
    try:
        mapping_apply(provider=provider, user=found, claims=identity.claims)
    except (RevocationUnavailable, RedisError):
        # A membership the claims no longer give could not be taken away with its tokens
        # (the revocation list is unreachable): fail closed rather than sign in with it.
        return _failed(
            request,
            slug,
            Failure(
                "unavailable",
                f"Signing in with {name} is unavailable right now. Try again in a moment.",
                status=503,
                detail="revocation list unreachable while applying mapping rules",
                next_url=retry,
            ),
            user_id=found.pk,
        )
    outcome = pipeline.sign_in_federated(
        request, user=found, provider=provider.slug, next_url=record.next_url
    )
    return Done(outcome=outcome, next_url=record.next_url)


def _link_from_security_page(
    request: HttpRequest, provider: Provider, record: FlowState, identity: upstream.UpstreamIdentity
) -> Done | Failure:
    """A signed-in person linking another way to sign in: to the account the link began for,
    still signed in in this browser."""
    user = request.user
    if not user.is_authenticated or str(user.pk) != record.user_id:
        return _failed(
            request,
            provider.slug,
            Failure("browser", "Sign in again, then link the account from your security page."),
        )
    assert isinstance(user, User)
    linked = identity_of(provider=provider, subject=identity.subject)
    if linked is not None and linked.user_id != user.pk:
        return _failed(
            request,
            provider.slug,
            Failure(
                "already_linked",
                f"This {provider.name} account is linked to another account here.",
                status=409,
                next_url=record.next_url,
            ),
            user_id=user.pk,
        )
    if linked is None:
        linking.link(user=user, provider=provider, identity=identity, method="security_page")
    return Done(linked=True, next_url=record.next_url)


def _failed(
    request: HttpRequest, slug: str, failure: Failure, *, user_id: object = None
) -> Failure:
    emit(
        EventType.FEDERATION_FAILED,
        user_id=user_id,
        success=False,
        resource_type="provider",
        resource_id=slug[:64],
        error_code=failure.code,
        error_message=failure.message,
        metadata={"provider": slug[:64], "detail": failure.detail[:500]},
    )
    return failure
