"""The staff console: find a person, see their login sessions and security events, end a
session. Every change is a POST behind a confirmation page (Django's CSRF token), performed by
apps.sessions.services with the operator as the event's actor (OWASP ASVS 7.2.2: admin actions
are logged with who did them)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from apps.accounts.models import User
from apps.console.forms import SessionFilterForm, UserLookupForm
from apps.console.lookups import session_or_404, user_or_404, viewed_user_or_404
from apps.console.permissions import staff_required
from apps.core.health import readiness
from apps.sessions.models import LoginSession
from apps.sessions.selectors import security_events_for_user, session_page, user_lookup
from apps.sessions.services import session_end, session_end_all, session_mark_compromised
from apps.tokens.selectors import backchannel_deliveries


@staff_required
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
    deliveries = backchannel_deliveries(session.pk for session in page.sessions)
    context = {
        "person": user,
        "page": page,
        "failed_logouts": [d for d in deliveries if d.status == d.Status.FAILED],
        "events": security_events_for_user(user=user),
    }
    return render(request, "console/user.html", context)


@staff_required
@require_safe
def session_list(request: HttpRequest) -> HttpResponse:
    form = SessionFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "console/sessions.html", {"form": form}, status=400)
    page = session_page(**form.cleaned_data)
    query = request.GET.copy()
    query.pop("after", None)
    links = {"first": query.urlencode() if form.cleaned_data["after"] else None, "next": None}
    if page.next_cursor is not None:
        query["after"] = str(page.next_cursor)
        links["next"] = query.urlencode()
    return render(request, "console/sessions.html", {"form": form, "page": page, "links": links})


@staff_required
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


@staff_required
@require_http_methods(["GET", "POST"])
def user_sessions_revoke(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    user = user_or_404(user_id)
    if request.method != "POST":
        return _confirm(
            request,
            user,
            question=f"Revoke every session of {user.email}?",
            detail="They are signed out everywhere, and every token issued to them under a "
            "session stops working.",
            button="Revoke all sessions",
        )
    ended = session_end_all(user=user, reason="operator", actor_id=request.user.pk)
    messages.success(request, f"{ended} live session{'s' * (ended != 1)} of {user.email} revoked.")
    return redirect("console:user", user_id=user.pk)


@staff_required
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


def _confirm(
    request: HttpRequest,
    user: User,
    *,
    question: str,
    detail: str,
    button: str,
    session: LoginSession | None = None,
) -> HttpResponse:
    """The GET half of an action: it says what the POST will do, and changes nothing."""
    context = {
        "person": user,
        "session": session,
        "question": question,
        "detail": detail,
        "button": button,
        "back": reverse("console:user", kwargs={"user_id": user.pk}),
    }
    return render(request, "console/confirm.html", context)


def _short(session: LoginSession) -> str:
    return str(session.pk)[:8]
