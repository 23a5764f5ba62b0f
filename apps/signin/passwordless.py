"""Passwordless sign-in with a passkey (a discoverable WebAuthn credential, WebAuthn L2 §5.8.2
"residentKey"), from the sign-in page: its "Sign in with a passkey" button, or the browser's
autofill of passkeys in the address field (conditional mediation, WebAuthn L3 §5.1.4.1).

Two POSTs, both under CSRF protection and rate limited per client IP before the view runs
(the "passkey" group of apps.ratelimit, IDP_RATELIMIT_PASSKEY_IP):
- `options`: navigator.credentials.get()'s options without allowCredentials, user
  verification required (apps.mfa.passkeys.webauthn_authentication_begin(user=None); §6.2.3:
  the credential alone must prove the person, not only a present one);
- `finish`: the assertion, verified by apps.mfa.passkeys (challenge, origin, RP ID,
  signature, UV flag, counter), names the person; then the sign-in pipeline's own session
  steps (STEPS below), so a passkey sign-in opens its session, is recognised as a device and
  announces a new one exactly as a password sign-in does.

What it proves (RFC 8176 amr, apps/sessions/levels.py): `hwk` for a device-bound key or
`swk` for a synced passkey (backup eligible), plus `mfa`: the authenticator verified the
person (PIN or biometric) without saying how. Possession and that verification are two
factors (NIST SP 800-63B §5.1.8, multi-factor cryptographic authenticator): level 2, level 3
for a device-bound key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from apps.core.events import EventType, emit
from apps.core.security_headers import allow_continuation
from apps.mfa.errors import ClonedAuthenticator, MalformedInput, MfaError
from apps.mfa.passkeys import (
    Assertion,
    webauthn_authentication_begin,
    webauthn_authentication_finish,
)
from apps.signin.forms import LoginForm
from apps.signin.pipeline import (
    PROVIDER,
    Attempt,
    Interaction,
    Refusal,
    Step,
    assess_risk,
    not_blocked,
    notify_new_device,
    open_session,
    recognize_device,
    run_steps,
)
from apps.signin.views import _safe_next

CEREMONY_MAX = 64  # characters of a ceremony id (apps.mfa.passkeys bounds it too)
NOT_VERIFIED = "Your passkey could not be verified. Try again, or sign in with your password."
CLONED = (
    "This passkey has been blocked because it may have been copied. Sign in with your "
    "password and another factor, and remove it on your security page."
)
UNREADABLE = "Your browser sent an answer we cannot read. Try again."


@dataclass
class PasskeyAttempt(Attempt):
    """A sign-in by passkey: no address typed and no password; the ceremony instead."""

    ceremony: str = ""
    credential: str = ""
    assertion: Assertion | None = None


def first_factor_passkey(attempt: Attempt) -> Refusal | None:
    """The assertion (apps.mfa.passkeys records mfa.succeeded or mfa.failed itself); a
    deactivated account is refused like a failed assertion (no hint it exists)."""
    assert isinstance(attempt, PasskeyAttempt)
    try:
        assertion = webauthn_authentication_finish(
            ceremony_id=attempt.ceremony, response=attempt.credential, user=None
        )
    except MfaError as error:
        return _refused(attempt, error)
    user = assertion.credential.user
    attempt.user, attempt.email, attempt.assertion = user, user.email, assertion
    if not user.is_active or not assertion.user_verified:  # UV: checked by passkeys too
        return _refused(attempt, None)
    attempt.amr.extend(amr_of(assertion))
    return None


def amr_of(assertion: Assertion) -> list[str]:
    """RFC 8176 methods of a user-verified passkey sign-in (apps/sessions/levels.py's
    contract for apps/mfa): the key's kind, then `mfa` for the verification."""
    key = "swk" if assertion.credential.backup_eligible else "hwk"
    return [key, "mfa"] if assertion.user_verified else [key, "user"]


# Read top to bottom like pipeline.STEPS: the first factor is the passkey (it names the
# account, so no identify step, and the rate limits ran before the view), then the pipeline's
# own steps: a blocked person is refused and the attempt judged by threat scoring (a
# require_mfa is met already: a user-verified passkey is two factors on its own, so there is
# no second-factor step).
STEPS: tuple[Step, ...] = (
    first_factor_passkey,
    not_blocked,
    assess_risk,
    recognize_device,
    open_session,
    notify_new_device,
)


def sign_in(
    request: HttpRequest, *, ceremony: str, credential: str
) -> Attempt | Refusal | Interaction:
    attempt = PasskeyAttempt(
        request=request, email="", password="", ceremony=ceremony, credential=credential
    )
    return run_steps(attempt, STEPS)


def _refused(attempt: PasskeyAttempt, error: MfaError | None) -> Refusal:
    user_id = attempt.user.pk if attempt.user is not None else None
    code = error.error_code if error is not None else "wrong_credentials"
    emit(
        EventType.LOGIN_FAILED,
        user_id=user_id,
        success=False,
        resource_type="user",
        resource_id=user_id,
        error_code=code,
        error_message=NOT_VERIFIED,
        metadata={"provider": PROVIDER, "method": "passkey"},
    )
    if isinstance(error, ClonedAuthenticator):
        return Refusal(CLONED, status=400)
    if isinstance(error, MalformedInput):
        return Refusal(UNREADABLE, status=400)
    return Refusal(NOT_VERIFIED, status=400)


@csrf_protect
@never_cache
@require_POST
def options(request: HttpRequest) -> HttpResponse:
    """The options of a passwordless assertion as webauthn.js reads them."""
    ceremony = webauthn_authentication_begin(user=None)
    return JsonResponse({"ceremony": ceremony.id, "publicKey": json.loads(ceremony.options_json)})


@csrf_protect
@never_cache
@require_POST
def finish(request: HttpRequest) -> HttpResponse:
    outcome = sign_in(
        request,
        ceremony=request.POST.get("ceremony", "")[:CEREMONY_MAX],
        credential=request.POST.get("credential", ""),
    )
    if isinstance(outcome, Attempt):
        return HttpResponseRedirect(_safe_next(request))
    if isinstance(outcome, Interaction):  # none of these steps asks one; kept for the type
        return HttpResponseRedirect(outcome.url)
    form = LoginForm({"email": "", "password": ""})  # bound: it carries the refusal
    form.is_valid()
    form.add_error(None, outcome.message)
    response = render(
        request,
        "signin/login.html",
        {"form": form, "next": _safe_next(request)},
        status=outcome.status,
    )
    for name, value in outcome.headers.items():
        response[name] = value
    return allow_continuation(response, _safe_next(request))
