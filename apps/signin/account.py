"""The person's own account page (/account/): who they are and what they can change — their
name, their e-mail address (verified before it replaces the old one), their password — their
own sessions, the applications they let in, and a short history of their account's security
events (issue 14).

Every action is a POST under CSRF protection (Django's CsrfViewMiddleware), answered by a
redirect back to the page (or a page of its own); bad input is a form error, an id that is
not the person's is a 404. The applications and the history come through ports in core
(apps/core/people.py): signin imports neither tokens nor audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.models import User
from apps.core.commit import unqueued_tasks
from apps.core.events import EventType, emit
from apps.core.mail import mail_send, recipient
from apps.core.people import HistoryEntry, HistoryUnavailable, person_applications
from apps.core.people import person_security_history as _history
from apps.ratelimit import services as ratelimit
from apps.sessions import binding, geo
from apps.sessions.models import LoginSession
from apps.sessions.selectors import (
    session_current,
    session_live_of_user,
    sessions_live_for_user,
)
from apps.sessions.services import session_end
from apps.signin.account_forms import EmailChangeForm, NameForm, PasswordChangeForm
from apps.signin.credentials import password_set
from apps.signin.links import NOT_SENT, LinkInvalid, link_make, link_read
from apps.signin.notices import security_notice
from apps.signin.pipeline import Refusal

# How long an e-mail change link works. Short, since it moves the account to another mailbox
# (OWASP Forgot Password Cheat Sheet: links short-lived and single use; the same holds here).
EMAIL_CHANGE_MAX_AGE = 24 * 3600
# Events the history shows (apps.audit.selectors.PERSON_HISTORY_TYPES picks which).
HISTORY_SHOWN = 20
WRONG_PASSWORD = "The current password is incorrect."
# The session end reason of a session the person ends here (apps.sessions.services.END_REASONS).
END_REASON = "account_page"


# --- Services ------------------------------------------------------------------------------


def name_change(*, user: User, name: str) -> bool:
    """The person's display name (the `name` claim); user.changed with the person as actor.
    False when it is the same."""
    with transaction.atomic():
        before = User.objects.select_for_update().values_list("name", flat=True).get(pk=user.pk)
        if before == name:
            return False
        User.objects.filter(pk=user.pk).update(name=name)
        user.name = name
        emit(
            EventType.USER_CHANGED,
            user_id=user.pk,
            actor_id=user.pk,
            resource_type="user",
            resource_id=user.pk,
            action="name_changed",
            # Which field, not its values: a name is personal data that an erasure must not
            # have to find inside events (GDPR Art. 17; apps/audit/gdpr.py scrubs addresses).
            metadata={"fields": ["name"]},
        )
    return True


def current_password_check(request: HttpRequest, *, user: User, password: str) -> str:
    """ "" when `password` is the person's, else what the page says (current_password_verify's
    message)."""
    refusal = current_password_verify(request, user=user, password=password)
    return refusal.message if refusal is not None else ""


def current_password_verify(request: HttpRequest, *, user: User, password: str) -> Refusal | None:
    """None when `password` is the person's, else the refusal: 400 for a wrong password, 429
    with Retry-After while locked. Checked as a sign-in checks it, through the same
    failed-attempt counters (apps.ratelimit attempt_begin, kind="login", the account's
    address): a stolen session cannot guess the password here faster than on /login, and a
    lockout refuses before the password is looked at, with the same answer whether it is
    right or wrong, so this form is no password oracle (OWASP ASVS 4.0.3 2.2.1
    anti-automation; 2.1.6 / 3.3.x re-authentication for credential changes)."""
    reservation = ratelimit.attempt_begin(
        request, kind="login", identifier=user.email, user_id=user.pk
    )
    if not reservation.allowed:
        decision = reservation.decision
        if decision.permanent:
            message = "Too many wrong passwords: ask your administrator to unlock your account."
        else:
            message = f"Too many wrong passwords. Try again in {decision.wait}."
        return Refusal(message, status=429, headers=decision.headers())
    if user.has_usable_password() and user.check_password(password):
        reservation.succeeded()
        return None
    reservation.failed()
    return Refusal(WRONG_PASSWORD, status=400)


def email_change_request(*, user: User, email: str, request: HttpRequest) -> None:
    """Mail a link to the NEW address; the address changes only when it is confirmed
    (email_change_confirm). Whether another account has the address is not looked at here:
    the page says the same either way, and the refusal comes at confirmation, to whoever reads
    that mailbox (OWASP WSTG-IDNT-04 and the Authentication Cheat Sheet, "Authentication
    Responses": no account enumeration through a form's answer)."""
    to = recipient(email, user.name)  # ValidationError: line breaks, not an address
    token = link_make("email_change", user, {"email": email})
    url = f"{settings.ISSUER}{reverse('signin:account_email_confirm')}?{urlencode({'t': token})}"
    mail_send(
        "email_change",
        to=to,
        context={
            "user": user,
            "new_email": email,
            "url": url,
            "valid_hours": EMAIL_CHANGE_MAX_AGE // 3600,
        },
    )
    emit(
        EventType.EMAIL_VERIFICATION_SENT,
        user_id=user.pk,
        actor_id=user.pk,
        resource_type="user",
        resource_id=user.pk,
        metadata={"purpose": "email_change", "email": email},
    )


class EmailTaken(Exception):
    """The address belongs to another account (found at confirmation, or lost to a race)."""


@dataclass(frozen=True)
class EmailChange:
    user: User
    email: str


def email_change_read(token: str) -> EmailChange:
    """What a link asks to change. Raises LinkInvalid (malformed, tampered, used, expired)."""
    link = link_read("email_change", token, max_age=EMAIL_CHANGE_MAX_AGE)
    email = link.data.get("email")
    if not isinstance(email, str) or not email:
        raise LinkInvalid
    return EmailChange(link.user, email)


def email_change_confirm(*, token: str, request: HttpRequest) -> EmailChange:
    """The account's address becomes the link's (verified: the link came to it), email.changed
    records both addresses, and the OLD address gets a security notice (OWASP ASVS 4.0.3
    2.2.3; NIST SP 800-63B §6.1.2.3). The link is single use: its fingerprint covers the
    address, which has changed (apps/signin/links.py). Raises LinkInvalid, EmailTaken."""
    change = email_change_read(token)
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=change.user.pk)
        # Re-read under the row lock: a second use racing the first waits here, then finds
        # the address changed under it.
        if (user.email, user.password) != (change.user.email, change.user.password):
            raise LinkInvalid
        old = user.email
        user.email, user.email_verified = change.email, True
        try:
            # A savepoint: the unique index on lower(email) says whether another account has
            # the address, or took it a moment ago, in the same statement that takes it.
            with transaction.atomic():
                user.save(update_fields=["email", "email_verified"])
        except IntegrityError as error:
            raise EmailTaken from error
        emit(
            EventType.EMAIL_CHANGED,
            user_id=user.pk,
            actor_id=user.pk,
            resource_type="user",
            resource_id=user.pk,
            metadata={"old": old, "new": change.email},
        )
        security_notice(
            user=user,
            kind="email_changed",
            request=request,
            to=old,
            detail=f"The account now uses {change.email}; this address no longer signs in.",
        )
    return EmailChange(user, change.email)


def sessions_end_others(*, user: User, keep: LoginSession | None) -> int:
    """ "Sign out everywhere else": every live session of the person but `keep` ends (its
    tokens refused at once, its relying parties told: apps.sessions.services.session_end)."""
    ended = 0
    for session in sessions_live_for_user(user=user):
        if keep is None or session.pk != keep.pk:
            ended += session_end(session=session, reason=END_REASON, actor_id=user.pk)
    return ended


# --- What the page shows -------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    session: LoginSession
    device: str
    place: str
    current: bool


def _place(ip: str | None, known: dict[str, Any] | None = None) -> str:
    return geo.place(known or geo.location(ip))


def _session_rows(request: HttpRequest, user: User) -> list[SessionRow]:
    current = session_current(request)
    rows = []
    for session in sessions_live_for_user(user=user):
        seen = (session.context or {}).get("device") or {}
        device = seen.get("browser") or binding.browser_family(session.user_agent)
        rows.append(
            SessionRow(
                session=session,
                device=device,
                place=_place(session.ip_address, (session.context or {}).get("location")),
                current=current is not None and current.pk == session.pk,
            )
        )
    rows.sort(key=lambda row: not row.current)  # this device first
    return rows


@dataclass(frozen=True)
class HistoryRow:
    entry: HistoryEntry
    what: str
    where: str
    browser: str


# Why a session ended, as the person reads it (apps.sessions.services.END_REASONS).
_END_REASONS = {
    "logout": "signed out",
    END_REASON: "signed out from the account page",
    "operator": "ended by an administrator",
    "api": "ended by an administrator",
    "compromised": "ended as compromised",
    "session_limit": "ended: too many sessions at once",
    "device_mismatch": "ended: used from another device",
    "ip_change": "ended: used from another network",
    "user_mismatch": "ended: another account signed in",
    "threat": "ended as suspicious",
    "account_disabled": "ended: the account was disabled",
    "password_changed": "ended: the password changed",
}


def _what(entry: HistoryEntry, clients: dict[str, str], user: User) -> str:
    data = entry.metadata or {}
    kind = entry.event_type
    client_id = str(data.get("client_id") or entry.resource_id)  # offline grants name it
    client = clients.get(client_id, client_id)
    by_someone_else = entry.actor_id not in ("", str(user.pk))
    if kind == EventType.LOGIN_SUCCEEDED:
        return "Signed in from a new device" if data.get("new_device") else "Signed in"
    if kind in (EventType.LOGOUT, EventType.SESSION_REVOKED):
        reason = str(data.get("reason", ""))
        return "A session was " + _END_REASONS.get(reason, "ended")
    if kind == EventType.SESSION_COMPROMISED:
        return "A session was marked compromised"
    if kind == EventType.SESSION_LIMIT_REACHED:
        return "Older sessions were signed out: too many sessions at once"
    if kind == EventType.PASSWORD_CHANGED:
        how = {"reset": " with a reset link", "account": " on the account page"}
        return "Password changed" + how.get(str(data.get("method", "")), "")
    if kind == EventType.PASSWORD_RESET_REQUESTED:
        return "A password reset link was asked for"
    if kind == EventType.EMAIL_CHANGED:
        return f"E-mail address changed from {data.get('old', '?')} to {data.get('new', '?')}"
    if kind == EventType.EMAIL_VERIFIED:
        return "E-mail address verified"
    if kind == EventType.EMAIL_VERIFICATION_SENT:
        to = f" to {data['email']}" if data.get("email") else ""
        return f"A verification link was sent{to}"
    if kind == EventType.USER_CHANGED:
        if data.get("fields") == ["name"]:
            return "Name changed" + (" by an administrator" if by_someone_else else "")
        return "Account details changed" + (" by an administrator" if by_someone_else else "")
    if kind == EventType.CONSENT_GRANTED:
        return f"Allowed {client}"
    if kind == EventType.CONSENT_REVOKED:
        return f"Access of {client} withdrawn"
    if kind == EventType.OFFLINE_ACCESS_GRANTED:
        return f"Gave {client} offline access"
    if kind == EventType.OFFLINE_ACCESS_REVOKED:
        return f"Offline access of {client} ended"
    if kind == EventType.ACCOUNT_LOCKED:
        return "Sign-in locked after too many wrong passwords"
    if kind == EventType.ACCOUNT_UNLOCKED:
        return "Sign-in unlocked by an administrator"
    return EventType(kind).label if kind in EventType.values else kind


def _history_rows(user: User, clients: dict[str, str]) -> list[HistoryRow] | None:
    try:
        entries = _history(user_id=user.pk, limit=HISTORY_SHOWN)
    except HistoryUnavailable:
        return None
    rows = []
    for entry in entries:
        place = _place(entry.ip_address)
        where = " · ".join(v for v in (entry.ip_address or "", place) if v)
        browser = binding.browser_family(entry.user_agent) if entry.user_agent else ""
        rows.append(HistoryRow(entry, _what(entry, clients, user), where, browser))
    return rows


def _page(
    request: HttpRequest, *, status: int = 200, **forms: NameForm | EmailChangeForm | Any
) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    applications = person_applications().list(user_id=user.pk)
    clients = {a.client_id: a.client_name for a in applications}
    context = {
        "name_form": forms.get("name_form") or NameForm(initial={"name": user.name}),
        "email_form": forms.get("email_form") or EmailChangeForm(current_email=user.email),
        "password_form": forms.get("password_form") or PasswordChangeForm(),
        "sessions": _session_rows(request, user),
        "applications": applications,
        "history": _history_rows(user, clients),
    }
    return render(request, "signin/account.html", context, status=status)


def _back(request: HttpRequest, message: str, anchor: str) -> HttpResponse:
    messages.success(request, message)
    return HttpResponseRedirect(f"{reverse('signin:account')}#{anchor}")


def _person(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required
    return user


# --- Views ---------------------------------------------------------------------------------


@login_required
@never_cache
@require_http_methods(["GET"])
def account(request: HttpRequest) -> HttpResponse:
    return _page(request)


@login_required
@never_cache
@require_POST
def name_update(request: HttpRequest) -> HttpResponse:
    user = _person(request)
    form = NameForm(request.POST)
    if not form.is_valid():
        return _page(request, name_form=form, status=400)
    if name_change(user=user, name=form.cleaned_data["name"]):
        return _back(request, "Your name was changed.", "profile")
    return _back(request, "Your name is unchanged.", "profile")


@sensitive_post_parameters("password")
@login_required
@never_cache
@require_POST
def email_update(request: HttpRequest) -> HttpResponse:
    user = _person(request)
    form = EmailChangeForm(request.POST, current_email=user.email)
    if not form.is_valid():
        return _page(request, email_form=form, status=400)
    refusal = current_password_check(request, user=user, password=form.cleaned_data["password"])
    if refusal:
        form.add_error("password", refusal)
        return _page(request, email_form=form, status=400)
    email = form.cleaned_data["email"]
    # Per account too, not only per IP (RATELIMIT_RULES account_email.*): each request mails
    # someone's mailbox (OWASP ASVS 4.0.3 11.1.4 anti-automation of business flows).
    decision = ratelimit.check(request, account=str(user.pk))
    if not decision.allowed:
        form.add_error(
            "email", f"Too many address changes asked for. Try again in {decision.wait}."
        )
        response = _page(request, email_form=form, status=429)
        for name, value in decision.headers().items():
            response[name] = value
        return response
    try:
        with unqueued_tasks() as unqueued:
            email_change_request(user=user, email=email, request=request)
    except ValidationError as error:
        form.add_error("email", error)
        return _page(request, email_form=form, status=400)
    if unqueued:  # the broker did not take the mail: the address cannot change by it
        form.add_error("email", f"{NOT_SENT} Your address stays {user.email}.")
        return _page(request, email_form=form, status=503)
    return _back(
        request,
        f"We sent a link to {email}. Your address changes when you open it; until then it "
        f"stays {user.email}.",
        "profile",
    )


@never_cache
@require_http_methods(["GET", "POST"])
def email_confirm(request: HttpRequest) -> HttpResponse:
    """GET shows what the link would do and a button; only the POST acts: mail scanners and
    link previews fetch links, and must not use them (OWASP Forgot Password Cheat Sheet
    advises the same of reset links)."""
    source = request.POST if request.method == "POST" else request.GET
    token = str(source.get("t", ""))
    try:
        if request.method == "GET":
            change = email_change_read(token)
            return render(
                request,
                "signin/account_email_confirm.html",
                {"token": token, "email": change.email},
            )
        change = email_change_confirm(token=token, request=request)
    except LinkInvalid as error:
        context = {"expired": error.expired}
        return render(request, "signin/account_email_invalid.html", context, status=400)
    except EmailTaken:
        context = {"taken": True}
        return render(request, "signin/account_email_invalid.html", context, status=409)
    return render(request, "signin/account_email_done.html", {"email": change.email})


@sensitive_post_parameters("current_password", "new_password", "new_password_again")
@login_required
@never_cache
@require_POST
def password_update(request: HttpRequest) -> HttpResponse:
    """ASVS 4.0.3 2.1.6: the current password and the new one; 2.1.5: people can change it.
    credentials.password_set then ends every session of the person, this one included (ASVS
    3.3.3), so the answer is a page of its own that offers to sign in again."""
    user = _person(request)
    form = PasswordChangeForm(request.POST)
    if not form.is_valid():
        return _page(request, password_form=form, status=400)
    refusal = current_password_check(
        request, user=user, password=form.cleaned_data["current_password"]
    )
    if refusal:
        form.add_error("current_password", refusal)
        return _page(request, password_form=form, status=400)
    try:
        password_set(
            user=user, password=form.cleaned_data["new_password"], method="account", request=request
        )
    except ValidationError as error:
        form.add_error("new_password", error)
        return _page(request, password_form=form, status=400)
    logout(request)  # the login session ended with the others; the browser's goes too
    return render(request, "signin/account_password_done.html")


@login_required
@never_cache
@require_POST
def session_sign_out(request: HttpRequest, session_id: str) -> HttpResponse:
    """Ends one of the person's sessions (OWASP ASVS 4.0.3 3.3.4: people can see and log out
    their sessions). ASVS asks for the credentials again first; deliberately not here:
    ending a session only takes access away (the worst a thief holding this session can do
    is sign the owner out elsewhere; the owner signs in again and changes the password,
    which ends the thief's session), while a person who has just seen a stranger's session
    must be able to end it at once. Someone else's session id, or a malformed one: 404."""
    user = _person(request)
    session = session_live_of_user(user=user, session_id=session_id)
    if session is None:
        raise Http404("No such session of yours.")
    current = session_current(request)
    session_end(session=session, reason=END_REASON, actor_id=user.pk)
    if current is not None and current.pk == session.pk:
        logout(request)
        return HttpResponseRedirect(reverse("signin:login"))
    return _back(request, "That session was signed out.", "sessions")


@login_required
@never_cache
@require_POST
def sessions_sign_out_others(request: HttpRequest) -> HttpResponse:
    user = _person(request)
    ended = sessions_end_others(user=user, keep=session_current(request))
    plural = "s" * (ended != 1)
    return _back(request, f"{ended} other session{plural} signed out.", "sessions")


@login_required
@never_cache
@require_POST
def consent_revoke(request: HttpRequest, client_id: str) -> HttpResponse:
    user = _person(request)
    if not person_applications().consent_revoke(user_id=user.pk, client_id=client_id):
        raise Http404("No such application of yours.")
    return _back(request, "The application's access was withdrawn.", "applications")


@login_required
@never_cache
@require_POST
def offline_grant_revoke(request: HttpRequest, grant_id: str) -> HttpResponse:
    user = _person(request)
    if not person_applications().offline_grant_revoke(user_id=user.pk, grant_id=grant_id):
        raise Http404("No such offline access of yours.")
    return _back(request, "The application's offline access was ended.", "applications")
