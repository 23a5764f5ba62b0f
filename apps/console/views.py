"""The staff console: find a person, see their login sessions, offline grants and security
events, end a session or an offline grant, or everything at once; search and export the audit
trail; export or erase a person (GDPR); see and lift sign-in and client lockouts, and clear
the rate-limit keys refusing requests. Every change is a POST behind a confirmation page
(Django's CSRF token), performed by a service (apps.sessions, apps.tokens, apps.audit,
apps.ratelimit) with the operator as the event's actor (OWASP ASVS 7.2.2: admin actions are
logged with who did them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from apps.accounts.models import User
from apps.accounts.selectors import user_ids_existing, user_ids_for_emails
from apps.audit import gdpr
from apps.audit.selectors import event_page, events_recent_for_user
from apps.audit.store import StoreUnavailable
from apps.console.directory import person_directory
from apps.console.downloads import events_download, person_download
from apps.console.federation import person_identities
from apps.console.forms import (
    AuditSearchForm,
    LockoutFilterForm,
    LockoutTargetForm,
    RateLimitBlockForm,
    SessionFilterForm,
    UserLookupForm,
)
from apps.console.lookups import (
    offline_grant_or_404,
    operator_viewed,
    session_or_404,
    user_or_404,
    viewed_user_or_404,
)
from apps.console.mfa import person_mfa
from apps.console.permissions import (
    administrator_required,
    operator_required,
    staff_required,
)
from apps.console.threats import person_threat
from apps.core.cursors import KeysetCursor
from apps.core.health import readiness
from apps.core.replica import lagging_reads
from apps.ratelimit.services import (
    Block,
    Lockout,
    block_clear,
    blocks_current,
    blocks_for,
    lockout_clear,
    lockouts_current,
    lockouts_for,
)
from apps.sessions.models import LoginSession
from apps.sessions.selectors import session_page, user_lookup
from apps.sessions.services import session_end, session_end_all, session_mark_compromised
from apps.signin import recovery
from apps.tokens import services as token_services
from apps.tokens.models import BackchannelLogoutDelivery
from apps.tokens.selectors import backchannel_deliveries, client_names, offline_grants_live


@staff_required
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """The operator's landing page: the state of every dependency, as /readyz sees it."""
    return render(request, "console/home.html", {"checks": readiness()})


@staff_required
@require_safe
def user_search(request: HttpRequest) -> HttpResponse:
    if not request.GET.get("q", "").strip():
        return render(request, "console/user_search.html", {"form": UserLookupForm()})
    form = UserLookupForm.from_search(request.GET)
    if not form.is_valid():
        return render(request, "console/user_search.html", {"form": form}, status=400)
    user = user_lookup(email=form.cleaned_data["email"], user_id=form.cleaned_data["id"])
    if user is None:
        context = {"form": form, "not_found": request.GET["q"].strip()}
        return render(request, "console/user_search.html", context, status=404)
    return redirect("console:user", user_id=user.pk)


@staff_required
@require_safe
def user_detail(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    user = viewed_user_or_404(request, user_id)
    page = session_page(user=user)
    failed_logouts = backchannel_deliveries(
        (session.pk for session in page.sessions), status=BackchannelLogoutDelivery.Status.FAILED
    )
    try:
        events = events_recent_for_user(user_id=user.pk)
    except StoreUnavailable:
        events = None  # the page says so; the sessions above still help
    context = {
        "person": user,
        "page": page,
        "offline_grants": offline_grants_live(user=user),
        "failed_logouts": failed_logouts,
        "events": events,
        "erased": gdpr.user_is_erased(user),
        "lockouts": [
            LockoutRow(lockout, user.pk, "")
            for kind, identifier in _person_lockout_keys(user)
            for lockout in lockouts_for(kind=kind, identifier=identifier)
        ],
        "blocks": [BlockRow(block, user.pk, "") for block in blocks_for(identifier=user.email)],
        **person_directory(user),
    }
    context.update(person_mfa(user, context["organization_memberships"]))
    context.update(person_threat(user))
    context.update(person_identities(user))
    return render(request, "console/user.html", context)


def _person_lockout_keys(user: User) -> list[tuple[str, str]]:
    """A person's failed-attempt counters: their address's (passwords, kind "login") and
    their account's (second-factor answers, kind "mfa", apps/signin/second_factor.py)."""
    return [("login", user.email), ("mfa", str(user.pk))]


@operator_required
@require_http_methods(["GET", "POST"])
def user_lockouts_clear(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    """Lifts the person's sign-in lockouts: their email address's own counter and every
    per-IP one, and their second factor's (account.unlocked for each, the operator as actor:
    OWASP ASVS 7.2.2)."""
    user = user_or_404(user_id)
    if request.method != "POST":
        return _confirm(
            request,
            user,
            question=f"Unlock sign-in for {user.email}?",
            detail="Every failed-attempt counter of this address is cleared, its own and "
            "those per IP address, and the counter of this person's second factor: whoever "
            "types the address can try passwords, and codes, again at once.",
            button="Unlock",
        )
    cleared = sum(
        lockout_clear(kind=kind, identifier=identifier, actor_id=request.user.pk)
        for kind, identifier in _person_lockout_keys(user)
        # the address always (its unlock is recorded even with nothing counted, as before);
        # the second factor when it has a counter, not an empty account.unlocked besides
        if kind == "login" or lockouts_for(kind=kind, identifier=identifier)
    )
    _unlocked_message(request, user.email, cleared)
    return redirect("console:user", user_id=user.pk)


@operator_required
@require_http_methods(["GET", "POST"])
def user_verification_send(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    """Mails the person a new link to verify their address (email.verification_sent, the
    operator as actor). The operator never sees the link."""
    user = user_or_404(user_id)
    if request.method != "POST":
        return _confirm(
            request,
            user,
            question=f"Send {user.email} a verification e-mail?",
            detail=f"They get a link that verifies {user.email} once they open it and confirm; "
            f"it works for {settings.EMAIL_VERIFY_HOURS} hours.",
            button="Send verification e-mail",
        )
    if recovery.verification_send(user, actor_id=request.user.pk, request=request):
        messages.success(request, f"Verification e-mail sent to {user.email}.")
    else:
        messages.info(
            request, f"{user.email} is verified already or deactivated: nothing was sent."
        )
    return redirect("console:user", user_id=user.pk)


@operator_required
@require_http_methods(["GET", "POST"])
def user_password_reset_send(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    """Mails the person a password-reset link (password.reset_requested, the operator as
    actor). Neither the link nor any password is shown to the operator; their password stays
    until they choose a new one."""
    user = user_or_404(user_id)
    if request.method != "POST":
        return _confirm(
            request,
            user,
            question=f"Send {user.email} a password-reset e-mail?",
            detail="They get a link to choose a new password, valid "
            f"{settings.PASSWORD_RESET_MINUTES} minutes. Their current password keeps working "
            "until they use it; then every session and offline grant of theirs ends.",
            button="Send password-reset e-mail",
        )
    if recovery.password_reset_send(user, actor_id=request.user.pk, request=request):
        messages.success(request, f"Password-reset e-mail sent to {user.email}.")
    else:
        messages.error(request, f"{user.email} is deactivated: nothing was sent.")
    return redirect("console:user", user_id=user.pk)


@operator_required
@require_http_methods(["GET", "POST"])
def user_blocks_clear(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    """Clears the rate-limit keys of the person's email address refusing now (the rules keyed
    by the address typed at sign-in), each recorded as ratelimit.cleared with the operator."""
    user = user_or_404(user_id)
    if request.method != "POST":
        return _confirm(
            request,
            user,
            question=f"Clear the rate limits of {user.email}?",
            detail="Every rate-limit key of this address that refuses requests now is cleared "
            "(its spent quota, violations and backoff penalty): sign-in attempts for it are "
            "accepted again at once.",
            button="Clear",
        )
    blocks = blocks_for(identifier=user.email)
    for block in blocks:
        block_clear(rule=block.rule, value=block.value, actor_id=request.user.pk)
    if blocks:
        count = len(blocks)
        messages.success(
            request, f"{user.email}: {count} rate-limit key{'s' * (count != 1)} cleared."
        )
    else:
        messages.info(request, f"{user.email} had no rate-limit key refusing requests.")
    return redirect("console:user", user_id=user.pk)


@dataclass(frozen=True)
class LockoutRow:
    lockout: Lockout
    person_id: uuid.UUID | None  # the account with this address (login) or this id (mfa)
    client_name: str  # the client with this id (kind "client"); "" when none has it


@staff_required
@require_safe
def lockout_list(request: HttpRequest) -> HttpResponse:
    """Every identifier locked now (the first CURRENT_LIMIT found), and the counters of one
    identifier looked up, whatever their state."""
    form = LockoutFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "console/lockouts.html", {"form": form}, status=400)
    kind, identifier = form.cleaned_data["kind"] or None, form.cleaned_data["identifier"]
    current = lockouts_current(kind=kind)
    blocked = blocks_current()
    looked_up = None
    if identifier:
        looked_up = lockouts_for(kind=form.cleaned_data["lookup_kind"], identifier=identifier)
    context = {
        "form": form,
        "current": current,
        "rows": _lockout_rows(current.lockouts),
        "identifier": identifier,
        "lookup_kind": form.cleaned_data["lookup_kind"],
        "looked_up": _lockout_rows(looked_up) if looked_up is not None else None,
        "blocked": blocked,
        "block_rows": _block_rows(blocked.blocks),
    }
    return render(request, "console/lockouts.html", context)


@operator_required
@require_http_methods(["GET", "POST"])
def lockout_unlock(request: HttpRequest) -> HttpResponse:
    """The identifier and kind are in the query string of both halves: the confirmation page
    names them, its form posts back to the same address."""
    form = LockoutTargetForm(request.GET)
    if not form.is_valid():
        return render(request, "console/lockouts.html", {"form": form}, status=400)
    kind, identifier = form.cleaned_data["kind"], form.cleaned_data["identifier"]
    back = reverse("console:lockouts")
    if request.method != "POST":
        what = {
            "login": "sign-in for",
            "mfa": "the second factor of account",
        }.get(kind, "client authentication of")
        return _confirm(
            request,
            None,
            question=f"Unlock {what} {identifier}?",
            detail="Every failed-attempt counter of this identifier is cleared, its own and "
            "those per IP address: secrets can be tried for it again at once.",
            button="Unlock",
            back=back,
        )
    _unlocked(request, kind, identifier)
    return redirect(back)


def _unlocked(request: HttpRequest, kind: str, identifier: str) -> None:
    cleared = lockout_clear(kind=kind, identifier=identifier, actor_id=request.user.pk)
    _unlocked_message(request, identifier, cleared)


def _unlocked_message(request: HttpRequest, identifier: str, cleared: int) -> None:
    if cleared:
        messages.success(
            request,
            f"{identifier} unlocked: {cleared} failed-attempt counter{'s' * (cleared != 1)} "
            "cleared.",
        )
    else:
        messages.info(request, f"{identifier} had no failed attempts to clear.")


@operator_required
@require_http_methods(["GET", "POST"])
def block_clear_confirm(request: HttpRequest) -> HttpResponse:
    """One rate-limit key, named by rule and value in the query string of both halves (as
    lockout_unlock): the confirmation page names it, its form posts back to the same address."""
    form = RateLimitBlockForm(request.GET)
    if not form.is_valid():
        return render(request, "console/lockouts.html", {"form": form}, status=400)
    rule, value = form.cleaned_data["rule"], form.cleaned_data["value"]
    named = f"{rule} for {value}" if value else rule
    back = reverse("console:lockouts")
    if request.method != "POST":
        return _confirm(
            request,
            None,
            question=f"Clear the rate limit {named}?",
            detail="Its spent quota, violations and backoff penalty are forgotten: requests "
            "it refused are accepted again at once.",
            button="Clear",
            back=back,
        )
    if block_clear(rule=rule, value=value, actor_id=request.user.pk):
        messages.success(request, f"Rate limit {named} cleared.")
    else:
        messages.info(request, f"Rate limit {named} had nothing to clear.")
    return redirect(back)


@dataclass(frozen=True)
class BlockRow:
    block: Block
    person_id: uuid.UUID | None  # the account with this email address (kind "account")
    client_name: str  # the client with this id (kind "client"); "" when none has it


def _block_rows(blocks: list[Block]) -> list[BlockRow]:
    people = user_ids_for_emails(x.value for x in blocks if x.kind == "account")
    clients = client_names(x.value for x in blocks if x.kind == "client")
    return [BlockRow(x, people.get(x.value), clients.get(x.value, "")) for x in blocks]


def _lockout_rows(lockouts: list[Lockout]) -> list[LockoutRow]:
    people = user_ids_for_emails(x.identifier for x in lockouts if x.kind == "login")
    people.update(user_ids_existing(x.identifier for x in lockouts if x.kind == "mfa"))
    clients = client_names(x.identifier for x in lockouts if x.kind == "client")
    return [
        LockoutRow(x, people.get(x.identifier), clients.get(x.identifier, "")) for x in lockouts
    ]


@staff_required
@require_safe
def session_list(request: HttpRequest) -> HttpResponse:
    form = SessionFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "console/sessions.html", {"form": form}, status=400)
    page = session_page(**form.cleaned_data, using=lagging_reads())  # read-only: may lag
    links = _page_links(request, page.next_cursor)
    return render(request, "console/sessions.html", {"form": form, "page": page, "links": links})


@staff_required
@require_safe
def audit_search(request: HttpRequest) -> HttpResponse:
    """The audit trail, newest first, a keyset page at a time; filtered by a person it is
    their timeline, and recorded as an operator read of their data."""
    form = AuditSearchForm(request.GET)
    if not form.is_valid():
        return _audit_page(request, form, status=400)
    if form.filters.user_id:
        operator_viewed(request, form.person or form.filters.user_id)
    try:
        page = event_page(filters=form.filters, after=form.cleaned_data["after"])
    except StoreUnavailable:
        return _audit_page(request, form, status=503)
    return _audit_page(request, form, page=page, links=_page_links(request, page.next_cursor))


@staff_required
@require_safe
def audit_export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    """The current search, every page of it, as CSV or JSON Lines (apps.audit.export)."""
    form = AuditSearchForm(request.GET)
    if not form.is_valid():
        return _audit_page(request, form, status=400)
    try:
        return events_download(filters=form.filters, fmt=fmt, actor_id=request.user.pk)
    except StoreUnavailable:
        return _audit_page(request, form, status=503)


# Operator, not viewer (least privilege, OWASP ASVS 4.1.3): the whole of a person's data in
# one file leaves the console; it answers their request (GDPR Art. 15), an act on a person.
@operator_required
@require_safe
def user_data_export(request: HttpRequest, user_id: uuid.UUID) -> HttpResponseBase:
    """Everything held about the person, one JSON document (GDPR Art. 15, 20)."""
    user = user_or_404(user_id)
    try:
        return person_download(user=user, actor_id=request.user.pk)
    except StoreUnavailable:
        messages.error(request, _STORE_DOWN)
        return redirect("console:user", user_id=user.pk)


# Administrator (least privilege, OWASP ASVS 4.1.3): erasure cannot be undone and rewrites
# the audit trail's identities; an operator's acts on a person (sessions, lockouts) can be.
@administrator_required
@require_http_methods(["GET", "POST"])
def user_erase(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    """GDPR Art. 17, behind a confirmation; afterwards the person's pseudonymous timeline."""
    user = user_or_404(user_id)
    if request.method != "POST":
        return _confirm(
            request,
            user,
            question=f"Erase {user.email}?",
            detail="Their account is emptied and can no longer sign in, their sessions end, "
            "and in every security event their id, email and IP addresses are replaced by "
            "pseudonyms. This cannot be undone.",
            button="Erase",
        )
    email = user.email
    try:
        alias = gdpr.user_erase(user=user, actor_id=request.user.pk)
    except gdpr.ErasureRefused as refused:
        messages.error(request, str(refused))
        return redirect("console:user", user_id=user.pk)
    except StoreUnavailable:
        messages.error(request, f"{_STORE_DOWN} Erase again to finish.")
        return redirect("console:user", user_id=user.pk)
    except gdpr.ErasureUnavailable as unavailable:
        messages.error(request, str(unavailable))
        return redirect("console:user", user_id=user.pk)
    messages.success(request, f"{email} erased. Their events now carry the pseudonym {alias}.")
    return redirect(f"{reverse('console:audit')}?user={alias}")


@operator_required
@require_http_methods(["GET", "POST"])
def session_revoke(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    session = session_or_404(session_id)
    if request.method != "POST":
        return _confirm(
            request,
            session.user,
            session=session,
            question=f"Revoke session {_short(session)} of {session.user.email}?",
            detail="They are signed out of it at once, and the tokens issued under it stop "
            "working; applications that received them are told.",
            button="Revoke session",
        )
    if session_end(session=session, reason="operator", actor_id=request.user.pk):
        messages.success(request, f"Session {_short(session)} revoked.")
    else:
        messages.info(request, f"Session {_short(session)} had already ended.")
    return redirect("console:user", user_id=session.user_id)


@operator_required
@require_http_methods(["GET", "POST"])
def user_sessions_revoke(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    user = user_or_404(user_id)
    if request.method != "POST":
        return _confirm(
            request,
            user,
            question=f"Revoke every session of {user.email}?",
            detail="They are signed out everywhere, and every token issued to them under a "
            "session stops working. Offline grants stay (revoke them below, or revoke "
            "everything).",
            button="Revoke all sessions",
        )
    ended = session_end_all(user=user, reason="operator", actor_id=request.user.pk)
    messages.success(request, f"{ended} live session{'s' * (ended != 1)} of {user.email} revoked.")
    return redirect("console:user", user_id=user.pk)


@operator_required
@require_http_methods(["GET", "POST"])
def offline_grant_revoke(request: HttpRequest, grant_id: uuid.UUID) -> HttpResponse:
    grant = offline_grant_or_404(grant_id)
    if request.method != "POST":
        return _confirm(
            request,
            grant.user,
            question=f"Revoke the offline access of {grant.client.name} for {grant.user.email}?",
            detail=f"{grant.client.name} ({grant.client.client_id}) can no longer refresh its "
            "tokens while they are signed out, and the access tokens it holds stop working. "
            "Their sessions are not affected.",
            button="Revoke offline access",
        )
    name = grant.client.name
    if token_services.offline_grant_revoke(
        grant=grant, reason="operator", actor_id=request.user.pk
    ):
        messages.success(request, f"Offline access of {name} revoked.")
    else:
        messages.info(request, f"The offline access of {name} had already ended.")
    return redirect("console:user", user_id=grant.user_id)


@operator_required
@require_http_methods(["GET", "POST"])
def user_offline_grants_revoke(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    user = user_or_404(user_id)
    if request.method != "POST":
        return _confirm(
            request,
            user,
            question=f"Revoke every offline grant of {user.email}?",
            detail="No application can refresh tokens for them while they are signed out any "
            "more, and the access tokens those grants issued stop working. Their sessions are "
            "not affected.",
            button="Revoke all offline access",
        )
    revoked = token_services.offline_grants_revoke_all(
        user=user, reason="operator", actor_id=request.user.pk
    )
    messages.success(
        request, f"{revoked} offline grant{'s' * (revoked != 1)} of {user.email} revoked."
    )
    return redirect("console:user", user_id=user.pk)


@operator_required
@require_http_methods(["GET", "POST"])
def user_revoke_all(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    user = user_or_404(user_id)
    if request.method != "POST":
        return _confirm(
            request,
            user,
            question=f"Revoke everything {user.email} holds?",
            detail="Every session ends (they are signed out everywhere, applications are "
            "told) and every offline grant is revoked: no token issued to them works any more "
            "and no application can get a new one until they sign in again.",
            button="Revoke everything",
        )
    revoked = token_services.user_access_revoke_all(
        user=user, reason="operator", actor_id=request.user.pk
    )
    ended, grants = revoked.sessions_ended, revoked.offline_grants_revoked
    messages.success(
        request,
        f"{ended} live session{'s' * (ended != 1)} and {grants} offline grant"
        f"{'s' * (grants != 1)} of {user.email} revoked.",
    )
    return redirect("console:user", user_id=user.pk)


@operator_required
@require_http_methods(["GET", "POST"])
def session_compromise(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    session = session_or_404(session_id)
    if request.method != "POST":
        return _confirm(
            request,
            session.user,
            session=session,
            question=f"Mark session {_short(session)} of {session.user.email} compromised?",
            detail="The session is flagged for the record and ended, with its tokens.",
            button="Mark compromised",
        )
    session_mark_compromised(session=session, actor_id=request.user.pk)
    messages.success(request, f"Session {_short(session)} marked compromised and ended.")
    return redirect("console:user", user_id=session.user_id)


_STORE_DOWN = "The audit store (ClickHouse) did not answer."


def _audit_page(
    request: HttpRequest, form: AuditSearchForm, *, status: int = 200, **context: object
) -> HttpResponse:
    context = {"form": form, "unavailable": status == 503, **context}
    return render(request, "console/audit.html", context, status=status)


def _page_links(request: HttpRequest, next_cursor: KeysetCursor | None) -> dict[str, str | None]:
    """Query strings of a keyset-paged list: this search from its first page (None when on
    it), its next page (None on the last), and the search without a position."""
    query = request.GET.copy()
    query.pop("after", None)
    search = query.urlencode()
    links = {"first": search if request.GET.get("after") else None, "next": None, "search": search}
    if next_cursor is not None:
        query["after"] = str(next_cursor)
        links["next"] = query.urlencode()
    return links


def _confirm(
    request: HttpRequest,
    user: User | None,
    *,
    question: str,
    detail: str,
    button: str,
    session: LoginSession | None = None,
    back: str = "",
) -> HttpResponse:
    """The GET half of an action: it says what the POST will do, and changes nothing. Cancel
    goes `back`, by default to the person's page."""
    if not back and user is not None:
        back = reverse("console:user", kwargs={"user_id": user.pk})
    context = {
        "person": user,
        "session": session,
        "question": question,
        "detail": detail,
        "button": button,
        "back": back,
    }
    return render(request, "console/confirm.html", context)


def _short(session: LoginSession) -> str:
    return str(session.pk)[:8]
