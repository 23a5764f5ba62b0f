"""The console's identity providers (issue 17): the upstream providers people sign in with
(list with the people linked through each, a provider's page, create, edit, enable, disable,
delete) and, on a person's page, the upstream identities linked to their account, which an
operator may unlink. Every staff member sees providers; administrators change them (they
decide who may sign in at all, like clients); unlinking acts on one person, so operators.
Changes are POSTs behind a form or a confirmation page with Django's CSRF token, made by
apps.federation.providers, the services the admin API and `federation_provider` call too, with
the operator as the event's actor (OWASP ASVS 7.2.2). A secret is written, never shown."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from apps.accounts.models import StaffRole, User
from apps.console.federation_forms import ProviderForm
from apps.console.forms import form_errors
from apps.console.lookups import user_or_404
from apps.console.permissions import administrator_required, operator_required, staff_required
from apps.federation import providers
from apps.federation.flow import redirect_uri
from apps.federation.models import FederatedIdentity, Provider
from apps.federation.selectors import identities_of


def _may_change(request: HttpRequest) -> bool:
    user = request.user
    return isinstance(user, User) and user.has_staff_role(StaffRole.ADMINISTRATOR)


def provider_or_404(provider_id: uuid.UUID) -> Provider:
    found = providers.provider_find(str(provider_id))
    if found is None:
        raise Http404("No identity provider has this id.")
    return found


@staff_required
@require_safe
def provider_list(request: HttpRequest) -> HttpResponse:
    context = {"rows": providers.provider_list(), "may_change": _may_change(request)}
    return render(request, "console/federation/providers.html", context)


@staff_required
@require_safe
def provider_detail(request: HttpRequest, provider_id: uuid.UUID) -> HttpResponse:
    provider = provider_or_404(provider_id)
    context = {
        "provider": provider,
        "linked": providers.provider_linked_count(provider),
        "callback": redirect_uri(provider),
        "may_change": _may_change(request),
    }
    return render(request, "console/federation/provider.html", context)


@administrator_required
@require_http_methods(["GET", "POST"])
def provider_create(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        form = ProviderForm(
            creating=True,
            initial={"kind": "oidc", "enabled": True, "client_auth_method": "client_secret_basic"},
        )
        return _form_page(request, form, provider=None)
    form = ProviderForm(request.POST, creating=True)
    if form.is_valid():
        try:
            provider = providers.provider_create(
                actor_id=request.user.pk,
                client_secret=form.cleaned_data["client_secret"],
                **form.fields_for_service(),
            )
        except ValidationError as invalid:
            form_errors(form, invalid)
        else:
            messages.success(request, f"{provider.name} created.")
            return redirect("console:federation_provider", provider_id=provider.pk)
    return _form_page(request, form, provider=None, status=400)


@administrator_required
@require_http_methods(["GET", "POST"])
def provider_edit(request: HttpRequest, provider_id: uuid.UUID) -> HttpResponse:
    provider = provider_or_404(provider_id)
    initial = ProviderForm.initial_of(provider)
    if request.method != "POST":
        return _form_page(request, ProviderForm(initial=initial, creating=False), provider=provider)
    form = ProviderForm(request.POST, initial=initial, creating=False)
    if form.is_valid():
        before = providers.provider_settings(provider)
        changes = {k: v for k, v in form.fields_for_service().items() if v != before[k]}
        secret = form.cleaned_data["client_secret"]
        try:
            providers.provider_update(
                provider=provider, actor_id=request.user.pk, client_secret=secret, **changes
            )
        except ValidationError as invalid:
            form_errors(form, invalid)
        else:
            after = providers.provider_settings(provider)
            changed = [k for k in after if after[k] != before[k]]
            if changed or secret:
                said = ", ".join([*changed, *(["the secret"] if secret else [])])
                messages.success(request, f"{provider.name} saved: {said}.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect("console:federation_provider", provider_id=provider.pk)
    return _form_page(request, form, provider=provider, status=400)


@administrator_required
@require_http_methods(["GET", "POST"])
def provider_enable(request: HttpRequest, provider_id: uuid.UUID) -> HttpResponse:
    provider = provider_or_404(provider_id)
    if request.method != "POST":
        return _confirm(
            request,
            question=f"Enable {provider.name}?",
            detail=f"The sign-in page shows “Sign in with {provider.name}” again and its "
            "callbacks are taken, in every process within a second.",
            button="Enable",
            back=_detail(provider),
            danger=False,
        )
    was = provider.enabled
    providers.provider_set_enabled(provider=provider, enabled=True, actor_id=request.user.pk)
    messages.success(request, f"{provider.name} enabled." if not was else "Already enabled.")
    return redirect(_detail(provider))


@administrator_required
@require_http_methods(["GET", "POST"])
def provider_disable(request: HttpRequest, provider_id: uuid.UUID) -> HttpResponse:
    provider = provider_or_404(provider_id)
    if request.method != "POST":
        linked = providers.provider_linked_count(provider)
        return _confirm(
            request,
            question=f"Disable {provider.name}?",
            detail="Its button leaves the sign-in page and its callbacks are refused, in "
            "every process within a second. "
            + (
                f"The {linked} linked identit{'y' if linked == 1 else 'ies'} stay: enabling "
                "it again lets them sign in as before. Someone who signs in only through it "
                "cannot sign in meanwhile; "
                if linked
                else "Nobody is linked through it; "
            )
            + "sessions already open are not ended.",
            button="Disable",
            back=_detail(provider),
        )
    was = provider.enabled
    providers.provider_set_enabled(provider=provider, enabled=False, actor_id=request.user.pk)
    messages.success(request, f"{provider.name} disabled." if was else "Already disabled.")
    return redirect(_detail(provider))


@administrator_required
@require_http_methods(["GET", "POST"])
def provider_delete(request: HttpRequest, provider_id: uuid.UUID) -> HttpResponse:
    provider = provider_or_404(provider_id)
    if request.method != "POST":
        linked = providers.provider_linked_count(provider)
        if linked:
            messages.error(request, providers.still_linked_message(provider, linked))
            return redirect(_detail(provider))
        return _confirm(
            request,
            question=f"Delete {provider.name} ({provider.slug})?",
            detail="Nobody is linked through it. Its settings and encrypted secret are "
            "deleted; this cannot be undone (create it again to bring it back).",
            button="Delete provider",
            back=_detail(provider),
        )
    try:
        providers.provider_delete(provider=provider, actor_id=request.user.pk)
    except ValidationError as refused:
        messages.error(request, " ".join(refused.messages))
        return redirect(_detail(provider))
    messages.success(request, f"{provider.name} deleted.")
    return redirect("console:federation_providers")


# --- a person's linked identities ------------------------------------------------------------


def person_identities(user: User) -> dict[str, Any]:
    """The person page's Linked identities section (one statement: with their providers)."""
    return {"identities": identities_of(user_id=user.pk)}


@operator_required
@require_http_methods(["GET", "POST"])
def user_identity_unlink(
    request: HttpRequest, user_id: uuid.UUID, identity_id: uuid.UUID
) -> HttpResponse:
    """An operator unlinks an upstream identity (e.g. an upstream account known to be taken
    over, or linked by mistake): it no longer signs in to this account."""
    user = user_or_404(user_id)
    identity = _identity_or_404(user, identity_id)
    back = reverse("console:user", kwargs={"user_id": user.pk}) + "#identities"
    if request.method != "POST":
        others = len(identities_of(user_id=user.pk)) - 1
        return _confirm(
            request,
            question=f"Unlink {identity.provider.name} from {user.email}?",
            detail=f"The {identity.provider.name} account "
            f"{identity.display or identity.email or identity.subject} no longer signs in to "
            f"this account; signing in with it later finds no account here (or links again "
            "only after the person proves this one). The sessions signed in through "
            f"{identity.provider.name} end now. " + _other_ways(user, others),
            button="Unlink",
            back=back,
        )
    providers.identity_unlink(identity=identity, actor_id=request.user.pk, reason="operator")
    messages.success(request, f"{identity.provider.name} unlinked from {user.email}.")
    return redirect(back)


def _other_ways(user: User, others: int) -> str:
    ways = ["a password"] if user.has_usable_password() else []
    if others:
        ways.append(f"{others} other linked identit{'y' if others == 1 else 'ies'}")
    if not ways:
        return "Check they have another way to sign in (a passkey) first: they have no password."
    return f"They can still sign in with {' and '.join(ways)}."


def _identity_or_404(user: User, identity_id: uuid.UUID) -> FederatedIdentity:
    found = next((i for i in identities_of(user_id=user.pk) if i.pk == identity_id), None)
    if found is None:
        raise Http404("This person has no linked identity with this id.")
    return found


def _detail(provider: Provider) -> str:
    return reverse("console:federation_provider", kwargs={"provider_id": provider.pk})


def _form_page(
    request: HttpRequest, form: ProviderForm, *, provider: Provider | None, status: int = 200
) -> HttpResponse:
    context = {"form": form, "provider": provider}
    return render(request, "console/federation/provider_form.html", context, status=status)


def _confirm(
    request: HttpRequest, *, question: str, detail: str, button: str, back: str, danger: bool = True
) -> HttpResponse:
    """The GET half of an action: it says what the POST will do and changes nothing."""
    context = {
        "question": question,
        "detail": detail,
        "button": button,
        "back": back,
        "danger": danger,
    }
    return render(request, "console/confirm.html", context)
