"""The console's Staff page: who may use the console and with which role (StaffRole), and an
administrator's changes to it, each behind the confirmation page and made by
accounts.services.staff_role_set (user.changed, the administrator as actor: OWASP ASVS
7.2.2). Administrators only: giving roles is the widest power the console has (ASVS 4.1.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from apps.accounts.models import StaffRole, User
from apps.accounts.services import LastAdministrator, staff_role_set
from apps.console.permissions import administrator_required
from apps.console.views import _confirm
from apps.sessions.selectors import user_lookup

NOT_STAFF = "none"  # the form's value for "no role": the person stops being staff


class StaffRoleForm(forms.Form):
    """A person, by email address, and the role they are to have (or none)."""

    email = forms.EmailField(max_length=254, label="Email address")
    role = forms.ChoiceField(
        choices=[*StaffRole.choices, (NOT_STAFF, "Not staff")], label="Console role"
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        person = user_lookup(email=cleaned["email"])
        if person is None:
            raise ValidationError(
                "No account has this email address; create it first (createuser).",
                code="not_found",
            )
        cleaned["person"] = person
        cleaned["role"] = "" if cleaned["role"] == NOT_STAFF else cleaned["role"]
        return cleaned


@dataclass(frozen=True)
class StaffRow:
    person: User
    last_administrator: bool  # the page says so instead of offering a change that fails


def staff_members() -> list[User]:
    """Everyone with a console role, administrators first, then by email."""
    rank = {role: -StaffRole.rank(role) for role in StaffRole.values}
    members = list(User.objects.filter(is_staff=True).order_by("email"))
    return sorted(members, key=lambda user: rank.get(user.staff_role, 0))


@administrator_required
@require_safe
def staff_list(request: HttpRequest) -> HttpResponse:
    return _staff_page(request, StaffRoleForm(initial={"role": StaffRole.VIEWER}))


@administrator_required
@require_http_methods(["GET", "POST"])
def staff_role_change(request: HttpRequest) -> HttpResponse:
    """The email address and role are in the query string of both halves, as for unlocking:
    the confirmation page names them, its form posts back to the same address."""
    form = StaffRoleForm(request.GET)
    if not form.is_valid():
        return _staff_page(request, form, status=400)
    person: User = form.cleaned_data["person"]
    role: str = form.cleaned_data["role"]
    if person.staff_role == role:
        messages.info(request, f"{person.email} is {_role_phrase(role)} already.")
        return redirect("console:staff")
    if request.method != "POST":
        return _confirm(
            request,
            person,
            question=_question(person, role),
            detail=_consequence(role),
            button="Remove from staff" if not role else f"Make {StaffRole(role).label.lower()}",
            back=reverse("console:staff"),
        )
    try:
        staff_role_set(user=person, role=role, actor_id=request.user.pk)
    except LastAdministrator as refused:
        messages.error(request, refused.messages[0])
        return redirect("console:staff")
    messages.success(request, f"{person.email} is now {_role_phrase(role)}.")
    return redirect("console:staff")


def _staff_page(request: HttpRequest, form: StaffRoleForm, *, status: int = 200) -> HttpResponse:
    members = staff_members()
    administrators = [user for user in members if user.has_staff_role(StaffRole.ADMINISTRATOR)]
    rows = [StaffRow(user, last_administrator=administrators == [user]) for user in members]
    context = {
        "form": form,
        "rows": rows,
        "roles": [*StaffRole.choices, (NOT_STAFF, "Not staff")],
    }
    return render(request, "console/staff.html", context, status=status)


def _role_phrase(role: str) -> str:
    return (
        f"an {role}"
        if role in (StaffRole.OPERATOR, StaffRole.ADMINISTRATOR)
        else ("a viewer" if role else "not staff")
    )


def _question(person: User, role: str) -> str:
    if not role:
        return f"Remove {person.email} from staff?"
    if not person.is_staff:
        return f"Make {person.email} staff, {_role_phrase(role)}?"
    return f"Change {person.email} from {_role_phrase(person.staff_role)} to {_role_phrase(role)}?"


def _consequence(role: str) -> str:
    return {
        "": "They can no longer open the console, the admin API or the Django admin.",
        StaffRole.VIEWER: "They can read everything the console and the admin API show "
        "(people, sessions, lockouts, the audit trail) and change nothing.",
        StaffRole.OPERATOR: "They can also act on people: revoke sessions and offline access, "
        "lift lockouts, export a person's data.",
        StaffRole.ADMINISTRATOR: "They can do everything: also erase people, manage staff and "
        "their roles, and use the Django admin.",
    }[role]
