"""The console's second-factor pages (issue 15): what the person page shows of a person's
factors and of who requires one of them, and the acts on them: reset their factors, require a
second factor of them (or stop), and an organization's MFA policy.

What a factor is, is apps.mfa's (selectors.factors_of: names, kinds and times, never a secret);
the changes are its and apps.accounts' services, with the operator as the event's actor (OWASP
ASVS 7.2.2). Every change is a POST behind a confirmation page (Django's CSRF token), as
everywhere in the console."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.accounts.models import MfaRequiredBy, OrganizationMembership, User
from apps.accounts.selectors import organization_detail, organization_members
from apps.accounts.services import (
    mfa_required_by_policy,
    mfa_requirement_set,
    organization_mfa_policy_set,
)
from apps.console.lookups import user_or_404
from apps.console.permissions import administrator_required, operator_required
from apps.mfa.models import FactorKind
from apps.mfa.selectors import Factor, factors_of
from apps.mfa.services import mfa_reset
from apps.sessions.services import session_end_all


def person_mfa(
    user: User, organization_memberships: list[OrganizationMembership]
) -> dict[str, Any]:
    """The person page's Second factors section: their factors (three queries) and every
    reason a second factor is required of them: their own flag (and who set it), their
    organizations' policies (read from the memberships the page has loaded already) and
    IDP_MFA_REQUIRED."""
    factors = factors_of(user)
    requiring = [m.organization for m in organization_memberships if m.organization.mfa_required]
    return {
        "factors": factors,
        "mfa_organizations": requiring,
        "mfa_everyone": settings.MFA_REQUIRED,
        "mfa_required_effective": user.mfa_required or bool(requiring) or settings.MFA_REQUIRED,
        "has_usable_factor": any(_usable(f) for f in factors),
    }


def _usable(factor: Factor) -> bool:
    """A factor that passes the second-factor step (apps.mfa.selectors.has_second_factor):
    recovery codes alone are a fallback, and a cloned authenticator is refused."""
    return factor.kind != FactorKind.RECOVERY_CODES and not factor.cloned


class FactorResetForm(forms.Form):
    # A reset mostly answers a lost or stolen phone or security key: that device may also hold
    # a signed-in browser, and a session outlives the factor that opened it. Ending every
    # session is therefore offered and ticked by default (OWASP ASVS 3.3.3 / NIST SP 800-63B
    # §6.1.2.3: when an authenticator is lost or stolen, whoever holds it must be shut out);
    # an operator helping a person who merely replaced their phone may untick it. Offline
    # grants (apps that stay connected) are left to "Revoke everything", which says so.
    end_sessions = forms.BooleanField(
        required=False,
        initial=True,
        label="Also sign them out everywhere (end every session)",
        help_text="Applications they let stay connected (offline access) keep it; Revoke "
        "everything on their page ends that too.",
    )


@operator_required
@require_http_methods(["GET", "POST"])
def user_mfa_reset(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    """Removes every second factor of the person (apps.mfa.services.mfa_reset: mfa.reset with
    the operator as actor), and by default ends their sessions (session.revoked, reason
    "operator")."""
    user = user_or_404(user_id)
    if request.method != "POST":
        factors = factors_of(user)
        return _confirm(
            request,
            user,
            question=f"Reset the second factors of {user.email}?",
            detail=_what_goes(factors),
            more=[_what_next(user)],
            button="Reset second factors",
            form=FactorResetForm(),
        )
    form = FactorResetForm(request.POST)
    end_sessions = form.is_valid() and form.cleaned_data["end_sessions"]
    removed = mfa_reset(user=user, actor_id=request.user.pk)
    went = sum(removed.values())
    message = f"{user.email}: {went} second factor{'s' * (went != 1)} removed"
    if end_sessions:
        ended = session_end_all(user=user, reason="operator", actor_id=request.user.pk)
        message += f", {ended} live session{'s' * (ended != 1)} ended"
    messages.success(request, f"{message}.")
    return redirect("console:user", user_id=user.pk)


def _what_goes(factors: list[Factor]) -> str:
    counts = Counter(f.kind for f in factors)
    apps, keys = counts[FactorKind.TOTP], counts[FactorKind.WEBAUTHN]
    codes = next((f for f in factors if f.kind == FactorKind.RECOVERY_CODES), None)
    return (
        f"This removes {apps} authenticator app{'s' * (apps != 1)}, {keys} security "
        f"key{'s' * (keys != 1)} or passkeys and "
        + (f"their recovery codes ({codes.remaining} unused)" if codes else "no recovery codes")
        + "; it cannot be undone."
    )


def _what_next(user: User) -> str:
    if mfa_required_by_policy(user) or settings.MFA_REQUIRED:
        return (
            "A second factor is required of them: at their next sign-in, after the password, "
            "they enrol a new one before they get in."
        )
    return (
        "No second factor is required of them: they sign in with the password alone until "
        "they enrol a new one on their security page."
    )


class MfaRequiredForm(forms.Form):
    """The query string of both halves of a "require MFA" page: the state asked for."""

    required = forms.ChoiceField(
        choices=[("yes", "yes"), ("no", "no")],
        error_messages={
            "required": "Say required=yes or required=no.",
            "invalid_choice": "required is yes or no.",
        },
    )


@operator_required
@require_http_methods(["GET", "POST"])
def user_mfa_required(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    """Require a second factor of the person at every sign-in, or stop requiring it
    (accounts.services.mfa_requirement_set, source "operator": user.changed with the
    operator as actor). NIST SP 800-63B §4.2: AAL2 needs two factors."""
    user = user_or_404(user_id)
    required, errors = _required(request)
    if required is None:
        return _bad_request(request, errors, back=_person_url(user))
    if request.method != "POST":
        if required:
            question = f"Require a second factor of {user.email}?"
            detail = (
                "From their next sign-in, the password alone no longer lets them in: they "
                "prove a second factor, or enrol one first if they have none. Their live "
                "sessions stay as they are."
            )
        else:
            question = f"Stop requiring a second factor of {user.email}?"
            by = user.mfa_required_by
            detail = (
                "Their own requirement is lifted"
                + (f" (set by {MfaRequiredBy(by).label.lower()})" if by else "")
                + ". Their factors stay enrolled and are still asked for; an organization's "
                "policy or the global setting may still require one."
            )
        return _confirm(
            request,
            user,
            question=question,
            detail=detail,
            button="Require a second factor" if required else "Stop requiring",
            danger=not required,
        )
    changed = mfa_requirement_set(
        user=user, required=required, actor_id=request.user.pk, source=MfaRequiredBy.OPERATOR
    )
    if changed:
        state = "now required" if required else "no longer required by their own setting"
        messages.success(request, f"{user.email}: a second factor is {state}.")
    else:
        state = "required already" if required else "not required by their own setting"
        messages.info(request, f"{user.email}: nothing changed, a second factor was {state}.")
    return redirect("console:user", user_id=user.pk)


@administrator_required
@require_http_methods(["GET", "POST"])
def organization_mfa_policy(request: HttpRequest, organization_id: uuid.UUID) -> HttpResponse:
    """Every member must prove a second factor at sign-in, or no longer must
    (accounts.services.organization_mfa_policy_set: permission.changed with the actor).
    Administrators, as every change to an organization itself (apps.console.directory:
    the structure is theirs; operators manage memberships)."""
    organization = organization_detail(organization_id=organization_id)
    if organization is None:
        raise Http404("No organization has this id.")
    back = reverse("console:organization", kwargs={"organization_id": organization.pk})
    required, errors = _required(request)
    if required is None:
        return _bad_request(request, errors, back=back)
    if request.method != "POST":
        members = organization_members(organization=organization).count()
        people = f"{members} member{'s' * (members != 1)}"
        return _confirm(
            request,
            None,
            question=(
                f"Require a second factor of every member of {organization.name}?"
                if required
                else f"Stop requiring a second factor in {organization.name}?"
            ),
            detail=(
                f"Its {people} must prove a second factor at every sign-in from their next "
                "one; those without one enrol it first. Live sessions stay as they are."
                if required
                else f"Its {people} are no longer asked for a second factor because of this "
                "organization; their own setting, another organization or the global setting "
                "may still require one, and enrolled factors are still asked for."
            ),
            button="Require a second factor" if required else "Stop requiring",
            danger=not required,
            back=back,
        )
    if organization_mfa_policy_set(
        organization=organization, required=required, actor_id=request.user.pk
    ):
        state = "requires" if required else "no longer requires"
        messages.success(request, f"{organization.name} {state} a second factor.")
    else:
        messages.info(request, f"{organization.name}: nothing changed.")
    return redirect(back)


def _required(request: HttpRequest) -> tuple[bool | None, list[str]]:
    """The state asked for (True, False), or None with what is wrong with the query."""
    form = MfaRequiredForm(request.GET)
    if not form.is_valid():
        return None, [str(e) for errors in form.errors.values() for e in errors]
    return form.cleaned_data["required"] == "yes", []


def _bad_request(request: HttpRequest, errors: list[str], *, back: str) -> HttpResponse:
    """A link that asks for no state, or another (400): the page says what is wrong."""
    return render(request, "console/bad_request.html", {"errors": errors, "back": back}, status=400)


def _person_url(user: User) -> str:
    return reverse("console:user", kwargs={"user_id": user.pk})


def _confirm(
    request: HttpRequest,
    user: User | None,
    *,
    question: str,
    detail: str,
    button: str,
    more: list[str] | None = None,
    form: forms.Form | None = None,
    danger: bool = True,
    back: str = "",
) -> HttpResponse:
    """The GET half, as apps.console.views._confirm, with the form's fields in it."""
    if not back and user is not None:
        back = _person_url(user)
    context = {
        "person": user,
        "question": question,
        "detail": detail,
        "more": more or [],
        "button": button,
        "back": back,
        "form": form,
        "danger": danger,
    }
    return render(request, "console/confirm.html", context)
