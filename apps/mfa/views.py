"""Enrolment pages of the person's own factors: an authenticator app (TOTP) and recovery codes.

Thin views over apps.mfa.totp and apps.mfa.recovery. The QR code is drawn here as inline SVG
(segno), so the page needs no script and no image URL carrying the secret (CSP-clean).
Every change is a POST under CSRF protection; bad input is a form error (400), never a 500.
"""

from __future__ import annotations

import segno
from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import User
from apps.mfa.errors import FactorNotFound, MalformedInput, MfaError
from apps.mfa.models import TotpDevice
from apps.mfa.recovery import recovery_codes_generate
from apps.mfa.selectors import factors_of
from apps.mfa.totp import DIGITS, totp_confirm, totp_enrol, totp_provisioning_uri, totp_secret


class TotpNameForm(forms.Form):
    name = forms.CharField(label="Name of this authenticator", max_length=64, required=False)


class TotpCodeForm(forms.Form):
    code = forms.CharField(label=f"The {DIGITS}-digit code the app shows", max_length=16)


def _person(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required
    return user


@login_required
@never_cache
@require_GET
def factors(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "mfa/factors.html",
        {"factors": factors_of(_person(request)), "name_form": TotpNameForm()},
    )


@login_required
@never_cache
@require_POST
def totp_start(request: HttpRequest) -> HttpResponse:
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


@login_required
@never_cache
@require_POST
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """A new set, shown on this response only (never stored in clear, never shown again)."""
    codes = recovery_codes_generate(user=_person(request))
    return render(request, "mfa/recovery_codes.html", {"codes": codes})
