"""The person-facing federation pages: thin views over apps.federation.flow and linking.

/login/federated/<slug>            begin a sign-in with the provider (GET, ?next, ?login_hint)
/login/federated/<slug>/callback   the provider's answer (GET: code, state, iss or error)
/login/federated/link              an account holds the address: prove it is yours to link
/login/federated/link/confirm      after that proof: link (POST)
/account/security/linked/<slug>    link another provider from the security page (POST)
/account/security/linked/<id>/unlink  unlink one (POST)

Every refusal is a page that says what happened and what to do, with its status; never a 500.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import User
from apps.core.security_headers import allow_continuation
from apps.federation import flow, linking, upstream
from apps.federation.models import FederatedIdentity, Provider
from apps.federation.providers import identity_unlink
from apps.federation.selectors import identities_of, provider_enabled
from apps.federation.state import LINK, StateUnavailable, bind_browser, browser_token
from apps.sessions.selectors import session_current
from apps.signin import pipeline
from apps.signin.reauthentication import confirmed_recently, signs_in_without_upstream

SECURITY_PAGE = "mfa:factors"
CONFIRM_URL_NAME = "signin:reauthenticate"
UNAVAILABLE = "Signing in with {name} is unavailable right now. Try again in a moment."


def _safe_next(request: HttpRequest, target: str) -> str:
    """Only our own pages (OWASP ASVS 5.0 V3.7.2 / 4.0.3 5.1.5: no open redirect)."""
    if target and url_has_allowed_host_and_scheme(
        target, {request.get_host()}, request.is_secure()
    ):
        return target
    return "/"


def _failure_page(request: HttpRequest, failure: flow.Failure) -> HttpResponse:
    again = reverse("signin:login")
    if failure.next_url:
        again += "?" + urlencode({"next": failure.next_url})
    return render(
        request,
        "federation/failed.html",
        {"message": failure.message, "again": again},
        status=failure.status,
    )


@never_cache
@require_GET
def start(request: HttpRequest, slug: str) -> HttpResponse:
    provider = provider_enabled(slug)
    if provider is None:
        return _failure_page(
            request,
            flow.Failure("unknown_provider", "This sign-in option is not available.", status=404),
        )
    return _begin(
        request,
        provider,
        next_url=_safe_next(request, request.GET.get("next", "")),
        login_hint=request.GET.get("login_hint", "")[:254],
    )


def _begin(
    request: HttpRequest, provider: Provider, *, next_url: str, **flow_args: str
) -> HttpResponse:
    """Off to the provider with this browser bound to the new state, or the page that says
    the provider (or Redis, which keeps the state) cannot be reached now."""
    token = browser_token(request)
    try:
        url = flow.begin(provider=provider, next_url=next_url, browser=token, **flow_args)
    except (StateUnavailable, upstream.UpstreamError) as error:
        failure = flow.Failure(
            getattr(error, "code", "unavailable"),
            getattr(error, "message", "") or UNAVAILABLE.format(name=provider.name),
            status=503 if isinstance(error, StateUnavailable) else 502,
            detail=getattr(error, "detail", "") or type(error).__name__,
            next_url=next_url,
        )
        signed_in = request.user.pk if request.user.is_authenticated else None
        return _failure_page(
            request, flow._failed(request, provider.slug, failure, user_id=signed_in)
        )
    response = HttpResponseRedirect(url)
    bind_browser(response, request, token)
    return response


@never_cache
@require_GET
def callback(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        done = flow.callback(request, slug=slug)
    except StateUnavailable:
        failure = flow.Failure("unavailable", UNAVAILABLE.format(name="this provider"), status=503)
        return _failure_page(request, flow._failed(request, slug, failure))
    if isinstance(done, flow.Failure):
        return _failure_page(request, done)
    if done.pending is not None:
        return HttpResponseRedirect(reverse("federation:link"))
    if done.linked:
        messages.success(request, "The account was linked. You can sign in with it now.")
        return HttpResponseRedirect(_safe_next(request, done.next_url))
    outcome = done.outcome
    if isinstance(outcome, pipeline.Interaction):  # a second factor, on its page
        return HttpResponseRedirect(outcome.url)
    if isinstance(outcome, pipeline.Refusal):
        return render(
            request,
            "federation/failed.html",
            {"message": outcome.message, "again": reverse("signin:login")},
            status=outcome.status,
        )
    return HttpResponseRedirect(_safe_next(request, done.next_url))


@never_cache
@require_GET
def link(request: HttpRequest) -> HttpResponse:
    """An account holds the address the provider vouched for: the person signs in to it once
    (its password or passkey, and its second factor) to link the two."""
    pending = linking.pending_current(request)
    if pending is None:
        return _failure_page(request, flow.Failure("state", flow.EXPIRED))
    confirm = reverse("federation:link_confirm")
    sign_in = (
        reverse("signin:login") + "?" + urlencode({"next": confirm, "login_hint": pending.email})
    )
    return render(request, "federation/link.html", {"pending": pending, "sign_in_url": sign_in})


@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def link_confirm(request: HttpRequest) -> HttpResponse:
    pending = linking.pending_current(request)
    if pending is None:
        return _failure_page(request, flow.Failure("state", flow.EXPIRED))
    session = session_current(request)
    user = request.user
    if session is None or not isinstance(user, User):
        return HttpResponseRedirect(reverse("federation:link"))
    if request.method == "GET":
        page = render(request, "federation/link_confirm.html", {"pending": pending})
        return allow_continuation(page, pending.next_url)
    if request.POST.get("decision") == "cancel":
        linking.pending_end(request)
        return HttpResponseRedirect(_safe_next(request, pending.next_url))
    done = linking.pending_confirm(
        request, pending=pending, user=user, signed_in_at=session.authenticated_at
    )
    if isinstance(done, linking.Refused):
        failure = flow.Failure(done.code, done.message, status=403, next_url=pending.next_url)
        return _failure_page(
            request, flow._failed(request, pending.provider_slug, failure, user_id=user.pk)
        )
    messages.success(request, f"{pending.provider_name} is linked to your account.")
    return HttpResponseRedirect(_safe_next(request, pending.next_url))


def _confirm_first(request: HttpRequest) -> HttpResponse:
    back = reverse(SECURITY_PAGE) + "#linked"
    return HttpResponseRedirect(f"{reverse(CONFIRM_URL_NAME)}?{urlencode({'next': back})}")


@login_required
@never_cache
@require_POST
def link_start(request: HttpRequest, slug: str) -> HttpResponse:
    """Link another provider from the security page: a fresh proof first (NIST SP 800-63B
    §6.1.2.1: binding a new authenticator needs one), then the provider's own sign-in."""
    if not confirmed_recently(request):
        return _confirm_first(request)
    provider = provider_enabled(slug)
    if provider is None:
        return _failure_page(
            request,
            flow.Failure("unknown_provider", "This sign-in option is not available.", status=404),
        )
    back = reverse(SECURITY_PAGE) + "#linked"
    return _begin(request, provider, next_url=back, mode=LINK, user_id=str(request.user.pk))


def other_way_remains(user: User, identity: FederatedIdentity) -> bool:
    """Unlinking leaves the person a way to sign in: a password, a passkey, or another
    linked provider that is enabled."""
    if signs_in_without_upstream(user):
        return True
    return any(
        other.pk != identity.pk and other.provider.enabled
        for other in identities_of(user_id=user.pk)
    )


@login_required
@never_cache
@require_POST
def unlink(request: HttpRequest, identity_id: uuid.UUID) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)  # login_required
    if not confirmed_recently(request):
        return _confirm_first(request)
    identity = next((i for i in identities_of(user_id=user.pk) if i.pk == identity_id), None)
    back = reverse(SECURITY_PAGE) + "#linked"
    if identity is None:
        messages.error(request, "That linked account was not found; it may be unlinked already.")
        return HttpResponseRedirect(back)
    if not other_way_remains(user, identity):
        messages.error(
            request,
            f"{identity.provider.name} is your only way to sign in. Set a password or add a "
            "passkey first, then unlink it.",
        )
        return HttpResponseRedirect(back)
    session = session_current(request)
    identity_unlink(
        identity=identity,
        actor_id=user.pk,
        reason="person",
        keep_session_id=session.pk if session is not None else None,
    )
    messages.success(request, f"{identity.provider.name} is no longer linked to your account.")
    return HttpResponseRedirect(back)
