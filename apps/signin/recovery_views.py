"""The pages of e-mail verification and password reset (services: apps.signin.recovery).

A link's GET only shows a page with a button: mail scanners and link previews fetch links
before the person clicks, so nothing changes until the person POSTs the form (the token
travels in the form too; the path's copy is only read). Every bad, used or expired link gets
a page that says so and how to get a new one, never an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.password_validation import password_validators_help_texts
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from apps.accounts.models import User
from apps.core.commit import unqueued_tasks
from apps.ratelimit import services as ratelimit
from apps.signin import recovery
from apps.signin.links import NOT_SENT, LinkInvalid

# The form reads at most this many characters of a password (as the sign-in form does); the
# policy's own maximum (PASSWORD_MAX_LENGTH) is lower and says so in its message.
PASSWORD_INPUT_MAX = 1024


class ForgotForm(forms.Form):
    # RFC 5321 §4.5.3.1.3: an address is at most 254 octets.
    email = forms.EmailField(
        max_length=254,
        error_messages={
            "required": "Enter the e-mail address of your account.",
            "invalid": "Enter an e-mail address such as name@example.com.",
            "max_length": "An e-mail address is at most 254 characters.",
        },
    )

    def clean_email(self) -> str:
        email = str(self.cleaned_data["email"])
        if any(c in email for c in "\r\n\0"):  # header injection (OWASP ASVS 5.2.3)
            raise ValidationError("Enter an e-mail address such as name@example.com.")
        return email


class ResetForm(forms.Form):
    token = forms.CharField(max_length=1024, widget=forms.HiddenInput)
    password = forms.CharField(
        max_length=PASSWORD_INPUT_MAX,
        strip=False,
        error_messages={
            "required": "Choose a new password.",
            "max_length": f"Use at most {PASSWORD_INPUT_MAX} characters.",
        },
    )
    password_again = forms.CharField(
        max_length=PASSWORD_INPUT_MAX,
        strip=False,
        error_messages={
            "required": "Type the new password again.",
            "max_length": f"Use at most {PASSWORD_INPUT_MAX} characters.",
        },
    )

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        first, again = cleaned.get("password"), cleaned.get("password_again")
        if first is not None and again is not None and first != again:
            self.add_error("password_again", "The two passwords differ. Type the same twice.")
        return cleaned


class TokenForm(forms.Form):
    token = forms.CharField(max_length=1024, widget=forms.HiddenInput)


def _wait(decision: ratelimit.Decision) -> str:
    when = datetime.now(UTC) + timedelta(seconds=max(1, decision.retry_after))
    return f"Try again in {decision.wait} (after {when:%H:%M} UTC)."


def _refused(request: HttpRequest, template: str, context: dict[str, object], what: str,
             decision: ratelimit.Decision) -> HttpResponse:  # fmt: skip
    context = {**context, "refusal": f"{what} {_wait(decision)}"}
    response = render(request, template, context, status=429)
    for name, value in decision.headers().items():
        response[name] = value
    return response


# --- e-mail verification --------------------------------------------------------------------


@login_required
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def verify_resend(request: HttpRequest) -> HttpResponse:
    """The signed-in person's verification state, and a new link on POST (limited per
    account and per client IP: `verify.account`, `verify.ip`)."""
    user = request.user
    assert isinstance(user, User)
    context: dict[str, object] = {"hours": settings.EMAIL_VERIFY_HOURS}
    if request.method == "POST":
        decision = ratelimit.check(request, account=str(user.pk))
        if not decision.allowed:
            what = "You asked for several links in a short time."
            return _refused(request, "signin/verify_resend.html", context, what, decision)
        with unqueued_tasks() as unqueued:
            sent = recovery.verification_send(user, request=request)
        if unqueued:
            messages.error(request, NOT_SENT)
        elif sent:
            messages.success(
                request,
                f"We sent a new link to {user.email}. It works for "
                f"{settings.EMAIL_VERIFY_HOURS} hours; earlier links still work until then.",
            )
        # Back where the button was: the account page, or this page (a fixed choice, never
        # a URL from the form: no open redirect, OWASP ASVS 5.1.5).
        back = "signin:account" if request.POST.get("next") == "account" else "signin:verify_resend"
        return HttpResponseRedirect(reverse(back))
    return render(request, "signin/verify_resend.html", context)


@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest, token: str) -> HttpResponse:
    """The link mailed by verification_send: GET shows the address and a confirm button,
    POST verifies it."""
    if request.method == "POST":
        form = TokenForm(request.POST)
        if not form.is_valid():
            return _link_refused(request, "signin/verify.html", LinkInvalid())
        try:
            user = recovery.email_verify(form.cleaned_data["token"])
        except LinkInvalid as invalid:
            return _link_refused(request, "signin/verify.html", invalid)
        return render(request, "signin/verify_done.html", {"email": user.email})
    try:
        link = recovery.verification_read(token)
    except LinkInvalid as invalid:
        return _link_refused(request, "signin/verify.html", invalid)
    context = {"form": TokenForm(initial={"token": token}), "email": link.data.get("email")}
    return render(request, "signin/verify.html", context)


def _link_refused(request: HttpRequest, template: str, invalid: LinkInvalid) -> HttpResponse:
    """A bad link's page: 410 Gone for an expired link (RFC 9110 §15.5.11: no longer
    available), 400 for anything else (malformed, tampered, used, for another account)."""
    context = {
        "invalid": True,
        "expired": invalid.expired,
        "minutes": settings.PASSWORD_RESET_MINUTES,
        "hours": settings.EMAIL_VERIFY_HOURS,
    }
    return render(request, template, context, status=410 if invalid.expired else 400)


# --- forgot and reset password --------------------------------------------------------------

# The task that makes and mails the link could not be queued (the broker down: one WARNING
# line, apps/core/commit.py). Nothing re-sends it later (docs/operations.md "The broker
# down"), so the page says so, the same for any address (the same task is queued for an
# address without an account).


@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def password_forgot(request: HttpRequest) -> HttpResponse:
    """Asks for the address; the answer is the same page whether or not an account has it
    (OWASP Forgot Password Cheat Sheet), after the limits per client IP and per address."""
    form = ForgotForm(request.POST if request.method == "POST" else None)
    context: dict[str, object] = {"form": form, "minutes": settings.PASSWORD_RESET_MINUTES}
    if request.method != "POST":
        return render(request, "signin/forgot.html", context)
    if not form.is_valid():
        return render(request, "signin/forgot.html", context, status=400)
    email = form.cleaned_data["email"]
    decision = ratelimit.check(request, account=email)
    if not decision.allowed:
        what = "Several links were asked for in a short time."
        return _refused(request, "signin/forgot.html", context, what, decision)
    with unqueued_tasks() as unqueued:
        recovery.password_reset_request(request, email=email)
    if unqueued:  # the broker did not take it: nothing will be sent, so promise nothing
        context["refusal"] = NOT_SENT
        response = render(request, "signin/forgot.html", context, status=503)
        response._has_been_logged = True  # type: ignore[attr-defined]  # the WARNING line said it
        return response
    return render(request, "signin/forgot_sent.html", {**context, "email": email})


@sensitive_post_parameters("password", "password_again", "token")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def password_reset(request: HttpRequest, token: str) -> HttpResponse:
    """The link mailed by password_reset_request: GET shows the new-password form (the link
    is only read), POST sets the password."""
    context: dict[str, object] = {
        "help_texts": password_validators_help_texts(),
        "minutes": settings.PASSWORD_RESET_MINUTES,
    }
    if request.method == "POST":
        form = ResetForm(request.POST)
        context["form"] = form
        if not form.is_valid():
            if "token" in form.errors:
                return _link_refused(request, "signin/reset.html", LinkInvalid())
            return render(request, "signin/reset.html", context, status=400)
        try:
            recovery.password_reset_complete(
                form.cleaned_data["token"], password=form.cleaned_data["password"], request=request
            )
        except LinkInvalid as invalid:
            return _link_refused(request, "signin/reset.html", invalid)
        except ValidationError as refused:
            for message in refused.messages:
                form.add_error("password", message)
            return render(request, "signin/reset.html", context, status=400)
        return render(request, "signin/reset_done.html")
    try:
        recovery.password_reset_read(token)
    except LinkInvalid as invalid:
        return _link_refused(request, "signin/reset.html", invalid)
    context["form"] = ResetForm(initial={"token": token})
    return render(request, "signin/reset.html", context)
