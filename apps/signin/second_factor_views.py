"""The second-factor pages under /login/second-factor: the challenge (TOTP, recovery code,
WebAuthn), enrolment at sign-in for a person who must have a factor but has none, and
step-up of a live session. Thin views over apps.signin.second_factor and apps.mfa; the sign-in
finishes through pipeline.sign_in_resume, a step-up through sessions' session_step_up.

WebAuthn forms follow the one browser contract (docs/architecture.md; issue 15): a form with
data-webauthn="get|create" and data-options-url, whose script POSTs to the options URL for
{"ceremony", "publicKey"} and submits `ceremony` + `credential` to the form's action. Every
answer to bad input is a page or JSON with a message, never a 500.
"""

from __future__ import annotations

import json

import segno
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.models import User
from apps.core.security_headers import allow_continuation
from apps.mfa.errors import FactorNotFound, MfaError
from apps.mfa.methods import OTP, amr_for_webauthn
from apps.mfa.models import FactorKind, TotpDevice
from apps.mfa.passkeys import (
    webauthn_authentication_begin,
    webauthn_authentication_finish,
    webauthn_registration_begin,
    webauthn_registration_finish,
)
from apps.mfa.recovery import recovery_code_use, recovery_codes_generate
from apps.mfa.totp import totp_confirm, totp_enrol, totp_provisioning_uri, totp_secret, totp_verify
from apps.sessions.selectors import session_current
from apps.sessions.services import session_step_up
from apps.signin import pipeline
from apps.signin.notices import security_notice
from apps.signin.second_factor import (
    STEP_UP,
    Challenge,
    Failure,
    challenge_current,
    challenge_end,
    challenge_save,
    challenge_user,
    factors_offered,
    failure_message,
    log,
    may_enrol,
    prove,
)
from apps.signin.second_factor_forms import RecoveryCodeForm, TotpForm, WebAuthnForm

EXPIRED = "This sign-in took too long or has ended. Sign in again."
HAS_FACTOR = "Your account has a second factor already: use it to sign in."


def _expired(request: HttpRequest) -> HttpResponse:
    """No challenge in this browser (none begun, over five minutes old, or its session
    ended): say so and lead back to the sign-in page."""
    status = 200 if request.method == "GET" else 400
    return render(request, "signin/second_factor_expired.html", {"message": EXPIRED}, status=status)


def _enrolling(request: HttpRequest) -> tuple[Challenge, User] | HttpResponse:
    """The challenge of a person who may enrol here (second_factor.may_enrol), or the answer:
    no challenge, or a person who has a factor (sent to prove it)."""
    found = _challenged(request)
    if found is None:
        return _expired(request)
    if not may_enrol(found[1]):
        return HttpResponseRedirect(reverse("signin:second_factor"))
    return found


def _challenged(request: HttpRequest) -> tuple[Challenge, User] | None:
    challenge = challenge_current(request)
    if challenge is None:
        return None
    user = challenge_user(challenge)
    if user is None:  # deactivated meanwhile
        challenge_end(request)
        return None
    return challenge, user


def _finish(
    request: HttpRequest, challenge: Challenge, user: User, amr: list[str]
) -> HttpResponse | None:
    """Completes the journey with the methods just proven: the rest of the sign-in pipeline
    (device, session, notice), or the live session's step-up (session_step_up; the browser
    session's key renewed, OWASP Session Management Cheat Sheet: renew on privilege change).
    None when done (the caller redirects to `next` or shows its page); else the answer."""
    challenge_end(request)
    if challenge.mode == STEP_UP:
        session = session_current(request)
        if session is None or str(session.pk) != challenge.session_id:
            return _expired(request)
        if amr and not session_step_up(session=session, amr=amr):
            return _expired(request)
        request.session.cycle_key()
        return None
    outcome = pipeline.sign_in_resume(
        request,
        user=user,
        amr=[*challenge.amr, *amr],
        next_url=challenge.next_url,
        risk=challenge.risk,
        provider=challenge.provider,
    )
    if isinstance(outcome, pipeline.Refusal):
        return render(
            request,
            "signin/second_factor_expired.html",
            {"message": outcome.message},
            status=outcome.status,
        )
    if isinstance(outcome, pipeline.Interaction):  # cannot happen: the step is settled
        return HttpResponseRedirect(outcome.url)
    return None


def _page(
    request: HttpRequest,
    challenge: Challenge,
    user: User,
    *,
    totp_form: TotpForm | None = None,
    recovery_form: RecoveryCodeForm | None = None,
    error: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    offer = factors_offered(user, wanted=challenge.wanted, mode=challenge.mode)
    template = "signin/second_factor.html" if offer.any else "signin/second_factor_none.html"
    response = render(
        request,
        template,
        {
            "challenge": challenge,
            "step_up": challenge.mode == STEP_UP,
            "offer": offer,
            "totp_form": totp_form or TotpForm(),
            "recovery_form": recovery_form or RecoveryCodeForm(),
            "error": error,
            "next": challenge.next_url,
            "may_enrol": may_enrol(user),
        },
        status=status,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return allow_continuation(response, challenge.next_url)


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def challenge_page(request: HttpRequest) -> HttpResponse:
    """GET: the person's factors. POST: a TOTP code (`method=totp`) or a recovery code
    (`method=recovery`)."""
    found = _challenged(request)
    if found is None:
        return _expired(request)
    challenge, user = found
    if request.method == "GET":
        offer = factors_offered(user, wanted=challenge.wanted, mode=challenge.mode)
        if not offer.any and challenge.required:
            return HttpResponseRedirect(reverse("signin:second_factor_enrol"))
        return _page(request, challenge, user)
    if request.POST.get("method") == "recovery":
        recovery_form = RecoveryCodeForm(request.POST)
        if not recovery_form.is_valid():
            return _page(request, challenge, user, recovery_form=recovery_form, status=400)
        remaining: list[int] = []

        def use_code() -> list[str]:
            remaining.append(recovery_code_use(user=user, code=recovery_form.cleaned_data["code"]))
            return OTP

        proven = prove(request, user=user, method=FactorKind.RECOVERY_CODES, check=use_code)
        if isinstance(proven, Failure):
            recovery_form.add_error("code", proven.message)
            return _page(
                request, challenge, user, recovery_form=recovery_form,
                status=proven.status, headers=proven.headers,
            )  # fmt: skip
        answer = _finish(request, challenge, user, proven)
        if answer is not None:
            return answer
        # NIST SP 800-63B §5.1.2: the person is told how many look-up secrets remain.
        page = render(
            request,
            "signin/second_factor_recovery_used.html",
            {"remaining": remaining[0], "next": challenge.next_url},
        )
        return allow_continuation(page, challenge.next_url)
    totp_form = TotpForm(request.POST)
    if not totp_form.is_valid():
        return _page(request, challenge, user, totp_form=totp_form, status=400)

    def verify_code() -> list[str]:
        totp_verify(user=user, code=totp_form.cleaned_data["code"])
        return OTP

    proven = prove(request, user=user, method=FactorKind.TOTP, check=verify_code)
    if isinstance(proven, Failure):
        totp_form.add_error("code", proven.message)
        return _page(
            request, challenge, user, totp_form=totp_form,
            status=proven.status, headers=proven.headers,
        )  # fmt: skip
    return _finish(request, challenge, user, proven) or HttpResponseRedirect(challenge.next_url)


def _json_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _options(ceremony_id: str, options_json: str) -> JsonResponse:
    return JsonResponse({"ceremony": ceremony_id, "publicKey": json.loads(options_json)})


@csrf_protect
@never_cache
@require_POST
def webauthn_options(request: HttpRequest) -> JsonResponse:
    """WebAuthn L2 §7.2: the assertion options for the person's credentials (JSON)."""
    found = _challenged(request)
    if found is None:
        return _json_error(EXPIRED, 400)
    _, user = found
    try:
        ceremony = webauthn_authentication_begin(user=user)
    except FactorNotFound:
        return _json_error("No security key or passkey is set up for your account.", 400)
    return _options(ceremony.id, ceremony.options_json)


@csrf_protect
@never_cache
@require_POST
def webauthn_answer(request: HttpRequest) -> HttpResponse:
    """The browser's assertion (`ceremony`, `credential`) for the challenge."""
    found = _challenged(request)
    if found is None:
        return _expired(request)
    challenge, user = found
    form = WebAuthnForm(request.POST)
    if not form.is_valid():
        return _page(
            request, challenge, user,
            error="The security key's answer could not be read. Try again.", status=400,
        )  # fmt: skip

    def assert_key() -> list[str]:
        assertion = webauthn_authentication_finish(
            ceremony_id=form.cleaned_data["ceremony"],
            response=form.cleaned_data["credential"],
            user=user,
        )
        return amr_for_webauthn(assertion.credential, user_verified=assertion.user_verified)

    proven = prove(request, user=user, method=FactorKind.WEBAUTHN, check=assert_key)
    if isinstance(proven, Failure):
        return _page(
            request, challenge, user, error=proven.message,
            status=proven.status, headers=proven.headers,
        )  # fmt: skip
    return _finish(request, challenge, user, proven) or HttpResponseRedirect(challenge.next_url)


@csrf_protect
@never_cache
@require_POST
def go_on(request: HttpRequest) -> HttpResponse:
    """Go on without a (further) factor. A step-up goes back to `next` with the session as it
    is: the authorize request then decides, and never sends the browser back
    (docs/architecture.md). A pending sign-in may go on with the password alone only when the
    person has no factor at all and no policy requires one (a request only asked for it)."""
    found = _challenged(request)
    if found is None:
        return _expired(request)
    challenge, user = found
    if challenge.mode != STEP_UP:
        if challenge.required:
            return HttpResponseRedirect(reverse("signin:second_factor_enrol"))
        if factors_offered(user, wanted=challenge.wanted, mode=challenge.mode).any:
            return _page(
                request, challenge, user, error="Prove your second factor first.", status=400
            )
    return _finish(request, challenge, user, []) or HttpResponseRedirect(challenge.next_url)


@csrf_protect
@never_cache
@require_POST
def cancel(request: HttpRequest) -> HttpResponse:
    """Leave: a step-up goes back to `next` as it is (authorize decides); a pending sign-in is
    dropped (another account, another day)."""
    challenge = challenge_current(request)
    challenge_end(request)
    if challenge is not None and challenge.mode == STEP_UP:
        return HttpResponseRedirect(challenge.next_url)
    logout(request)  # nothing was signed in; drops the browser session's data
    return HttpResponseRedirect(reverse("signin:login"))


# --- enrolment at sign-in -----------------------------------------------------------------


def _enrol_page(
    request: HttpRequest,
    challenge: Challenge,
    user: User,
    *,
    totp_form: TotpForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    device = None
    if challenge.totp_device:
        device = TotpDevice.objects.filter(
            pk=challenge.totp_device, user=user, confirmed_at__isnull=True
        ).first()
    if device is None:
        device = totp_enrol(user=user, name="Authenticator app").device
        challenge.totp_device = str(device.pk)
        challenge_save(request, challenge)
    secret = totp_secret(device)
    uri = totp_provisioning_uri(user=user, secret=secret)
    qr = segno.make(uri, error="m").svg_inline(
        scale=4, dark="#000", light="#fff", title="QR code for your authenticator app"
    )
    page = render(
        request,
        "signin/second_factor_enrol.html",
        {
            "challenge": challenge,
            "required": challenge.required,
            # segno draws the SVG from the URI alone: no markup of ours or the person's in it.
            "qr_svg": mark_safe(qr),  # noqa: S308
            "secret_groups": [secret[i : i + 4] for i in range(0, len(secret), 4)],
            "totp_form": totp_form or TotpForm(),
            "error": error,
        },
        status=status,
    )
    return allow_continuation(page, challenge.next_url)


def _enrolled(
    request: HttpRequest, challenge: Challenge, user: User, amr: list[str]
) -> HttpResponse:
    """The new factor signs the person in (or steps the session up); recovery codes are made
    and shown once (NIST SP 800-63B §5.1.2), with a button on to `next`."""
    answer = _finish(request, challenge, user, amr)
    if answer is not None:
        return answer
    try:
        security_notice(user=user, kind="mfa_added", request=request)
    except Exception:  # the broker or the template: a missing notice is not a refusal
        log.exception("factor-added notice not queued for %s", user.pk)
    codes = recovery_codes_generate(user=user)
    page = render(
        request,
        "signin/second_factor_enrolled.html",
        {"codes": codes, "next": challenge.next_url},
    )
    return allow_continuation(page, challenge.next_url)


@never_cache
@require_http_methods(["GET"])
def enrol(request: HttpRequest) -> HttpResponse:
    """An authenticator app (TOTP, QR drawn server-side) or a security key / passkey."""
    found = _enrolling(request)
    if isinstance(found, HttpResponse):
        return found
    return _enrol_page(request, *found)


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
@require_POST
def enrol_totp(request: HttpRequest) -> HttpResponse:
    """The first code from the app proves it holds the secret (apps.mfa.totp.totp_confirm)."""
    found = _enrolling(request)
    if isinstance(found, HttpResponse):
        return found
    challenge, user = found
    form = TotpForm(request.POST)
    if not form.is_valid():
        return _enrol_page(request, challenge, user, totp_form=form, status=400)
    device = None
    if challenge.totp_device:
        device = TotpDevice.objects.filter(
            pk=challenge.totp_device, user=user, confirmed_at__isnull=True
        ).first()
    if device is None:
        return _enrol_page(
            request, challenge, user, error="Scan the new code below, then type its code.",
            status=400,
        )  # fmt: skip

    def confirm_code() -> list[str]:
        totp_confirm(device=device, code=form.cleaned_data["code"])
        return OTP

    proven = prove(request, user=user, method=FactorKind.TOTP, check=confirm_code)
    if isinstance(proven, Failure):
        form.add_error("code", proven.message)
        return _enrol_page(request, challenge, user, totp_form=form, status=proven.status)
    return _enrolled(request, challenge, user, proven)


@csrf_protect
@never_cache
@require_POST
def enrol_webauthn_options(request: HttpRequest) -> JsonResponse:
    """WebAuthn L2 §7.1: registration options for the pending person (JSON)."""
    found = _enrolling(request)
    if isinstance(found, HttpResponse):
        return _json_error(EXPIRED if found.status_code != 302 else HAS_FACTOR, 400)
    ceremony = webauthn_registration_begin(user=found[1])
    return _options(ceremony.id, ceremony.options_json)


@csrf_protect
@never_cache
@require_POST
def enrol_webauthn(request: HttpRequest) -> HttpResponse:
    found = _enrolling(request)
    if isinstance(found, HttpResponse):
        return found
    challenge, user = found
    form = WebAuthnForm(request.POST)
    if not form.is_valid():
        return _enrol_page(
            request, challenge, user,
            error="The security key's answer could not be read. Try again.", status=400,
        )  # fmt: skip
    try:
        credential = webauthn_registration_finish(
            user=user,
            ceremony_id=form.cleaned_data["ceremony"],
            response=form.cleaned_data["credential"],
            name=form.cleaned_data["name"] or "Security key",
        )
    except MfaError as error:
        return _enrol_page(
            request, challenge, user, error=failure_message(error, FactorKind.WEBAUTHN),
            status=400,
        )  # fmt: skip
    # A registration proves the key is held; whether it verified the person is not returned,
    # so it counts as presence only (RFC 8176 "user").
    return _enrolled(request, challenge, user, amr_for_webauthn(credential, user_verified=False))
