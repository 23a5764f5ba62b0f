"""Registration (/register, when IDP_REGISTRATION is "open") and organization invitations
(/invite/<token>, whenever an operator made one): an account exists only once its address
is verified.

Posting the form creates nothing. It keeps a *pending registration* in Redis for
REGISTRATION_LINK_MAX_AGE seconds — the address, the name, the password already hashed (the
clear password is never stored) and the invitation, if any — under the SHA-256 of a random
token, and mails the token as a link to the address. Following the link shows a button;
pressing it (a POST: mail scanners fetch links, they do not submit forms) takes the pending
registration out of Redis in one GETDEL, so a link works once, and creates the account with
`email_verified` true (and the membership, for an invitation). Until then there is no account
to sign in to, nor an address held for anyone: no squatting an address one does not own.

An address that already has an account gets the same page and status, and a different mail
("someone tried to register this address; sign in or reset your password") — OWASP
Authentication Cheat Sheet, "Account enumeration" at registration; the password is hashed on
both roads, so the time taken does not tell them apart either.

After confirming, the person signs in with their password: the mailed link proves the
mailbox, and e-mail is not an authenticator (NIST SP 800-63B §5.1.3.1), so the first session
goes through the sign-in pipeline (limits, password, later factors) like every other.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from apps.accounts.invitations import (
    InvitationUnusable,
    invitation_check,
    invitation_for_token,
    invitation_use,
)
from apps.accounts.models import OrganizationInvitation, User
from apps.accounts.selectors import user_id_for_email
from apps.accounts.services import user_create
from apps.core.commit import unqueued_tasks
from apps.core.events import EventType, emit
from apps.core.mail import mail_send, recipient
from apps.core.redis import get_redis
from apps.ratelimit import services as ratelimit
from apps.signin.links import NOT_SENT
from apps.signin.registration_forms import RegistrationForm

REDIS_PREFIX = "tessera:registration:"
# A token longer than this is not one of ours (ours are 43 characters).
TOKEN_MAX = 100


# --- services -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """A registration waiting for its address to be verified (kept in Redis as JSON)."""

    email: str
    name: str
    password: str  # the hash (make_password), never the password
    invitation: str | None  # the invitation's id


class RegistrationInvalid(Exception):
    """The link cannot create an account; `message` says why, to the person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


LINK_INVALID = (
    "This link is not valid: it was used already, it expired, or it is not complete. "
    "Register again to get a new one."
)


def _key(token: str) -> str:
    return REDIS_PREFIX + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def registration_open() -> bool:
    return settings.REGISTRATION == "open"


def _login_url(email: str, next_path: str = "") -> str:
    query = {"login_hint": email, **({"next": next_path} if next_path else {})}
    return settings.ISSUER + reverse("signin:login") + "?" + urlencode(query)


def registration_request(
    *,
    request: HttpRequest,
    email: str,
    name: str,
    password: str,
    invitation: OrganizationInvitation | None = None,
) -> None:
    """Keep a pending registration and mail its link to `email`, or, when the address
    already has an account, mail it that someone tried (the caller shows the same page
    either way). `email` and `name` come from RegistrationForm (normalized, checked), the
    password from it too (the policy passed). Records `registration.requested`."""
    hashed = make_password(password)  # on both roads: the time taken tells nothing
    existing = user_id_for_email(email)
    to = recipient(email, name)
    context: dict[str, object] = {
        "name": name,
        "organization": invitation.organization.name if invitation else "",
        "hours": settings.REGISTRATION_LINK_MAX_AGE // 3600,
    }
    if existing is not None:
        context["login_url"] = _login_url(email)
        context["forgot_url"] = settings.ISSUER + reverse("signin:password_forgot")
        mail_send("registration_exists", to=to, context=context)
    else:
        token = secrets.token_urlsafe(32)
        pending = Pending(
            email=email,
            name=name,
            password=hashed,
            invitation=str(invitation.pk) if invitation else None,
        )
        get_redis().set(
            _key(token), json.dumps(asdict(pending)), ex=settings.REGISTRATION_LINK_MAX_AGE
        )
        context["confirm_url"] = settings.ISSUER + reverse("signin:register_confirm", args=[token])
        mail_send("registration", to=to, context=context)
    emit(
        EventType.REGISTRATION_REQUESTED,
        user_id=existing,
        resource_type="user",
        resource_id=existing,
        metadata={
            "email": email,
            "existing_account": existing is not None,
            "via": "invitation" if invitation else "registration",
            "invitation_id": str(invitation.pk) if invitation else None,
        },
    )


def registration_pending(token: str) -> Pending | None:
    """The pending registration a link's token names (not consumed), or None."""
    if not token or len(token) > TOKEN_MAX:
        return None
    raw = get_redis().get(_key(token))
    return None if raw is None else _parse(raw)


def _parse(raw: bytes | str) -> Pending | None:
    try:
        return Pending(**json.loads(raw))
    except (ValueError, TypeError):
        return None


def registration_confirm(*, token: str) -> tuple[User, str]:
    """Create the account a link's pending registration describes, verified, and for an
    invitation its membership, in one transaction; the link is spent first (GETDEL), so it
    works once. Returns the account and the organization's name ("" without invitation).
    Raises RegistrationInvalid."""
    if not token or len(token) > TOKEN_MAX:
        raise RegistrationInvalid(LINK_INVALID)
    raw = get_redis().getdel(_key(token))
    pending = None if raw is None else _parse(raw)
    if pending is None:
        raise RegistrationInvalid(LINK_INVALID)
    if pending.invitation is None and not registration_open():
        raise RegistrationInvalid("Registration has been closed meanwhile. No account was made.")
    organization = ""
    try:
        with transaction.atomic():
            user = user_create(
                email=pending.email,
                name=pending.name,
                password_hash=pending.password,
                email_verified=True,  # the link was mailed to it: OIDC Core §5.1
                metadata={
                    "via": "invitation" if pending.invitation else "registration",
                    "invitation_id": pending.invitation,
                },
            )
            if pending.invitation is not None:
                membership = invitation_use(invitation_id=pending.invitation, user=user)
                organization = membership.organization.name
    except InvitationUnusable as error:
        raise RegistrationInvalid(f"{error.messages[0]} No account was made.") from None
    except ValidationError:  # the address got an account meanwhile (another link, an operator)
        raise RegistrationInvalid(
            "An account with this address exists already: sign in, or reset its password."
        ) from None
    return user, organization


# --- pages ----------------------------------------------------------------------------------


def _invalid(request: HttpRequest, message: str, *, status: int, title: str) -> HttpResponse:
    return render(
        request, "signin/register_invalid.html", {"message": message, "title": title}, status=status
    )


def _limits(request: HttpRequest, email: str) -> None:
    """The register rules per client IP and per address typed (existing or not), before any
    work; a refusal is a 429 page with Retry-After (apps.ratelimit.responses)."""
    decision = ratelimit.check(request, account=email[:254] if email else None)
    if not decision.allowed:
        raise ratelimit.Limited(decision)


def _submit(
    request: HttpRequest, form: RegistrationForm, invitation: OrganizationInvitation | None
) -> bool:
    """Validates and requests the registration; False with the form's errors set."""
    if not form.is_valid():
        return False
    email = form.cleaned_data["email"]
    if invitation is not None:
        try:
            invitation_check(invitation, email=email)
        except InvitationUnusable as error:
            form.add_error("email" if error.code == "address" else None, error.messages[0])
            return False
    with unqueued_tasks() as unqueued:
        registration_request(
            request=request,
            email=email,
            name=form.cleaned_data["name"],
            password=form.cleaned_data["password1"],
            invitation=invitation,
        )
    if unqueued:  # the broker did not take the mail: no "check your mail" page
        form.add_error(None, ValidationError(NOT_SENT, code="not_sent"))
        return False
    return True


def _status(form: RegistrationForm) -> int:
    """400 for what the person typed; 503 when only the mail could not be sent."""
    return 503 if form.has_error(NON_FIELD_ERRORS, code="not_sent") else 400


def _sent(request: HttpRequest, email: str) -> HttpResponse:
    context = {"email": email, "hours": settings.REGISTRATION_LINK_MAX_AGE // 3600}
    return render(request, "signin/register_sent.html", context)


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    if not registration_open():
        return _invalid(
            request,
            "This site does not take registrations. Ask your organization's administrator for "
            "an invitation link, or for an account.",
            status=404,
            title="Registration is closed",
        )
    form = RegistrationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        _limits(request, str(request.POST.get("email", "")))
        if _submit(request, form, None):
            return _sent(request, form.cleaned_data["email"])
    status = _status(form) if form.is_bound else 200
    return render(request, "signin/register.html", {"form": form}, status=status)


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def invite(request: HttpRequest, token: str) -> HttpResponse:
    """An invitation: its organization's name and the registration form, or for a signed-in
    person a button to join with their account."""
    try:
        invitation = invitation_for_token(token)
        invitation_check(invitation)
    except InvitationUnusable as error:
        status = 404 if error.code == "unknown" else 410
        return _invalid(request, error.messages[0], status=status, title="Invitation not usable")
    signed_in = request.user.is_authenticated
    form = RegistrationForm(
        request.POST if request.method == "POST" and not signed_in else None,
        initial={"email": invitation.email},
    )
    refused_message = ""
    if request.method == "POST":
        if signed_in:
            _limits(request, "")
            assert isinstance(request.user, User)
            try:
                invitation_use(invitation_id=invitation.pk, user=request.user)
            except InvitationUnusable as refused:
                refused_message = refused.messages[0]
            else:
                return render(
                    request,
                    "signin/register_done.html",
                    {"organization": invitation.organization.name, "joined": True},
                )
        else:
            _limits(request, str(request.POST.get("email", "")))
            if _submit(request, form, invitation):
                return _sent(request, form.cleaned_data["email"])
    context = {
        "invitation": invitation,
        "organization": invitation.organization.name,
        "form": form,
        "error": refused_message,
        "login_url": reverse("signin:login") + "?" + urlencode({"next": request.path}),
    }
    status = (_status(form) if form.is_bound else 400) if request.method == "POST" else 200
    return render(request, "signin/invite.html", context, status=status)


@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def register_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button (a link prefetched by a mail scanner spends nothing); POST creates
    the account."""
    if request.method == "GET":
        pending = registration_pending(token)
        if pending is None:
            return _invalid(request, LINK_INVALID, status=410, title="Link not valid")
        return render(request, "signin/register_confirm.html", {"email": pending.email})
    try:
        user, organization = registration_confirm(token=token)
    except RegistrationInvalid as error:
        return _invalid(request, error.message, status=410, title="No account was made")
    context = {
        "organization": organization,
        "email": user.email,
        "login_url": reverse("signin:login") + "?" + urlencode({"login_hint": user.email}),
    }
    return render(request, "signin/register_done.html", context)
