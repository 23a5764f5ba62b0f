"""The re-authentication page /account/security/confirm (OWASP ASVS 4.0.3 V3.7.1; NIST SP
800-63B §6.1.2.1): a signed-in person proves again who they are before a sensitive change on
their security page (apps/mfa/views.py) — with the password, a code (authenticator app or
recovery code) or a passkey.

Each answer is checked under the very counters a sign-in uses, so a stolen session can guess
no faster here than on /login: the password through account.current_password_verify (kind
"login", the account's address: same answers as the account page), a code or a passkey
through second_factor.prove (kind "mfa", the account id: one counter with the sign-in's second
factor, its lock notice and its `mfa.failed` `locked`). A locked counter answers 429 with
Retry-After, without looking at the answer (OWASP ASVS 4.0.3 V2.2.1; NIST SP 800-63B §5.2.2).
Per client IP, the "reauth" rules (apps.ratelimit GROUPS) apply before the view besides.

A proof is recorded in the browser session by apps.mfa.reauthentication (which the security
page reads): with what it was made, since a factor cannot confirm its own removal (issue 15).
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.models import User
from apps.core.events import EventType, emit
from apps.mfa.errors import FactorNotFound
from apps.mfa.methods import OTP
from apps.mfa.models import FactorKind
from apps.mfa.passkeys import webauthn_authentication_begin, webauthn_authentication_finish
from apps.mfa.reauthentication import reauthentication_record, recently_authenticated
from apps.mfa.recovery import recovery_code_use
from apps.mfa.selectors import factors_of
from apps.mfa.totp import DIGITS, totp_verify
from apps.signin.account import current_password_verify
from apps.signin.second_factor import Failure, prove
from apps.signin.second_factor_forms import RecoveryCodeForm, TotpForm, WebAuthnForm

UNREADABLE_KEY = "Your browser sent an answer we cannot read. Try again."


class PasswordForm(forms.Form):
    # strip=False: the password as typed, spaces at either end included (ASVS 6.2.8), as /login.
    password = forms.CharField(label="Your password", max_length=1024, strip=False)


class CodeForm(forms.Form):
    """A code of the person's authenticator app, or a recovery code: told apart by their form
    (the sign-in's TotpForm and RecoveryCodeForm rules), so a typo of neither form is told at
    once and costs no attempt."""

    code = forms.CharField(
        label=f"A code from your authenticator app ({DIGITS} digits) or a recovery code",
        max_length=40,
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "code" not in cleaned:
            return cleaned
        for kind, form in (
            (FactorKind.TOTP, TotpForm),
            (FactorKind.RECOVERY_CODES, RecoveryCodeForm),
        ):
            read = form({"code": cleaned["code"]})
            if read.is_valid():
                cleaned["kind"], cleaned["code"] = kind, read.cleaned_data["code"]
                return cleaned
        self.add_error(
            "code",
            f"Type the {DIGITS} digits your authenticator app shows, or a recovery code "
            "like ABCD-EFGH-JKLM-NPQR.",
        )
        return cleaned


def _person(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required
    return user


def _back(request: HttpRequest) -> str:
    """Where the page returns: a page of the security section only (OWASP ASVS 4.0.3 5.1.5:
    no open redirect)."""
    home = reverse("mfa:factors")
    target = request.POST.get("next") or request.GET.get("next") or ""
    if (
        target.startswith(home)
        and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
        and "\\" not in target
    ):
        return target
    return home


def _page(
    request: HttpRequest,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> HttpResponse:
    user = _person(request)
    kinds = {factor.kind for factor in factors_of(user)}
    back = _back(request)
    context: dict[str, Any] = {
        "next": back,
        "password_form": PasswordForm(),
        "code_form": CodeForm(),
        "has_password": user.has_usable_password(),
        "has_codes": FactorKind.TOTP in kinds or FactorKind.RECOVERY_CODES in kinds,
        "has_passkey": FactorKind.WEBAUTHN in kinds,
        "removing": back.startswith(f"{reverse('mfa:factors')}remove/"),
    }
    context.update(extra)
    if context.get("passkey_error") and not context["has_passkey"]:
        context["error"] = context["passkey_error"]  # no passkey form to show it in
    response = render(request, "signin/reauthenticate.html", context, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _proven(request: HttpRequest, *, by: str) -> HttpResponse:
    reauthentication_record(request, by=by)
    return HttpResponseRedirect(_back(request))


@sensitive_post_parameters("password", "code")
@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def reauthenticate(request: HttpRequest) -> HttpResponse:
    """GET: the ways the person has to confirm. POST `method=password|code|passkey`."""
    if request.method == "GET":
        return _page(request)
    method = request.POST.get("method", "")
    if method == "password":
        return _password(request)
    if method == "code":
        return _code(request)
    if method == "passkey":
        return _passkey(request)
    return _page(request, status=400, error="Choose a way to confirm it is you.")


def _password(request: HttpRequest) -> HttpResponse:
    user = _person(request)
    form = PasswordForm(request.POST)
    if not form.is_valid():  # the form says what is missing; nothing was tried
        return _page(request, status=400, password_form=form)
    refusal = current_password_verify(request, user=user, password=form.cleaned_data["password"])
    if refusal is None:
        return _proven(request, by="password")
    if refusal.status == 400:  # a wrong password, on the person's timeline as at sign-in
        emit(
            EventType.LOGIN_FAILED,
            user_id=user.pk,
            success=False,
            resource_type="user",
            resource_id=user.pk,
            error_code="wrong_credentials",
            metadata={"provider": "local", "purpose": "reauthentication"},
        )
    form.add_error("password", refusal.message)
    return _page(request, status=refusal.status, headers=refusal.headers, password_form=form)


def _code(request: HttpRequest) -> HttpResponse:
    """A code of the person's authenticator app or a recovery code (each verification records
    its own mfa.* event), under the second factor's counter."""
    user = _person(request)
    form = CodeForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, code_form=form)
    code, method = form.cleaned_data["code"], form.cleaned_data["kind"]
    proof: list[str] = []

    def check() -> list[str]:
        if method == FactorKind.TOTP:
            device = totp_verify(user=user, code=code)
            proof.append(f"{FactorKind.TOTP}:{device.pk}")
        else:
            recovery_code_use(user=user, code=code)
            proof.append(str(FactorKind.RECOVERY_CODES))  # marked by kind: a set, not a code
        return OTP

    proven = prove(request, user=user, method=method, check=check)
    if isinstance(proven, Failure):
        form.add_error("code", proven.message)
        return _page(request, status=proven.status, headers=proven.headers, code_form=form)
    return _proven(request, by=proof[0])


def _passkey(request: HttpRequest) -> HttpResponse:
    user = _person(request)
    form = WebAuthnForm(request.POST)
    if not form.is_valid():  # nothing to verify: no attempt spent
        return _page(request, status=400, passkey_error=UNREADABLE_KEY)
    proof: list[str] = []

    def check() -> list[str]:
        assertion = webauthn_authentication_finish(
            user=user,
            ceremony_id=form.cleaned_data["ceremony"],
            response=form.cleaned_data["credential"],
        )
        proof.append(f"{FactorKind.WEBAUTHN}:{assertion.credential.pk}")
        return []

    proven = prove(request, user=user, method=FactorKind.WEBAUTHN, check=check)
    if isinstance(proven, Failure):
        return _page(
            request, status=proven.status, headers=proven.headers, passkey_error=proven.message
        )
    return _proven(request, by=proof[0])


@login_required
@never_cache
@require_POST
def reauthenticate_options(request: HttpRequest) -> JsonResponse:
    """A second-factor assertion's options (WebAuthn L2 §7.2; allowCredentials: this person's
    keys) as JSON for apps/mfa/static/mfa/webauthn.js. Beginning costs no attempt: only an
    answer is checked, under the counter."""
    try:
        ceremony = webauthn_authentication_begin(user=_person(request))
    except FactorNotFound:
        return JsonResponse(
            {"error": "You have no security key or passkey registered."}, status=400
        )
    return JsonResponse({"ceremony": ceremony.id, "publicKey": json.loads(ceremony.options_json)})


# --- for pages built on the sign-in (apps/federation: link and unlink an upstream account) ---
# They may import signin, not mfa (docs/architecture.md): the security page's rules reach them
# through here.


def confirmed_recently(request: HttpRequest) -> bool:
    """The security page's rule for a sensitive change (apps.mfa.reauthentication): the
    person signed in, or confirmed it was them, within REAUTHENTICATION_MAX_AGE."""
    return recently_authenticated(request)


def signs_in_without_upstream(user: User) -> bool:
    """The person can sign in by themselves: a usable password or a WebAuthn credential
    (a passkey signs in without the password, apps/signin/passwordless.py)."""
    return user.has_usable_password() or any(
        factor.kind == FactorKind.WEBAUTHN for factor in factors_of(user)
    )
