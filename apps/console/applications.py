"""The console's applications and keys: OAuth clients (list and search, a client's page,
register, edit, rotate the secret, disable, enable, delete) and signing keys (each algorithm's
chain, rotate now). Every staff member sees them; only administrators change them (OWASP
ASVS 4.1.3, least privilege). Changes are POSTs behind a confirmation page or a form with
Django's CSRF token, made by apps.tokens.clients_admin and apps.keys.services, the services
the admin API calls too, with the operator as the event's actor (ASVS 7.2.2)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from apps.accounts.models import StaffRole, User
from apps.console.forms import ClientForm, ClientRegisterForm, ClientSearchForm, form_errors
from apps.console.lookups import client_or_404
from apps.console.permissions import administrator_required, staff_required
from apps.keys.services import key_chains, keys_rotate_now, rotation_terms
from apps.tokens import clients_admin, mtls
from apps.tokens.models import Client
from apps.tokens.scopes import default_allowed_scopes


def _may_change(request: HttpRequest) -> bool:
    user = request.user
    return isinstance(user, User) and user.has_staff_role(StaffRole.ADMINISTRATOR)


@staff_required
@require_safe
def client_list(request: HttpRequest) -> HttpResponse:
    form = ClientSearchForm(request.GET)
    if not form.is_valid():
        return render(request, "console/clients.html", {"form": form}, status=400)
    page = clients_admin.client_page(query=form.cleaned_data["q"], after=form.cleaned_data["after"])
    query = request.GET.copy()
    query.pop("after", None)
    links: dict[str, str | None] = {
        "first": query.urlencode() if request.GET.get("after") else None,
        "next": None,
    }
    if page.next_cursor is not None:
        query["after"] = str(page.next_cursor)
        links["next"] = query.urlencode()
    context = {"form": form, "page": page, "links": links, "may_change": _may_change(request)}
    return render(request, "console/clients.html", context)


@staff_required
@require_safe
def client_detail(request: HttpRequest, client_id: str) -> HttpResponse:
    client = client_or_404(client_id)
    context = {
        "client": client,
        "settings": clients_admin.client_settings(client),
        "certificates": mtls.certificate_summary(client.jwks),
        "counts": clients_admin.client_token_counts(client=client),
        "may_change": _may_change(request),
    }
    return render(request, "console/client.html", context)


@administrator_required
@require_http_methods(["GET", "POST"])
def client_register(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        grants = ["authorization_code", "refresh_token"]
        form = ClientRegisterForm(
            initial={
                "grant_types": grants,
                # what createclient gives such a client (ASVS 10.4.11), for the operator to edit
                "allowed_scopes": default_allowed_scopes(grant_types=grants, first_party=False),
            }
        )
        return _form_page(request, form, client=None)
    form = ClientRegisterForm(request.POST)
    if form.is_valid():
        try:
            client, secret = clients_admin.client_register(
                actor_id=request.user.pk, **form.cleaned_data
            )
        except ValidationError as invalid:
            form_errors(form, invalid)
        else:
            return _secret_page(request, client, secret, registered=True)
    return _form_page(request, form, client=None, status=400)


@administrator_required
@require_http_methods(["GET", "POST"])
def client_edit(request: HttpRequest, client_id: str) -> HttpResponse:
    client = client_or_404(client_id)
    if request.method != "POST":
        form = ClientForm(initial=clients_admin.client_settings(client))
        return _form_page(request, form, client=client)
    form = ClientForm(request.POST)
    if form.is_valid():
        try:
            changed = clients_admin.client_update(
                client=client, actor_id=request.user.pk, **form.cleaned_data
            )
        except ValidationError as invalid:
            form_errors(form, invalid)
        else:
            if changed:
                messages.success(request, f"Saved: {', '.join(changed)} changed.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect("console:client", client_id=client.client_id)
    return _form_page(request, form, client=client, status=400)


@administrator_required
@require_http_methods(["GET", "POST"])
def client_secret_rotate(request: HttpRequest, client_id: str) -> HttpResponse:
    client = client_or_404(client_id)
    if client.client_type != Client.CLIENT_CONFIDENTIAL:
        messages.error(request, "A public client has no secret.")
        return redirect("console:client", client_id=client.client_id)
    if mtls.uses_certificate(client):
        messages.error(request, "This client authenticates with its certificate, not a secret.")
        return redirect("console:client", client_id=client.client_id)
    if request.method != "POST":
        return _confirm(
            request,
            client,
            question=f"Rotate the secret of {client.name}?",
            detail="A new secret is generated and shown once on the next page; only its hash "
            "is kept. The current secret stops working at once, in every process within a "
            "second: the application fails to authenticate until it is given the new one. "
            "Tokens it already holds keep working.",
            button="Rotate secret",
        )
    secret = clients_admin.client_secret_rotate(client=client, actor_id=request.user.pk)
    return _secret_page(request, client, secret, registered=False)


@administrator_required
@require_http_methods(["GET", "POST"])
def client_disable(request: HttpRequest, client_id: str) -> HttpResponse:
    client = client_or_404(client_id)
    if request.method != "POST":
        counts = clients_admin.client_token_counts(client=client)
        return _confirm(
            request,
            client,
            question=f"Disable {client.name}?",
            detail="From now on the application is refused everywhere as an unknown client: "
            "no sign-in, no token, no refresh, no introspection. Every access token it holds "
            f"({counts.access_tokens} stored, and any client_credentials ones) is refused at "
            "once by userinfo, introspection and the validation service; a resource server "
            "that checks our JWTs only by signature accepts them until they expire, within "
            f"{settings.ACCESS_TOKEN_LIFETIME // 60} minutes. "
            f"Its {counts.refresh_tokens} refresh token(s) and its users' consents are kept, "
            "unusable while it is disabled: enabling it again restores them.",
            button="Disable",
        )
    if clients_admin.client_disable(client=client, actor_id=request.user.pk):
        messages.success(request, f"{client.name} disabled.")
    else:
        messages.info(request, f"{client.name} was already disabled.")
    return redirect("console:client", client_id=client.client_id)


@administrator_required
@require_http_methods(["GET", "POST"])
def client_enable(request: HttpRequest, client_id: str) -> HttpResponse:
    client = client_or_404(client_id)
    if request.method != "POST":
        return _confirm(
            request,
            client,
            question=f"Enable {client.name} again?",
            detail="The application may sign people in and use its refresh tokens again. "
            "Access tokens revoked when it was disabled stay revoked.",
            button="Enable",
            danger=False,
        )
    if clients_admin.client_enable(client=client, actor_id=request.user.pk):
        messages.success(request, f"{client.name} enabled.")
    else:
        messages.info(request, f"{client.name} was not disabled.")
    return redirect("console:client", client_id=client.client_id)


@administrator_required
@require_http_methods(["GET", "POST"])
def client_delete(request: HttpRequest, client_id: str) -> HttpResponse:
    client = client_or_404(client_id)
    if request.method != "POST":
        counts = clients_admin.client_token_counts(client=client)
        told = (
            "The application is sent a back-channel Logout Token for every live session in "
            f"which it received tokens ({client.backchannel_logout_uri}), so it ends them too."
            if client.backchannel_logout_uri
            else "It registered no back-channel logout URI, so it is not told; people stay "
            "signed in to it until its own sessions end."
        )
        return _confirm(
            request,
            client,
            question=f"Delete {client.name} ({client.client_id})?",
            detail=f"Its {counts.refresh_tokens} refresh token(s) are revoked and deleted (the "
            f"token endpoint refuses them), its {counts.access_tokens} unexpired stored access "
            "token(s) are put on the revocation list and every token of the client, "
            "client_credentials ones too, is refused at once by userinfo, introspection and "
            "the validation service (a resource server that checks our JWTs only by "
            "signature accepts them until they expire, within "
            f"{settings.ACCESS_TOKEN_LIFETIME // 60} minutes); its {counts.offline_grants} "
            "offline grant(s) end, and its consents and unused codes go with it. "
            f"{told} This cannot be undone: the client id is gone.",
            button="Delete client",
        )
    deleted = clients_admin.client_delete(client=client, actor_id=request.user.pk)
    messages.success(
        request,
        f"{client.name} deleted: {deleted.refresh_tokens_revoked} refresh and "
        f"{deleted.access_tokens_revoked} access token(s) revoked, "
        f"{deleted.sessions_told} session(s) being told.",
    )
    return redirect("console:clients")


@staff_required
@require_safe
def key_list(request: HttpRequest) -> HttpResponse:
    context = {
        "chains": key_chains(),
        "terms": rotation_terms(),
        "may_change": _may_change(request),
    }
    return render(request, "console/keys.html", context)


@administrator_required
@require_http_methods(["GET", "POST"])
def keys_rotate(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        terms = rotation_terms()
        return _confirm(
            request,
            None,
            question="Rotate every signing key now?",
            detail=f"For each algorithm ({', '.join(terms.algorithms)}) a new key is created, "
            "published in the JWKS and signs every new token from now on, in every process "
            "within a second. Relying parties that cached the JWKS (for up to "
            f"{terms.jwks_max_age} seconds) fetch it again when they meet the new key id. The "
            "current keys are retired now: they sign nothing more but stay in the JWKS for "
            f"{terms.retired_published_for}, until the last token they "
            "signed has expired, so tokens already issued keep verifying. Use it after a "
            "suspected key compromise (those tokens stay valid until they expire: revoke "
            "sessions to end them sooner); otherwise the schedule rotates every "
            f"{terms.rotation_days} days without a gap.",
            button="Rotate now",
            back=reverse("console:keys"),
        )
    created = keys_rotate_now(actor_id=request.user.pk)
    messages.success(
        request, "New signing keys: " + ", ".join(f"{k.alg} {k.kid[:12]}…" for k in created)
    )
    return redirect("console:keys")


def _form_page(
    request: HttpRequest, form: ClientForm, *, client: Client | None, status: int = 200
) -> HttpResponse:
    context = {"form": form, "client": client}
    return render(request, "console/client_form.html", context, status=status)


def _secret_page(
    request: HttpRequest, client: Client, secret: str | None, *, registered: bool
) -> HttpResponse:
    """The one time the secret is shown: in this response only (never in a message, a
    redirect or a log), never cached (the decorators' never_cache)."""
    context = {"client": client, "secret": secret, "registered": registered}
    return render(request, "console/client_secret.html", context)


def _confirm(
    request: HttpRequest,
    client: Client | None,
    *,
    question: str,
    detail: str,
    button: str,
    back: str = "",
    danger: bool = True,
) -> HttpResponse:
    """The GET half of an action: it says what the POST will do and changes nothing."""
    if not back and client is not None:
        back = reverse("console:client", kwargs={"client_id": client.client_id})
    context: dict[str, Any] = {
        "question": question,
        "detail": detail,
        "button": button,
        "back": back,
        "danger": danger,
    }
    return render(request, "console/confirm.html", context)
