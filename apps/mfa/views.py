"""The person's own security page (/account/security/): their factors, adding an
authenticator app or a passkey, removing a factor, recovery codes.

Thin views over apps.mfa's services. The QR code is drawn here as inline SVG (segno), so the
TOTP page needs no script and no image URL carrying the secret; the WebAuthn forms use the one
external script apps/mfa/static/mfa/webauthn.js (no inline script or style: CSP-clean).
Every change is a POST under CSRF protection; bad input is a form error (400), never a 500.
Each factor added or removed and each new set of recovery codes mails the person a security
notice once it has committed (apps/mfa/notices.py; OWASP ASVS 5.0 6.3.7); a refused change
sends none.

Sensitive changes need a recent authentication (OWASP ASVS 4.0.3 V3.7.1, NIST SP 800-63B
§6.1.2.1 "binding an additional authenticator"): the sign-in itself (the login session's
authenticated_at, moved by a step-up) or the confirmation page /account/security/confirm
(the password, a code of an authenticator app, a recovery code or a passkey, checked under the
sign-in's failed-attempt counters: apps/signin/reauthentication.py), at most
services.REAUTHENTICATION_MAX_AGE ago (apps/mfa/reauthentication.py reads the record).
"""

from __future__ import annotations

import json
from typing import Any

import segno
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import User
from apps.mfa.errors import (
    ClonedAuthenticator,
    FactorNotFound,
    MalformedInput,
    MfaError,
    ReauthenticationRequired,
    VerificationFailed,
)
from apps.mfa.models import FactorKind, TotpDevice
from apps.mfa.notices import factor_added_notice, factor_removed_notice, recovery_codes_notice
from apps.mfa.passkeys import (
    NAME_MAX,
    webauthn_registration_begin,
    webauthn_registration_finish,
)
from apps.mfa.reauthentication import authenticated_at, recently_authenticated
from apps.mfa.recovery import recovery_codes_generate
from apps.mfa.selectors import factors_of
from apps.mfa.services import factor_remove
from apps.mfa.totp import (
    DIGITS,
    totp_confirm,
    totp_enrol,
    totp_provisioning_uri,
    totp_secret,
)

CEREMONY_MAX = 64  # characters of a ceremony id (passkeys._take bounds it too)
# The confirmation page (the password or a factor, under the sign-in's failed-attempt
# counters): apps.signin.reauthentication, reached by URL name (mfa does not import signin).
CONFIRM_URL_NAME = "signin:reauthenticate"


class TotpNameForm(forms.Form):
    name = forms.CharField(label="Name of this authenticator", max_length=64, required=False)


class TotpCodeForm(forms.Form):
    code = forms.CharField(label=f"The {DIGITS}-digit code the app shows", max_length=16)


class PasskeyNameForm(forms.Form):
    name = forms.CharField(
        label="Name of this security key or passkey", max_length=NAME_MAX, required=False
    )


def _person(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required
    return user


def _confirm_first(request: HttpRequest, back: str) -> HttpResponse:
    return HttpResponseRedirect(f"{reverse(CONFIRM_URL_NAME)}?{urlencode({'next': back})}")


def _ceremony_options(ceremony_id: str, options_json: str, **extensions: Any) -> JsonResponse:
    public_key = json.loads(options_json)
    if extensions:
        public_key["extensions"] = {**public_key.get("extensions", {}), **extensions}
    return JsonResponse({"ceremony": ceremony_id, "publicKey": public_key})


def _json_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _webauthn_message(error: MfaError) -> str:
    """What the person reads for each WebAuthn failure (never the library's wording)."""
    if isinstance(error, MalformedInput):
        return "Your browser sent an answer we cannot read. Try again."
    if isinstance(error, ClonedAuthenticator):
        return (
            "This security key or passkey has been blocked: its signature counter went "
            "backwards, so it may have been copied. Use another factor and remove it."
        )
    if isinstance(error, VerificationFailed):
        return "Your security key or passkey could not be verified. Try again."
    if isinstance(error, FactorNotFound):
        return "You have no security key or passkey to use here."
    return "The request expired or was already used. Try again."


def _page(request: HttpRequest, *, status: int = 200, **extra: Any) -> HttpResponse:
    context: dict[str, Any] = {
        "factors": factors_of(_person(request)),
        "name_form": TotpNameForm(),
        "passkey_form": PasskeyNameForm(),
        "recent": recently_authenticated(request),
        "confirm_url": f"{reverse(CONFIRM_URL_NAME)}?{urlencode({'next': request.path})}",
    }
    context.update(extra)
    return render(request, "mfa/factors.html", context, status=status)


@login_required
@never_cache
@require_GET
def factors(request: HttpRequest) -> HttpResponse:
    return _page(request)


# --- authenticator app (TOTP) ------------------------------------------------------------


@login_required
@never_cache
@require_POST
def totp_start(request: HttpRequest) -> HttpResponse:
    if not recently_authenticated(request):  # NIST SP 800-63B §6.1.2.1: binding needs a fresh proof
        return _confirm_first(request, reverse("mfa:factors") + "#totp")
    form = TotpNameForm(request.POST)
    name = form.cleaned_data["name"] if form.is_valid() else ""
    totp_enrol(user=_person(request), name=name or "Authenticator app")
    return HttpResponseRedirect(reverse("mfa:totp"))


@sensitive_post_parameters("code")
@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def totp(request: HttpRequest) -> HttpResponse:
    """GET: the pending device's QR code, secret and confirmation form. POST: confirm it."""
    user = _person(request)
    device = (
        TotpDevice.objects.filter(user=user, confirmed_at__isnull=True)
        .order_by("-created_at")
        .first()
    )
    if device is None:
        return HttpResponseRedirect(reverse("mfa:factors"))
    form = TotpCodeForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                totp_confirm(device=device, code=form.cleaned_data["code"])
            except FactorNotFound:
                return HttpResponseRedirect(reverse("mfa:factors"))
            except MalformedInput:
                form.add_error("code", f"Type the {DIGITS} digits the app shows.")
            except MfaError:
                form.add_error("code", "That code is not right. Wait for the next one and retry.")
            else:
                factor_added_notice(
                    request=request, user=user, kind=FactorKind.TOTP, name=device.name
                )
                return HttpResponseRedirect(reverse("mfa:factors"))
        status = 400
    secret = totp_secret(device)
    uri = totp_provisioning_uri(user=user, secret=secret)
    qr = segno.make(uri, error="m").svg_inline(
        scale=4, dark="#000", light="#fff", title="QR code for your authenticator app"
    )
    return render(
        request,
        "mfa/totp.html",
        {
            "device": device,
            # segno draws the SVG from the URI alone: no markup of ours or the person's in it.
            "qr_svg": mark_safe(qr),  # noqa: S308
            "secret_groups": [secret[i : i + 4] for i in range(0, len(secret), 4)],
            "form": form,
        },
        status=status,
    )


# --- passkeys and security keys (WebAuthn) -----------------------------------------------


@login_required
@never_cache
@require_POST
def passkey_options(request: HttpRequest) -> HttpResponse:
    """navigator.credentials.create()'s options (WebAuthn L2 §5.4) as JSON for webauthn.js."""
    if not recently_authenticated(request):
        return _json_error("Confirm it is you first: reload the page and follow its link.", 403)
    ceremony = webauthn_registration_begin(user=_person(request))
    # credProps (WebAuthn L2 §10.4): the browser says whether the key is discoverable.
    return _ceremony_options(ceremony.id, ceremony.options_json, credProps=True)


@login_required
@never_cache
@require_POST
def passkey_add(request: HttpRequest) -> HttpResponse:
    """The registration's answer (WebAuthn L2 §7.1), checked by apps.mfa.passkeys; the ceremony
    id comes back in the form and is bound to this person by the ceremony store."""
    if not recently_authenticated(request):
        return _confirm_first(request, reverse("mfa:factors") + "#passkeys")
    user = _person(request)
    form = PasskeyNameForm(request.POST)
    name = form.cleaned_data["name"] if form.is_valid() else ""
    try:
        credential = webauthn_registration_finish(
            user=user,
            ceremony_id=request.POST.get("ceremony", "")[:CEREMONY_MAX],
            response=request.POST.get("credential", ""),
            name=name or "Passkey",
        )
    except MfaError as error:
        return _page(request, status=400, passkey_error=_webauthn_message(error))
    factor_added_notice(request=request, user=user, kind=FactorKind.WEBAUTHN, name=credential.name)
    messages.success(request, f"“{credential.name}” was added. You can sign in with it now.")
    return HttpResponseRedirect(reverse("mfa:factors") + "#factors")


# --- removing a factor, recovery codes ---------------------------------------------------


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def remove(request: HttpRequest, kind: str, factor_id: str) -> HttpResponse:
    """GET: "remove this factor?" after a fresh authentication; POST: remove it
    (services.factor_remove checks the authentication's age again)."""
    user = _person(request)
    factor = next((f for f in factors_of(user) if f.kind == kind and str(f.id) == factor_id), None)
    if factor is None:
        raise Http404("No such factor of yours.")
    proof_of_itself = f"{factor.kind}:{factor.id}"
    if request.method == "GET":
        if not recently_authenticated(request, not_by=proof_of_itself):
            return _confirm_first(request, request.path)
        return render(request, "mfa/remove.html", {"factor": factor})
    try:
        factor_remove(
            user=user,
            kind=kind,
            factor_id=factor.id,
            reauthenticated_at=authenticated_at(request, not_by=proof_of_itself),
        )
    except ReauthenticationRequired:
        return _confirm_first(request, request.path)
    except FactorNotFound:
        raise Http404("No such factor of yours.") from None
    factor_removed_notice(request=request, user=user, kind=factor.kind, name=factor.name)
    messages.success(request, f"“{factor.name}” was removed.")
    return HttpResponseRedirect(reverse("mfa:factors") + "#factors")


@login_required
@never_cache
@require_POST
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """A new set, shown on this response only (never stored in clear, never shown again);
    the old set stops working."""
    if not recently_authenticated(request):
        return _confirm_first(request, reverse("mfa:factors") + "#recovery")
    user = _person(request)
    codes = recovery_codes_generate(user=user)
    recovery_codes_notice(request=request, user=user)
    return render(request, "mfa/recovery_codes.html", {"codes": codes})
