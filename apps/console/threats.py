"""The console's threats page (issue 16): recent risk assessments with their reasons, the
people blocked now, and the threat rules with their editor; and on a person's page, their
block and their risk timeline.

Assessments are threat.assessed events read from the audit store (apps.audit.selectors); a
block is apps.accounts.services.user_block/user_unblock with the operator as actor; a rule
change is apps.threat.services' (threat.rule_changed with the administrator as actor, OWASP
ASVS 7.2.2). Blocking and unblocking are for operators, as every act on a person; rules are
for administrators, as everything that changes how the system decides (permissions.py).
Every change is a POST behind a confirmation page or a form (Django's CSRF token)."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from apps.accounts.models import MfaRequiredBy, User
from apps.accounts.services import user_block, user_unblock
from apps.audit.selectors import event_page
from apps.audit.store import AuditEvent, EventFilters, StoreUnavailable
from apps.console.forms import form_errors
from apps.console.lookups import operator_viewed, user_or_404
from apps.console.permissions import administrator_required, operator_required, staff_required
from apps.console.threats_forms import (
    AssessmentFilterForm,
    BlockForm,
    RuleForm,
    UnblockForm,
)
from apps.core.cursors import KeysetCursor
from apps.core.events import EventType
from apps.threat import services as rule_services
from apps.threat.models import ThreatRule
from apps.threat.selectors import (
    blocked_count,
    blocked_people,
    emails_by_user_id,
    rule_detail,
    rule_list,
)
from apps.threat.signals import SIGNALS

# Assessments on a person's page; the rest is on the threats page, filtered by them.
TIMELINE_LENGTH = 20
# Assessments per page of the threats page.
ASSESSMENTS_PAGE = 50


@dataclass(frozen=True)
class Reason:
    signal: str
    points: int
    detail: str

    @property
    def doc(self) -> str:
        known = SIGNALS.get(self.signal)
        return known.doc if known else ""


@dataclass(frozen=True)
class Assessment:
    """A threat.assessed event as people read it (its metadata is apps.core.risk's
    RiskDecision: score, action, reasons, rules, and the decision's extra: place, network)."""

    id: uuid.UUID
    at: datetime.datetime
    user_id: str
    email: str  # the account's address, else the address the attempt named, else ""
    ip: str | None
    country: str
    city: str
    asn: int | None
    score: int | None
    action: str
    reasons: tuple[Reason, ...]
    rules: tuple[str, ...]
    session_id: str
    kind: str  # "sign-in", or the session activity judged (refresh, code, userinfo)
    success: bool | None  # the first factor was proven (a sign-in); None when not said

    @property
    def place(self) -> str:
        return ", ".join(part for part in (self.city, self.country) if part)


def _reason(raw: object) -> Reason | None:
    if isinstance(raw, dict):
        signal, points, detail = raw.get("signal"), raw.get("points"), raw.get("detail", "")
    elif isinstance(raw, list | tuple) and raw:
        signal, points, detail = raw[0], raw[1] if len(raw) > 1 else 0, raw[2:3] or ""
        detail = detail[0] if isinstance(detail, list | tuple) else detail
    else:
        return None
    if not isinstance(signal, str):
        return None
    return Reason(signal, _int(points) or 0, str(detail or ""))


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    return None


def assessment_of(event: AuditEvent, emails: dict[str, str]) -> Assessment:
    """The event's decision; what its metadata lacks is shown as unknown, not a failure (an
    event is append-only: one written by an older version stays readable)."""
    meta: dict[str, Any] = event.metadata if isinstance(event.metadata, dict) else {}
    extra: dict[str, Any] = meta["extra"] if isinstance(meta.get("extra"), dict) else {}

    def text(key: str) -> str:
        value = meta.get(key, extra.get(key))
        return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""

    reasons: list[Any] = meta["reasons"] if isinstance(meta.get("reasons"), list) else []
    rules: list[Any] = meta["rules"] if isinstance(meta.get("rules"), list) else []
    return Assessment(
        id=event.id,
        at=event.occurred_at,
        user_id=event.user_id,
        email=emails.get(event.user_id) or text("email"),
        ip=event.ip_address or (text("ip") or None),
        country=text("country"),
        city=text("city"),
        asn=_int(meta.get("asn", extra.get("asn"))),
        score=_int(meta.get("score")),
        action=text("action"),
        reasons=tuple(r for r in map(_reason, reasons) if r is not None),
        rules=tuple(str(r) for r in rules),
        session_id=event.session_id,
        kind=_kind(text("kind")),
        success=meta["success"] if isinstance(meta.get("success"), bool) else None,
    )


def _kind(recorded: str) -> str:
    """apps.threat.port records "sign_in", or the activity's kind (refresh, code, userinfo)."""
    return "sign-in" if recorded in ("", "sign_in", "sign-in") else recorded


def assessments_of(events: list[AuditEvent]) -> list[Assessment]:
    emails = emails_by_user_id({e.user_id for e in events if e.user_id})
    return [assessment_of(event, emails) for event in events]


def risk_timeline(user: User, *, limit: int = TIMELINE_LENGTH) -> list[Assessment] | None:
    """The person's newest assessments; None when the audit store does not answer."""
    filters = EventFilters(user_id=str(user.pk), event_type=EventType.THREAT_ASSESSED)
    try:
        events = event_page(filters=filters, limit=limit).events
    except StoreUnavailable:
        return None
    return assessments_of(events)


def person_threat(user: User) -> dict[str, Any]:
    """The person page's Threats section: their block and their risk timeline."""
    return {
        "blocked_now": user.is_blocked(),
        "risk_timeline": risk_timeline(user),
    }


@staff_required
@require_safe
def threat_overview(request: HttpRequest) -> HttpResponse:
    """Recent assessments (filtered by score, action, person; keyset pages), the people
    blocked now, and the rules."""
    form = AssessmentFilterForm(request.GET)
    context: dict[str, Any] = {
        "form": form,
        "blocked": blocked_people(),
        "blocked_total": blocked_count(),
        "rules": rule_list(),
        "now": timezone.now(),
    }
    if not form.is_valid():
        return render(request, "console/threats.html", context, status=400)
    if form.filters.user_id:
        operator_viewed(request, form.person or form.filters.user_id)
    try:
        page = event_page(
            filters=form.filters, after=form.cleaned_data["after"], limit=ASSESSMENTS_PAGE
        )
    except StoreUnavailable:
        context["unavailable"] = True
        return render(request, "console/threats.html", context, status=503)
    context["assessments"] = assessments_of(page.events)
    context["links"] = _page_links(request, page.next_cursor)
    return render(request, "console/threats.html", context)


def _page_links(request: HttpRequest, next_cursor: KeysetCursor | None) -> dict[str, str | None]:
    query = request.GET.copy()
    query.pop("after", None)
    links = {"first": query.urlencode() if request.GET.get("after") else None, "next": None}
    if next_cursor is not None:
        query["after"] = str(next_cursor)
        links["next"] = query.urlencode()
    return links


# --- Blocking a person (operators) ---


@operator_required
@require_http_methods(["GET", "POST"])
def user_block_view(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    """Refuse every sign-in of the person (accounts.services.user_block, source "operator",
    user.blocked with the operator as actor) until unblocked or for a number of minutes.
    Their live sessions are left alone: "Revoke everything" on their page ends those."""
    user = user_or_404(user_id)
    form = BlockForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        minutes = form.cleaned_data["minutes"]
        until = timezone.now() + datetime.timedelta(minutes=minutes) if minutes else None
        changed = user_block(
            user=user,
            actor_id=request.user.pk,
            source=MfaRequiredBy.OPERATOR,
            reason=form.cleaned_data["reason"],
            until=until,
        )
        if changed:
            ends = f"until {until:%Y-%m-%d %H:%M} UTC" if until else "until unblocked"
            messages.success(request, f"{user.email} is blocked {ends}.")
        else:
            messages.info(request, f"{user.email}: nothing changed, a longer block holds already.")
        return redirect("console:user", user_id=user.pk)
    status = 400 if request.method == "POST" else 200
    already = user.is_blocked()
    return _confirm(
        request,
        user,
        question=f"Block {user.email}?",
        detail="Every sign-in of theirs is refused, with any password or factor, until the "
        "block ends. Their live sessions stay: revoke them on their page if they must end.",
        more=[
            f"They are blocked already ({_block_words(user)}); a block lasting longer replaces "
            "it, a shorter one changes nothing."
        ]
        if already
        else [],
        button="Block",
        form=form,
        status=status,
    )


@operator_required
@require_http_methods(["GET", "POST"])
def user_unblock_view(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    """Lift the person's block (accounts.services.user_unblock: user.unblocked with the
    operator as actor); they may sign in again at once."""
    user = user_or_404(user_id)
    back = request.GET.get("back") == "threats"
    target = reverse("console:threats") if back else _person_url(user)
    form = UnblockForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        if user_unblock(user=user, actor_id=request.user.pk, reason=form.cleaned_data["reason"]):
            messages.success(request, f"{user.email} is unblocked: they may sign in again.")
        else:
            messages.info(request, f"{user.email}: nothing changed, they were not blocked.")
        return redirect(target)
    status = 400 if request.method == "POST" else 200
    if user.blocked_at is None:
        detail = "They are not blocked: nothing would change."
    else:
        detail = (
            f"They are blocked ({_block_words(user)}). Unblocking lets them sign in again at "
            "once; the rule that blocked them may block them again at a later sign-in."
        )
    return _confirm(
        request,
        user,
        question=f"Unblock {user.email}?",
        detail=detail,
        button="Unblock",
        form=form,
        danger=False,
        back=target,
        status=status,
    )


def _block_words(user: User) -> str:
    by = MfaRequiredBy(user.blocked_by).label.lower() if user.blocked_by else "unknown"
    since = f"since {user.blocked_at:%Y-%m-%d %H:%M} UTC" if user.blocked_at else ""
    until = (
        f"until {user.blocked_until:%Y-%m-%d %H:%M} UTC"
        if user.blocked_until
        else "until unblocked"
    )
    reason = f": {user.blocked_reason}" if user.blocked_reason else ""
    return f"by {by}, {since} {until}{reason}"


# --- Rules (administrators) ---


def _rule_or_404(rule_id: uuid.UUID) -> ThreatRule:
    rule = rule_detail(rule_id=rule_id)
    if rule is None:
        raise Http404("No threat rule has this id.")
    return rule


def _rule_form_page(
    request: HttpRequest, form: RuleForm, *, title: str, rule: ThreatRule | None, status: int
) -> HttpResponse:
    context = {
        "form": form,
        "title": title,
        "rule": rule,
        "signals": [(name, s.kind.__name__, s.doc) for name, s in sorted(SIGNALS.items())],
    }
    return render(request, "console/threat_rule_form.html", context, status=status)


def _rule_fields(form: RuleForm) -> dict[str, Any]:
    data = dict(form.cleaned_data)
    if data["action"] != "block":
        data["block_minutes"] = None
    return data


@administrator_required
@require_http_methods(["GET", "POST"])
def threat_rule_create(request: HttpRequest) -> HttpResponse:
    form = RuleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            rule = rule_services.rule_create(actor_id=request.user.pk, **_rule_fields(form))
        except ValidationError as invalid:
            form_errors(form, invalid)
        else:
            messages.success(request, f"Rule {rule.name} created.")
            return redirect(f"{reverse('console:threats')}#rules")
    status = 400 if request.method == "POST" else 200
    return _rule_form_page(request, form, title="New threat rule", rule=None, status=status)


@administrator_required
@require_http_methods(["GET", "POST"])
def threat_rule_edit(request: HttpRequest, rule_id: uuid.UUID) -> HttpResponse:
    rule = _rule_or_404(rule_id)
    initial = {
        name: getattr(rule, name)
        for name in (
            "name",
            "description",
            "condition",
            "action",
            "severity",
            "block_minutes",
            "enabled",
        )
    }
    form = RuleForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changes = {k: v for k, v in _rule_fields(form).items() if v != initial[k]}
        try:
            if changes:
                rule_services.rule_update(rule=rule, actor_id=request.user.pk, **changes)
        except ValidationError as invalid:
            form_errors(form, invalid)
        else:
            if changes:
                messages.success(request, f"Rule {rule.name} saved.")
            else:
                messages.info(request, f"Rule {rule.name}: nothing changed.")
            return redirect(f"{reverse('console:threats')}#rules")
    status = 400 if request.method == "POST" else 200
    title = f"Edit the rule {rule.name}" + (" (shipped with Tessera)" if rule.builtin else "")
    return _rule_form_page(request, form, title=title, rule=rule, status=status)


@administrator_required
@require_http_methods(["GET", "POST"])
def threat_rule_enable(request: HttpRequest, rule_id: uuid.UUID) -> HttpResponse:
    """Enable or disable a rule (query: enabled=yes|no, in both halves)."""
    rule = _rule_or_404(rule_id)
    wanted = request.GET.get("enabled")
    back = f"{reverse('console:threats')}#rules"
    if wanted not in ("yes", "no"):
        errors = ["Say enabled=yes or enabled=no."]
        return render(
            request, "console/bad_request.html", {"errors": errors, "back": back}, status=400
        )
    enabled = wanted == "yes"
    if request.method != "POST":
        return _confirm(
            request,
            None,
            question=f"{'Enable' if enabled else 'Disable'} the rule {rule.name}?",
            detail=(
                f"From the next sign-in, when {rule.condition} holds: {rule.get_action_display()}."
                if enabled
                else "From the next sign-in it is no longer applied; it stays listed and can be "
                "enabled again."
            ),
            button="Enable" if enabled else "Disable",
            danger=not enabled,
            back=back,
        )
    if rule.enabled == enabled:
        messages.info(request, f"Rule {rule.name}: nothing changed.")
    else:
        rule_services.rule_update(rule=rule, actor_id=request.user.pk, enabled=enabled)
        messages.success(request, f"Rule {rule.name} {'enabled' if enabled else 'disabled'}.")
    return redirect(back)


@administrator_required
@require_http_methods(["GET", "POST"])
def threat_rule_delete(request: HttpRequest, rule_id: uuid.UUID) -> HttpResponse:
    """Delete a rule an administrator wrote; a shipped one can only be disabled (its name
    would come back with the next release's defaults otherwise)."""
    rule = _rule_or_404(rule_id)
    back = f"{reverse('console:threats')}#rules"
    if rule.builtin:
        errors = [f"{rule.name} ships with Tessera: disable it instead of deleting it."]
        return render(
            request, "console/bad_request.html", {"errors": errors, "back": back}, status=400
        )
    if request.method != "POST":
        return _confirm(
            request,
            None,
            question=f"Delete the rule {rule.name}?",
            detail=f"When {rule.condition} holds, nothing happens any more because of it. "
            "The change is recorded with the rule as it was.",
            button="Delete rule",
            back=back,
        )
    try:
        rule_services.rule_delete(rule=rule, actor_id=request.user.pk)
    except ValidationError as invalid:
        errors = list(invalid.messages)
        return render(
            request, "console/bad_request.html", {"errors": errors, "back": back}, status=400
        )
    messages.success(request, f"Rule {rule.name} deleted.")
    return redirect(back)


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
    form: Any = None,
    danger: bool = True,
    back: str = "",
    status: int = 200,
) -> HttpResponse:
    """The GET half of an action (console/confirm.html with the form's fields, their help and
    their errors: an invalid POST comes back here, 400)."""
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
    return render(request, "console/threat_confirm.html", context, status=status)
